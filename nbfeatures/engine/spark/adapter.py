"""``SparkEngine``: the engine port on a Spark session (local, a cluster or Spark Connect)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.engine.port import LatestRows
from nbfeatures.engine.spark import frames
from nbfeatures.engine.spark.latest import COUNT_COLUMN, latest_per_entity, read_parquet, utc
from nbfeatures.engine.spark.offline import compute_offline, read_offline
from nbfeatures.engine.spark.pit import FeatureFrame, point_in_time_join
from nbfeatures.engine.spark.progress import spark_progress

if TYPE_CHECKING:
    from nbfeatures.config import Settings
    from nbfeatures.engine.offline_store import Manifest, VersionedFamily
    from nbfeatures.engine.port import LatestColumns, StoredFamily


class SparkEngine:
    """The engine port on ``spark``, else the workspace's session, started when first used."""

    name = "spark"

    def __init__(self, settings: Settings | None = None, spark: Any = None) -> None:
        self._settings = settings
        self._spark = spark

    @property
    def spark(self) -> Any:
        """The session: the one given, else the workspace's (``spark.session.get_spark``)."""
        if self._spark is None:
            from nbfeatures.config import activate, active_settings, load_settings
            from nbfeatures.engine.spark.session import get_spark

            settings = self._settings or active_settings() or activate(load_settings())
            self._spark = get_spark(settings)
        return self._spark

    def progress(self, label: str, enabled: bool = True) -> contextlib.AbstractContextManager[None]:
        """Spark's job progress under ``label`` while the block runs."""
        return spark_progress(self.spark, label, enabled=enabled)

    def compute_version(
        self,
        settings: Settings,
        version: VersionedFamily,
        start: dt.datetime,
        end: dt.datetime,
        *,
        progress: bool = True,
    ) -> Manifest:
        """Run the version's transformation and store ``[start, end)`` (``compute_offline``)."""
        with self.progress(f"computing {getattr(version, 'ref', version.family.name)}", progress):
            return compute_offline(self.spark, settings, version, start, end)

    def read_offline(
        self,
        settings: Settings,
        family: str,
        version: int,
        start: dt.datetime | None,
        end: dt.datetime | None,
    ) -> Any:
        """The stored rows with event time in ``[start, end)`` as a lazy Spark frame."""
        return read_offline(self.spark, settings, family, version, start, end, check=False)

    def point_in_time_join(
        self,
        spine: Any,
        families: Sequence[StoredFamily],
        *,
        timestamp_column: str,
        include_event_times: bool = False,
    ) -> Any:
        """The sort-merge window join of ``engine.spark.pit`` on a Spark spine; lazy."""
        spark_families = [
            FeatureFrame(f.name, f.rows, f.join_key, f.timestamp, f.features, f.ttl)
            for f in families
        ]
        return point_in_time_join(
            spine,
            spark_families,
            timestamp_column=timestamp_column,
            include_event_times=include_event_times,
        )

    def from_pandas(self, spine: Any, order_column: str) -> Any:
        """A pandas spine as a Spark frame, ``order_column`` kept to restore its order."""
        return frames.spark_spine(self.spark, spine)

    def to_pandas(self, joined: Any) -> Any:
        """Collected in the spine's order, with nullable integer and UTC time columns."""
        return frames.to_pandas(joined)

    def latest_per_entity(
        self,
        source: Any,
        columns: LatestColumns,
        *,
        as_of: dt.datetime | None = None,
        since: dt.datetime | None = None,
        batch_rows: int = 10_000,
    ) -> LatestRows:
        """Each entity's newest row of ``source`` (a DataFrame or a Parquet path), collected
        to this process. Materialization does not call this: there Spark's executors write
        the batches where they are (``nbfeatures.materialization``)."""
        pc = require("pyarrow.compute", "spark")
        frame = source if not isinstance(source, str) else read_parquet(source, self._spark)
        table = latest_per_entity(frame, columns, as_of=as_of, since=since).toArrow()
        source_rows = int(pc.sum(table[COUNT_COLUMN]).as_py() or 0)
        newest = pc.max(table[columns.timestamp]).as_py() if table.num_rows else None
        latest_us = None
        if newest is not None:
            epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
            latest_us = (utc(newest) - epoch) // dt.timedelta(microseconds=1)
        table = table.drop_columns([COUNT_COLUMN])
        batches = iter(table.to_batches(max_chunksize=batch_rows))
        return LatestRows(table.num_rows, source_rows, latest_us, batches)
