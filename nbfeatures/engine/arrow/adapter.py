"""``ArrowEngine``: the engine port on pyarrow and numpy in this process (no JVM)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.engine.arrow.columns import ArrowFeatures
from nbfeatures.engine.arrow.latest import latest_rows
from nbfeatures.engine.arrow.offline import read_offline_table
from nbfeatures.engine.arrow.pit import point_in_time_join_arrow, to_pandas
from nbfeatures.errors import ConfigError

if TYPE_CHECKING:
    from nbfeatures.config import Settings
    from nbfeatures.engine.offline_store import Manifest, VersionedFamily
    from nbfeatures.engine.port import LatestColumns, LatestRows, StoredFamily


class ArrowEngine:
    """Reads stored versions with pyarrow (local or ``gs://``) and joins with numpy.

    It computes nothing: a version's transformation is Spark SQL or PySpark.
    """

    name = "arrow"

    def __init__(self, emulator: str | None = None) -> None:
        # The GCS emulator a ``gs://`` path given to ``latest_per_entity`` is read through.
        self._emulator = emulator

    def progress(self, label: str, enabled: bool = True) -> contextlib.AbstractContextManager[None]:
        """No progress to show: nothing runs on a cluster."""
        return contextlib.nullcontext()

    def compute_version(
        self,
        settings: Settings,
        version: VersionedFamily,
        start: dt.datetime,
        end: dt.datetime,
        *,
        progress: bool = True,
    ) -> Manifest:
        raise ConfigError(
            "engine", "the arrow engine reads stored versions; computing one runs on Spark"
        )

    def read_offline(
        self,
        settings: Settings,
        family: str,
        version: int,
        start: dt.datetime | None,
        end: dt.datetime | None,
    ) -> Any:
        """The version's join index, else its Parquet on the UTC dates of ``[start, end]``."""
        return read_offline_table(settings, family, version, start, end)

    def point_in_time_join(
        self,
        spine: Any,
        families: Sequence[StoredFamily],
        *,
        timestamp_column: str,
        include_event_times: bool = False,
    ) -> Any:
        """``point_in_time_join_arrow`` on a ``pyarrow.Table`` spine."""
        arrow = [
            ArrowFeatures(f.name, f.rows, f.join_key, f.timestamp, f.features, f.ttl)
            for f in families
        ]
        return point_in_time_join_arrow(
            spine, arrow, timestamp_column=timestamp_column, include_event_times=include_event_times
        )

    def from_pandas(self, spine: Any, order_column: str) -> Any:
        """A pandas spine as a ``pyarrow.Table``; the join keeps its order, so without
        ``order_column``."""
        pa = require("pyarrow", "spark")
        return pa.Table.from_pandas(spine.drop(columns=[order_column]), preserve_index=False)

    def to_pandas(self, joined: Any) -> Any:
        """The pandas frame Spark's ``toPandas`` gives for the joined table."""
        return to_pandas(joined)

    def latest_per_entity(
        self,
        source: Any,
        columns: LatestColumns,
        *,
        as_of: dt.datetime | None = None,
        since: dt.datetime | None = None,
        batch_rows: int = 10_000,
    ) -> LatestRows:
        """Each entity's newest row of the Parquet at ``source`` (a path, local or ``gs://``)."""
        if not isinstance(source, str):
            raise ConfigError(
                "engine",
                "the arrow engine reads the offline Parquet; pass its path, not a DataFrame",
            )
        return latest_rows(
            source,
            columns,
            as_of=as_of,
            since=since,
            batch_rows=batch_rows,
            emulator=self._emulator,
        )
