"""The Spark engine's latest value per entity: one aggregation, its Arrow batches written where
they are (``mapInArrow`` on the executors), never collected to the driver."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from nbfeatures.errors import SchemaError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

    from nbfeatures.engine.port import LatestColumns

# The column counting the source rows behind each entity's latest row.
COUNT_COLUMN = "__nbf_rows"
_BATCH_CONF = "spark.sql.execution.arrow.maxRecordsPerBatch"


def utc(when: dt.datetime) -> dt.datetime:
    """``when`` in UTC; a naive time is taken as UTC."""
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def latest_per_entity(
    df: DataFrame,
    layout: LatestColumns,
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
        scoped = scoped.where(ts <= F.lit(utc(as_of)))
    if since is not None:
        scoped = scoped.where(ts > F.lit(utc(since)))
    # One max_by per feature, not one over a struct of them: a struct buffer is not fixed-width,
    # so Spark would sort the table (before and after the shuffle) to aggregate it, while
    # fixed-width buffers (numbers, booleans, timestamps) aggregate in a hash map. The columns
    # still come from one row: every max_by replaces its value under the same condition (a
    # strictly newer event time, the later row on a tie), evaluated on the same rows in the
    # same order. String features have variable-width buffers and keep the sort.
    return scoped.groupBy(layout.entity_key).agg(
        F.max(ts).alias(layout.timestamp),
        *[F.max_by(F.col(n), ts).alias(n) for n in layout.feature_names],
        F.count(F.lit(1)).alias(COUNT_COLUMN),
    )


def map_partitions(
    scoped: DataFrame,
    function: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]],
    schema: str,
    batch_rows: int,
) -> list[Any]:
    """Run ``function`` over each partition's Arrow batches of at most ``batch_rows`` rows and
    collect the small rows it yields (the session's batch size is restored after)."""
    spark = scoped.sparkSession
    before = spark.conf.get(_BATCH_CONF, None)
    spark.conf.set(_BATCH_CONF, str(batch_rows))
    try:
        return list(scoped.mapInArrow(function, schema).collect())
    finally:
        if before is None:
            spark.conf.unset(_BATCH_CONF)
        else:
            spark.conf.set(_BATCH_CONF, before)


def entity_estimate(frame: DataFrame, key: str) -> int | None:
    """About how many distinct ``key`` values ``frame`` holds: one ``approx_count_distinct``
    job (within a few percent)."""
    from pyspark.sql import functions as F

    row = frame.agg(F.approx_count_distinct(key).alias("n")).first()
    return int(row["n"]) if row is not None and row["n"] else None


def read_parquet(path: str, spark: Any) -> DataFrame:
    """``path``'s Parquet through ``spark``, else the active session."""
    from pyspark.sql import SparkSession

    from nbfeatures.errors import ConfigError

    if spark is None:
        spark = SparkSession.getActiveSession()
        if spark is None:
            raise ConfigError("spark", "the spark engine needs a Spark session to read the path")
    frame: DataFrame = spark.read.parquet(path)
    return frame


def session_master(spark: Any) -> str:
    """A session's master; ``sc://`` for Spark Connect, which hides it (never local)."""
    try:
        return str(spark.conf.get("spark.master"))
    except Exception:  # Spark Connect hides the master: its executors are never local
        return "sc://"
