"""Preview a family's data: per-feature statistics, histograms and a few sample rows.

``compute_preview`` reads the (cached) result three times, whatever the number of features:

1. one aggregation for row and entity counts, event-time range and, per feature, non-null
   count, exact distinct count, min, max and mean. Distinct counts are exact because a
   preview reads a bounded sample (``preview_limit`` rows per source), where an estimate's
   error (HyperLogLog reported 52 users of 50) would only confuse;
2. one aggregation for the histograms of numeric features, bucketing each value by the
   min/max of pass 1;
3. the first ``rows`` rows by entity key and timestamp (a top-k, not a sort of everything).

Floating-point NaN and infinities count as nulls: they have no place in a mean or histogram.
``Preview.stats_dict`` is the JSON form the catalog stores at registration, and
``Preview.compare`` sets two of those side by side.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.definitions import Feature, FeatureFamily, FeatureType
from nbfeatures.engine.spark.spark_errors import spark_message
from nbfeatures.errors import DefinitionError, TransformationError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


@dataclass(frozen=True)
class FeatureStats:
    """Summary of one feature's values; ``min``/``max`` are strings for string features."""

    name: str
    dtype: str
    count: int
    nulls: int
    distinct: int
    min: float | str | None
    max: float | str | None
    mean: float | None


@dataclass(frozen=True)
class Histogram:
    """Equal-width bins: ``counts[i]`` values lie in ``[edges[i], edges[i + 1])`` (last closed)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class Preview:
    """What the preview widget shows and the catalog stores (through ``stats_dict``)."""

    family: FeatureFamily
    row_count: int
    entity_count: int
    schema: tuple[tuple[str, str], ...]
    sample: Any  # a pandas.DataFrame (pandas ships no type stubs)
    stats: dict[str, FeatureStats]
    histograms: dict[str, Histogram]
    event_time_min: dt.datetime | None = None
    event_time_max: dt.datetime | None = None

    def stats_dict(self) -> dict[str, Any]:
        """A JSON-able form: counts, schema, event-time range, per-feature stats, histograms."""
        return {
            "family": self.family.name,
            "row_count": self.row_count,
            "entity_count": self.entity_count,
            "schema": [list(pair) for pair in self.schema],
            "event_time_min": _iso(self.event_time_min),
            "event_time_max": _iso(self.event_time_max),
            "stats": {name: asdict(stats) for name, stats in self.stats.items()},
            "histograms": {
                name: {"edges": list(h.edges), "counts": list(h.counts)}
                for name, h in self.histograms.items()
            },
        }

    @staticmethod
    def compare(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One row per feature of two ``stats_dict`` results: the new features, then removed.

        ``change`` is ``added``, ``removed``, ``type changed`` or ``same`` (same name and type;
        the values may still differ, which the side-by-side numbers show).
        """
        old_stats: Mapping[str, Any] = (old or {}).get("stats", {})
        new_stats: Mapping[str, Any] = new.get("stats", {})
        rows = []
        for name in [*new_stats, *(n for n in old_stats if n not in new_stats)]:
            before, after = old_stats.get(name), new_stats.get(name)
            if before is None:
                change = "added"
            elif after is None:
                change = "removed"
            elif before.get("dtype") != after.get("dtype"):
                change = "type changed"
            else:
                change = "same"
            row: dict[str, Any] = {"feature": name, "change": change}
            for key, label in (("dtype", "type"), *((k, k) for k in _COMPARED)):
                row[f"old_{label}"] = before.get(key) if before else None
                row[f"new_{label}"] = after.get(key) if after else None
            rows.append(row)
        return rows


_COMPARED = ("count", "nulls", "mean", "min", "max")


def compute_preview(
    df: DataFrame, family: FeatureFamily, rows: int = 20, bins: int = 10
) -> Preview:
    """Statistics, histograms and ``rows`` sample rows of ``df``, the family's output.

    Spark errors raised while running the transformation (a failing cast, a Python UDF that
    raises) become ``TransformationError`` naming the family.
    """
    if rows < 0:
        raise DefinitionError("rows", f"{rows!r} is not a number of rows")
    if bins < 1:
        raise DefinitionError("bins", f"{bins!r} is not a positive number of bins")
    errors = require("pyspark.errors", "spark")
    level = df.storageLevel
    # Three passes read the result: cache it once, unless the caller already did.
    owned = not (level.useMemory or level.useDisk)
    try:
        if owned:
            df = df.persist()  # may already run the optimizer, and fail, on constant input
        return _compute(df, family, rows, bins)
    except errors.PySparkException as exc:
        raise TransformationError(family.name, spark_message(exc)) from exc
    finally:
        if owned:
            df.unpersist()


def _compute(df: DataFrame, family: FeatureFamily, rows: int, bins: int) -> Preview:
    F = require("pyspark.sql.functions", "spark")
    key, ts = family.entity.join_key, family.timestamp
    aggregates = [
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct(F.col(key)).alias("entities"),
        F.min(ts).alias("ts_min"),
        F.max(ts).alias("ts_max"),
    ]
    for i, feature in enumerate(family.features):
        value = _value(feature)
        aggregates += [
            F.count(value).alias(f"count_{i}"),
            F.count_distinct(value).alias(f"distinct_{i}"),
            F.min(value).alias(f"min_{i}"),
            F.max(value).alias(f"max_{i}"),
        ]
        if feature.dtype.is_numeric or feature.dtype is FeatureType.BOOL:
            aggregates.append(F.avg(value).alias(f"mean_{i}"))
    totals = df.agg(*aggregates).first()
    if totals is None:  # an aggregation without grouping always yields one row
        raise TransformationError(family.name, "the statistics query returned no row")
    row_count = int(totals["rows"])
    stats = {}
    for i, feature in enumerate(family.features):
        count = int(totals[f"count_{i}"])
        numeric = feature.dtype.is_numeric or feature.dtype is FeatureType.BOOL
        stats[feature.name] = FeatureStats(
            name=feature.name,
            dtype=feature.dtype.value,
            count=count,
            nulls=row_count - count,
            distinct=int(totals[f"distinct_{i}"]),
            min=_plain(totals[f"min_{i}"]),
            max=_plain(totals[f"max_{i}"]),
            mean=_plain_float(totals[f"mean_{i}"]) if numeric else None,
        )
    histograms = _histograms(df, family, stats, bins)
    sample = df.orderBy(key, ts).limit(rows).toPandas()
    return Preview(
        family=family,
        row_count=row_count,
        entity_count=int(totals["entities"]),
        schema=tuple((f.name, f.dataType.simpleString()) for f in df.schema.fields),
        sample=sample,
        stats=stats,
        histograms=histograms,
        event_time_min=totals["ts_min"],
        event_time_max=totals["ts_max"],
    )


def _value(feature: Feature) -> Column:
    """The feature's column, floats' NaN/inf as null and booleans as 0/1 (for min/max/mean)."""
    F = require("pyspark.sql.functions", "spark")
    column: Column = F.col(feature.name)
    if feature.dtype in (FeatureType.FLOAT32, FeatureType.FLOAT64):
        finite = ~F.isnan(column) & (F.abs(column) != F.lit(math.inf))
        column = F.when(finite, column)
    elif feature.dtype is FeatureType.BOOL:
        column = column.cast("int")
    return column


def _histograms(
    df: DataFrame, family: FeatureFamily, stats: Mapping[str, FeatureStats], bins: int
) -> dict[str, Histogram]:
    """Equal-width histograms of the numeric features with values, in one aggregation."""
    F = require("pyspark.sql.functions", "spark")
    histograms: dict[str, Histogram] = {}
    aggregates = []
    ranges: dict[str, tuple[float, float]] = {}
    for i, feature in enumerate(family.features):
        summary = stats[feature.name]
        low, high = summary.min, summary.max
        if (
            not feature.dtype.is_numeric
            or not isinstance(low, float)
            or not isinstance(high, float)
        ):
            continue  # not numeric, or no values to bin
        if low == high:  # one value: one bin, no Spark work needed
            histograms[feature.name] = Histogram(edges=(low, high), counts=(summary.count,))
            continue
        ranges[feature.name] = (low, high)
        scaled = (_value(feature).cast("double") - F.lit(low)) * F.lit(bins / (high - low))
        # Not least(): it skips nulls, which would put every missing value in the last bin.
        bucket = F.when(scaled >= bins, bins - 1).otherwise(F.floor(scaled))
        aggregates += [F.count(F.when(bucket == b, 1)).alias(f"h{i}_{b}") for b in range(bins)]
    if not aggregates:
        return histograms
    counts = df.agg(*aggregates).first()
    if counts is None:
        raise TransformationError(family.name, "the histogram query returned no row")
    for i, feature in enumerate(family.features):
        if feature.name not in ranges:
            continue
        low, high = ranges[feature.name]
        width = (high - low) / bins
        histograms[feature.name] = Histogram(
            edges=(*(low + b * width for b in range(bins)), high),
            counts=tuple(int(counts[f"h{i}_{b}"]) for b in range(bins)),
        )
    return histograms


def _plain(value: Any) -> float | str | None:
    """A JSON-friendly scalar: numbers as float, timestamps as ISO text, strings as they are."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return float(value)


def _plain_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()
