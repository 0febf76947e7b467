"""Spark writes a family version into Redis from its executors, one Arrow batch at a time.

The driver only plans: it picks the latest row per entity (as of ``as_of``; for an incremental
run only entities with rows newer than the watermark), and Spark's ``mapInArrow`` hands each
executor's Python worker Arrow record batches of at most ``batch_rows`` rows. The worker encodes
a batch column-wise and sends it as one pipeline (``OnlineStore.write_rows``) on its own Redis
connection, so its memory is bounded by the batch size, never by the table. Per-partition
counts come back to the driver as one small row each, summed there (no extra Spark stage).

Profiled on 300k entities x 10 float64 features on local[2]: the writers are bound by Redis
itself (about 70% of a writer's time is spent waiting for ``+OK`` replies; encoding is ~5%),
and a fresh process spends most of a run starting the JVM and running its first job.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbfeatures.config import Settings
from nbfeatures.errors import ConfigError, SchemaError
from nbfeatures.online.layout import DEFAULT_PREFIX, FamilyLayout
from nbfeatures.online.store import OnlineStore

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

__all__ = ["MaterializeStats", "materialize"]

_COUNT = "__nbf_rows"
_STATS_SCHEMA = "written long, entities long, source_rows long, latest timestamp"
_BATCH_CONF = "spark.sql.execution.arrow.maxRecordsPerBatch"
# One store per Python worker and Redis target: workers are reused across tasks, so
# partitions after the first skip the connection handshake.
_WORKER_STORES: dict[tuple[str, str], OnlineStore] = {}


@dataclass(frozen=True)
class MaterializeStats:
    """What a materialization did.

    ``rows``: values written to Redis (one per entity, minus those already past the ttl);
    ``entities``: entities in scope; ``watermark``: the latest event time now in the version
    (the previous watermark when nothing newer was found); ``seconds``: wall time;
    ``source_rows``: input rows in scope before keeping the latest per entity.
    """

    rows: int
    entities: int
    watermark: dt.datetime | None
    seconds: float
    source_rows: int = 0


def _resolve_url(target: str | Settings | OnlineStore) -> str:
    if isinstance(target, OnlineStore):
        if target.url is None:
            raise ConfigError("redis_url", "the OnlineStore was built without a URL to share")
        return target.url
    if isinstance(target, Settings):
        if target.redis_url:
            return target.redis_url
        from nbfeatures.online.embedded import ensure_embedded

        return ensure_embedded(target).url
    return target


def _worker_store(url: str, prefix: str) -> OnlineStore:
    store = _WORKER_STORES.get((url, prefix))
    if store is None:
        store = OnlineStore.from_url(url, prefix)
        _WORKER_STORES[(url, prefix)] = store
    return store


def _writer(
    url: str, prefix: str, layout_json: str, key_id: str
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function each executor runs over its partition's Arrow batches."""

    def write_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa
        import pyarrow.compute as pc

        layout = FamilyLayout.from_json(layout_json)
        store = _worker_store(url, prefix)
        written = entities = source_rows = 0
        latest: Any = None
        for batch in batches:
            if batch.num_rows == 0:
                continue
            source_rows += int(pc.sum(batch.column(_COUNT)).as_py())
            entities += batch.num_rows
            newest = pc.max(batch.column(layout.timestamp)).as_py()
            latest = newest if latest is None or newest > latest else latest
            written += store.write_rows(layout, batch.drop_columns([_COUNT]), key_id=key_id)
        yield pa.RecordBatch.from_pydict(
            {
                "written": [written],
                "entities": [entities],
                "source_rows": [source_rows],
                "latest": pa.array([latest], pa.timestamp("us", tz="UTC")),
            }
        )

    return write_partition


def latest_per_entity(
    df: DataFrame,
    layout: FamilyLayout,
    as_of: dt.datetime | None = None,
    since: dt.datetime | None = None,
) -> DataFrame:
    """The newest row per entity with ``since < event time <= as_of``, plus its row count."""
    from pyspark.sql import functions as F

    missing = [
        c
        for c in (layout.entity_key, layout.timestamp, *layout.feature_names)
        if c not in df.columns
    ]
    if missing:
        raise SchemaError(layout.family, missing[0], "missing from the DataFrame to materialize")
    ts = F.col(layout.timestamp)
    scoped = df.where(F.col(layout.entity_key).isNotNull())
    if as_of is not None:
        scoped = scoped.where(ts <= F.lit(_utc(as_of)))
    if since is not None:
        scoped = scoped.where(ts > F.lit(_utc(since)))
    # One max_by per feature, not one over a struct of them: a struct buffer is not fixed-width,
    # so Spark would sort the table (before and after the shuffle) to aggregate it, while
    # fixed-width buffers (numbers, booleans, timestamps) aggregate in a hash map. The columns
    # still come from one row: every max_by replaces its value under the same condition (a
    # strictly newer event time, the later row on a tie), evaluated on the same rows in the
    # same order. String features have variable-width buffers and keep the sort.
    return scoped.groupBy(layout.entity_key).agg(
        F.max(ts).alias(layout.timestamp),
        *[F.max_by(F.col(n), ts).alias(n) for n in layout.feature_names],
        F.count(F.lit(1)).alias(_COUNT),
    )


def _utc(when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def materialize(
    df: DataFrame,
    layout: FamilyLayout,
    redis_url_or_settings: str | Settings | OnlineStore,
    *,
    as_of: dt.datetime | None = None,
    since: dt.datetime | None = None,
    incremental: bool = False,
    batch_rows: int = 10_000,
    prefix: str | None = None,
) -> MaterializeStats:
    """Write the latest row per entity of ``df`` into ``layout``'s keyspace; return the stats.

    Full (default): every entity's latest row as of ``as_of`` (all rows when ``None``).
    Incremental: only entities with rows newer than ``since``; with ``incremental=True`` and no
    ``since``, the version's recorded watermark is used (a full run when there is none).
    ``redis_url_or_settings`` is a Redis URL, workspace settings (their ``redis_url``, else the
    embedded server) or an ``OnlineStore`` (its URL and, unless ``prefix`` is given, its prefix).
    The layout is recorded first and the watermark after, so a reader never meets values it
    cannot decode, and a failed run leaves the previous watermark in place.
    """
    started = time.monotonic()
    if batch_rows <= 0:
        raise ConfigError("batch_rows", "must be positive")
    url = _resolve_url(redis_url_or_settings)
    if prefix is None:
        given = redis_url_or_settings
        prefix = given.prefix if isinstance(given, OnlineStore) else DEFAULT_PREFIX
    store = OnlineStore.from_url(url, prefix)
    store.write_layout(layout)
    # Resolved once here and shipped to the writers, so they never look it up themselves.
    key_id = store.key_id(layout.family, layout.version) or ""
    previous = store.watermark(layout.family, layout.version)
    if incremental and since is None:
        since = previous

    scoped = latest_per_entity(df, layout, as_of=as_of, since=since)
    spark = df.sparkSession
    before = spark.conf.get(_BATCH_CONF, None)
    spark.conf.set(_BATCH_CONF, str(batch_rows))
    try:
        writer = _writer(url, prefix, layout.to_json(), key_id)
        # One row of counts per partition: summed here, which spares a Spark stage.
        parts = scoped.mapInArrow(writer, _STATS_SCHEMA).collect()
    finally:
        if before is None:
            spark.conf.unset(_BATCH_CONF)
        else:
            spark.conf.set(_BATCH_CONF, before)

    newest = [part["latest"] for part in parts if part["latest"] is not None]
    latest = _utc(max(newest)) if newest else None
    watermark = previous
    if latest is not None and (previous is None or latest > previous):
        store.set_watermark(layout.family, layout.version, latest)
        watermark = latest
    store.close()
    return MaterializeStats(
        rows=sum(int(part["written"]) for part in parts),
        entities=sum(int(part["entities"]) for part in parts),
        watermark=watermark,
        seconds=time.monotonic() - started,
        source_rows=sum(int(part["source_rows"]) for part in parts),
    )
