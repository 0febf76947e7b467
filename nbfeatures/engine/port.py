"""The engine port: the few calls training, compute and materialization make of an engine.

Two adapters implement it: ``engine.spark.adapter.SparkEngine`` (any cluster, Spark Connect)
and ``engine.arrow.adapter.ArrowEngine`` (pyarrow and numpy in this process, no JVM).
``engine.factory.choose_engine`` picks one. Frames are each engine's own: a Spark
``DataFrame`` for Spark, a ``pyarrow.Table`` (or a lazy row source) for Arrow; both joins
give the same rows and columns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from nbfeatures.config import Settings
    from nbfeatures.engine.offline_store import Manifest, VersionedFamily


class LatestColumns(Protocol):
    """What picking the latest row per entity needs (``online.FamilyLayout`` fits)."""

    @property
    def family(self) -> str: ...

    @property
    def entity_key(self) -> str: ...

    @property
    def timestamp(self) -> str: ...

    @property
    def feature_names(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class StoredFamily:
    """One family's stored rows for a join: the engine's frame and which columns are what."""

    name: str
    rows: Any  # the engine's frame of the family's stored rows (``Engine.read_offline``)
    join_key: str
    timestamp: str
    features: tuple[str, ...]
    ttl: dt.timedelta | None = None


@dataclass(frozen=True)
class LatestRows:
    """Each entity's latest row in scope: the counts come before the first batch."""

    entities: int
    source_rows: int  # rows in scope before keeping the latest per entity
    latest_us: int | None  # the newest picked event time, microseconds since the epoch (UTC)
    batches: Iterator[pa.RecordBatch]


class Engine(Protocol):
    """A batch engine: ``name`` is ``"spark"`` or ``"arrow"``."""

    @property
    def name(self) -> str: ...

    def progress(self, label: str, enabled: bool = True) -> AbstractContextManager[None]:
        """Show the engine's progress under ``label`` while the block runs (if it has any)."""
        ...

    def from_pandas(self, spine: Any, order_column: str) -> Any:
        """A pandas spine as this engine's frame; ``order_column`` holds its row order."""
        ...

    def to_pandas(self, joined: Any) -> Any:
        """A joined frame as pandas, in the spine's order, typed as Spark's ``toPandas``."""
        ...

    def compute_version(
        self,
        settings: Settings,
        version: VersionedFamily,
        start: dt.datetime,
        end: dt.datetime,
        *,
        progress: bool = True,
    ) -> Manifest:
        """Compute ``version`` over ``[start, end)`` (whole UTC days) into the offline store."""
        ...

    def read_offline(
        self,
        settings: Settings,
        family: str,
        version: int,
        start: dt.datetime | None,
        end: dt.datetime | None,
    ) -> Any:
        """A stored version's rows around ``[start, end]`` as this engine's frame."""
        ...

    def point_in_time_join(
        self,
        spine: Any,
        families: Sequence[StoredFamily],
        *,
        timestamp_column: str,
        include_event_times: bool = False,
    ) -> Any:
        """``engine.pit_rules``'s join of ``spine`` (this engine's frame) with ``families``."""
        ...

    def latest_per_entity(
        self,
        source: Any,
        columns: LatestColumns,
        *,
        as_of: dt.datetime | None = None,
        since: dt.datetime | None = None,
        batch_rows: int = 10_000,
    ) -> LatestRows:
        """Each entity's newest row of ``source`` with ``since < event time <= as_of``."""
        ...
