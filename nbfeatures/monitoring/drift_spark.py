"""The drift statistics computed by Spark, for windows larger than one machine's memory.

The same numbers as the in-process engine (``drift_stats``), from the served-log Parquet and
the offline set, each aggregated in Spark so only counts and quantiles come back: null counts,
the reference's deciles and the count per bin, category counts, and for Wasserstein a grid
of quantiles. Quantiles are ``percentile_approx`` with ``ACCURACY``: exact (and then equal to
the in-process "inverted CDF" quantiles) up to that many values, within 1/ACCURACY of the
rank beyond. Works on a local session and on Spark Connect alike.

Only the Evidently page's samples (at most ``max_rows`` vectors a side) are collected.
"""

from __future__ import annotations

import datetime as dt
from functools import reduce
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.definitions import Feature, FeatureFamily, FeatureType
from nbfeatures.engine.spark.spark_api import functions
from nbfeatures.monitoring import drift_stats
from nbfeatures.monitoring.config import DriftSettings
from nbfeatures.monitoring.drift import (
    SERVED_STATUSES,
    Collected,
    comparable,
    is_numeric,
    training_reference,
)
from nbfeatures.monitoring.served import served_root

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from nbfeatures.catalog import FamilyVersion
    from nbfeatures.config import Settings

ACCURACY = 100_000


def _served_long(
    spark: SparkSession,
    settings: Settings,
    fv: FamilyVersion,
    window: tuple[dt.datetime, dt.datetime],
) -> DataFrame | None:
    """The version's served-log rows (one per value) with request time in the window."""
    pafs = require("pyarrow.fs", "spark")
    from nbfeatures.engine.gcs import arrow_filesystem

    fs, root = arrow_filesystem(served_root(settings), emulator=settings.gcs_emulator)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return None
    F = functions(spark)
    frame = spark.read.parquet(served_root(settings))
    # No lower bound on the day folder: a flushed batch is filed under its first entry's day.
    last_day = (window[1] + dt.timedelta(days=1)).date().isoformat()
    return frame.where(
        (F.col("family") == fv.family.name)
        & (F.col("version") == fv.version)
        & (F.col("date").cast("string") <= F.lit(last_day))
        & (F.col("request_time") >= F.lit(window[0]))
        & (F.col("request_time") < F.lit(window[1]))
    )


def _decoded(F: Any, feature: Feature) -> Any:
    """A logged JSON value as the comparable form: a double, or a category's text."""
    # Wrapping the value in an object lets Spark's JSON path unescape strings for us.
    raw = F.get_json_object(F.concat(F.lit('{"v":'), F.col("value"), F.lit("}")), "$.v")
    if feature.dtype is FeatureType.TIMESTAMP:
        return F.unix_micros(raw.cast("timestamp")).cast("double") / F.lit(1_000_000.0)
    if is_numeric(feature.dtype):
        return raw.cast("double")
    return raw  # text, and booleans as "true"/"false" already


def _stored(F: Any, feature: Feature) -> Any:
    """An offline column as the comparable form."""
    column = F.col(feature.name)
    if feature.dtype is FeatureType.TIMESTAMP:
        return F.unix_micros(column.cast("timestamp")).cast("double") / F.lit(1_000_000.0)
    if is_numeric(feature.dtype):
        return column.cast("double")
    if feature.dtype is FeatureType.BOOL:
        return F.when(column.isNull(), F.lit(None)).when(column, "true").otherwise("false")
    return column.cast("string")


def _reference_frame(
    spark: SparkSession,
    settings: Settings,
    fv: FamilyVersion,
    reference_range: tuple[dt.datetime, dt.datetime],
    reference: Any,
) -> DataFrame:
    """The reference with one comparable column per feature."""
    F = functions(spark)
    family = fv.family
    if reference is not None:
        # A training set is read whole (it was built in memory to train a model).
        local = comparable(training_reference(reference, family), family)
        types = require("pyspark.sql.types", "spark")
        schema = types.StructType(
            [
                types.StructField(
                    f.name, types.DoubleType() if is_numeric(f.dtype) else types.StringType()
                )
                for f in family.features
            ]
        )
        rows = [tuple(None if _nan(v) else v for v in row) for row in local.itertuples(index=False)]
        return spark.createDataFrame(rows, schema)
    from nbfeatures.engine.spark.offline import read_offline

    offline = read_offline(spark, settings, family.name, fv.version, *reference_range, check=False)
    return offline.select(*[_stored(F, f).alias(f.name) for f in family.features])


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _numeric(
    F: Any, reference: DataFrame, current: DataFrame, current_rows: int, wasserstein: bool
) -> drift_stats.NumericStats:
    deciles = drift_stats.decile_points()
    grid = drift_stats.grid_points()

    def summary(frame: DataFrame) -> Any:
        columns = [F.count(F.lit(1)).alias("rows"), F.count("v").alias("values"),
                   F.stddev_pop("v").alias("std"),
                   F.percentile_approx("v", deciles, ACCURACY).alias("deciles")]  # fmt: skip
        if wasserstein:
            columns.append(F.percentile_approx("v", grid, ACCURACY).alias("grid"))
        return frame.agg(*columns).collect()[0]

    ref, cur = summary(reference), summary(current)
    edges = drift_stats.inner_edges(ref["deciles"] or [])
    return drift_stats.NumericStats(
        reference=drift_stats.Counts(int(ref["rows"]), int(ref["rows"]) - int(ref["values"])),
        current=drift_stats.Counts(current_rows, current_rows - int(cur["values"])),
        edges=edges,
        reference_bins=_bins(F, reference, edges),
        current_bins=_bins(F, current, edges),
        reference_quantiles=tuple(ref["grid"] or ()) if wasserstein else (),
        current_quantiles=tuple(cur["grid"] or ()) if wasserstein else (),
        reference_std=float(ref["std"] or 0.0),
    )


def _bins(F: Any, frame: DataFrame, edges: tuple[float, ...]) -> tuple[int, ...]:
    """Count per bin, a value's bin being how many inner edges are <= it (as ``bin_counts``)."""
    above = [(F.col("v") >= F.lit(edge)).cast("int") for edge in edges]
    index = reduce(lambda a, b: a + b, above) if above else F.lit(0)
    counts = {
        int(r["bin"]): int(r["count"])
        for r in frame.where(F.col("v").isNotNull()).groupBy(index.alias("bin")).count().collect()
    }
    return tuple(counts.get(i, 0) for i in range(len(edges) + 1))


def _categorical(
    F: Any, reference: DataFrame, current: DataFrame, current_rows: int
) -> drift_stats.CategoricalStats:
    def counts(frame: DataFrame) -> dict[str, int]:
        rows = frame.where(F.col("v").isNotNull()).groupBy("v").count().collect()
        return {str(r["v"]): int(r["count"]) for r in rows}

    ref, cur = counts(reference), counts(current)
    reference_rows = int(reference.count())
    categories = tuple(sorted(set(ref) | set(cur)))
    return drift_stats.CategoricalStats(
        reference=drift_stats.Counts(reference_rows, reference_rows - sum(ref.values())),
        current=drift_stats.Counts(current_rows, current_rows - sum(cur.values())),
        categories=categories,
        reference_counts=tuple(ref.get(c, 0) for c in categories),
        current_counts=tuple(cur.get(c, 0) for c in categories),
    )


def _current_sample(
    F: Any, served: DataFrame, family: FeatureFamily, vectors: int, limit: int
) -> Any:
    """At most ``limit`` served vectors, widened (one column per feature) in Spark."""
    pd = require("pandas", "monitoring")
    share = min(1.0, limit / vectors) if vectors else 1.0
    # Pick whole vectors by a hash of their identity, so every feature of a vector is kept.
    picked = served.where(
        (F.abs(F.xxhash64("log_id", "entity")) % F.lit(1_000_000)) < F.lit(int(share * 1_000_000))
    )
    texts = reduce(
        lambda column, f: column.when(F.col("feature") == f.name, _decoded(F, f).cast("string")),
        family.features[1:],
        F.when(F.col("feature") == family.features[0].name,
               _decoded(F, family.features[0]).cast("string")),
    )  # fmt: skip
    wide: Any = (
        picked.withColumn("t", texts)
        .groupBy("log_id", "entity")
        .pivot("feature", list(family.feature_names))
        .agg(F.first("t"))
        .orderBy("log_id", "entity")
        .limit(limit)
        .toPandas()
    )
    out = {}
    for feature in family.features:
        column = wide[feature.name] if feature.name in wide else pd.Series([None] * len(wide))
        if is_numeric(feature.dtype):
            out[feature.name] = pd.to_numeric(column).astype("float64").to_numpy()
        else:
            out[feature.name] = [None if _nan(v) else v for v in column]
    return pd.DataFrame(out, index=range(len(wide)))


def collect_spark(
    settings: Settings,
    fv: FamilyVersion,
    window: tuple[dt.datetime, dt.datetime],
    reference_range: tuple[dt.datetime, dt.datetime],
    reference: Any,
    drift: DriftSettings,
    spark: SparkSession | None = None,
) -> Collected:
    """What ``drift_report`` needs, aggregated by Spark (``spark``: the workspace's session
    by default)."""
    from nbfeatures.engine.spark.session import get_spark

    pd = require("pandas", "monitoring")
    spark = spark or get_spark(settings)
    F = functions(spark)
    family = fv.family
    reference_frame = _reference_frame(spark, settings, fv, reference_range, reference)
    served = _served_long(spark, settings, fv, window)
    lead = family.features[0].name
    statuses: dict[str, int] = {}
    if served is not None:
        # Each vector has one row per feature: count the vectors on one feature's rows.
        by_status = served.where(F.col("feature") == lead).groupBy("status").count().collect()
        statuses = {str(r["status"]): int(r["count"]) for r in by_status}
    vectors = sum(statuses.values())
    current_rows = sum(statuses.get(s, 0) for s in SERVED_STATUSES)
    current = served.where(F.col("status").isin(*SERVED_STATUSES)) if served is not None else None
    stats: dict[str, drift_stats.FeatureStats] = {}
    for feature in family.features:
        ref = reference_frame.select(F.col(feature.name).alias("v"))
        if current is None:
            cur = ref.limit(0)
        else:
            cur = current.where(F.col("feature") == feature.name).select(
                _decoded(F, feature).alias("v")
            )
        if is_numeric(feature.dtype):
            wasserstein = drift.numeric_method == "wasserstein"
            stats[feature.name] = _numeric(F, ref, cur, current_rows, wasserstein)
        else:
            stats[feature.name] = _categorical(F, ref, cur, current_rows)
    reference_rows = next(iter(stats.values())).reference.rows
    share = min(1.0, drift.max_rows / reference_rows) if reference_rows else 1.0
    reference_sample = (
        reference_frame.sample(fraction=share, seed=0).limit(drift.max_rows).toPandas()
        if share < 1.0
        else reference_frame.toPandas()
    )
    current_sample = (
        _current_sample(F, current, family, current_rows, drift.max_rows)
        if current is not None and current_rows
        else pd.DataFrame({f.name: [] for f in family.features})
    )
    return Collected(
        stats=stats,
        vectors=vectors,
        statuses=statuses,
        reference_rows=reference_rows,
        current_sample=current_sample,
        reference_sample=reference_sample,
    )
