"""Point-in-time joins: each spine row gets, per family, the latest value known at its time.

For a spine row at time ``T`` and a family with rows keyed by the same entity, the value is
the family's row with the greatest event time ``t <= T``; with a family ``ttl`` that row must
also satisfy ``t >= T - ttl``: a value is usable while its age is at most ``ttl``, the same
boundary the online store uses (Redis expires a key only once its time is strictly past, and
the server marks STALE only values older than ``ttl``). Otherwise the features are null.
Nothing from the future is ever used, and every spine row comes out exactly once,
duplicates included.

How it scales (sort-merge, not a range join): spine rows and feature rows of all families
keyed by the same entity column are unioned into one frame, partitioned by the entity key and
sorted by (time, kind) where feature rows sort before spine rows at the same time, so a value
stamped exactly at the spine time is visible. ``last(struct, ignorenulls)`` over a running
window then carries each family's latest row forward to the spine rows: one shuffle and one
sort per entity column, linear in the rows, no pairs. When a family has several rows for the
same entity and time, the one whose struct (time, features in order) sorts last wins, so the
answer is deterministic.

Output columns are named ``{family}__{feature}`` (always, even when unambiguous, so adding a
family to a call never renames the others' columns).

``nbfeatures.engine.arrow.pit`` gives the same answer in process, on Arrow and numpy, for
inputs that fit in memory; ``training_set(engine=...)`` chooses between the two, and the
tests run every case against both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from types import ModuleType
from typing import TYPE_CHECKING

from nbfeatures.engine.pit_rules import (
    TEXT,
    OutputColumns,
    check_columns,
    check_key_kinds,
    group_by_key,
)
from nbfeatures.engine.spark import spark_api

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

_KIND = "__nbf_kind"
_TIME = "t"


@dataclass(frozen=True)
class FeatureFrame(OutputColumns):
    """One family's rows for a join: which columns are the key, the time and the features."""

    name: str
    frame: DataFrame
    join_key: str
    timestamp: str
    features: tuple[str, ...]
    ttl: dt.timedelta | None = None


def point_in_time_join(
    spine: DataFrame,
    families: Sequence[FeatureFrame],
    *,
    timestamp_column: str,
    include_event_times: bool = False,
) -> DataFrame:
    """Add each family's point-in-time correct features to every spine row.

    ``spine`` must hold ``timestamp_column`` and each family's ``join_key``; its other columns
    (labels, ids) pass through. With ``include_event_times`` a ``{family}__event_time`` column
    says which row each value came from (null when none was valid).
    """
    F = spark_api.functions(spine)
    check_columns(list(spine.columns), families, timestamp_column, include_event_times)
    spine_types = {f.name: f.dataType.simpleString() for f in spine.schema.fields}
    for family in families:
        stored = family.frame.schema[family.join_key].dataType.simpleString()
        check_key_kinds(
            family.name,
            family.join_key,
            spark_key_kind(spine_types[family.join_key]),
            str(spark_key_kind(stored)),
        )
    result = spine.withColumn(timestamp_column, F.col(timestamp_column).cast("timestamp"))
    for key, group in group_by_key(families).items():
        result = _join_group(result, key, group, timestamp_column, include_event_times)
    return result


def spark_key_kind(simple_string: str) -> str | None:
    """The kind of a Spark key type (``simpleString``) for ``check_key_kinds``."""
    if simple_string in ("string",) or simple_string.startswith(("varchar", "char")):
        return TEXT
    if simple_string in ("tinyint", "smallint", "int", "bigint"):
        return "integer"
    if simple_string in ("float", "double") or simple_string.startswith("decimal"):
        return "floating point"
    return None if simple_string == "void" else simple_string


def _join_group(
    spine: DataFrame,
    key: str,
    group: list[FeatureFrame],
    timestamp_column: str,
    include_event_times: bool,
) -> DataFrame:
    """One union, one sort, one running window for all families keyed by ``key``."""
    F = spark_api.functions(spine)
    Window = spark_api.window(spine)
    structs = [f"__nbf_f{i}" for i in range(len(group))]
    parts = [spine.withColumn(_KIND, F.lit(1))]
    for family, struct in zip(group, structs, strict=True):
        event_time = F.col(family.timestamp).cast("timestamp")
        parts.append(
            family.frame.where(F.col(family.join_key).isNotNull() & event_time.isNotNull()).select(
                F.col(family.join_key).alias(key),
                event_time.alias(timestamp_column),
                F.struct(
                    event_time.alias(_TIME), *[F.col(f).alias(f) for f in family.features]
                ).alias(struct),
                F.lit(0).alias(_KIND),
            )
        )
    union = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)
    window = (
        Window.partitionBy(key)
        .orderBy(F.col(timestamp_column), F.col(_KIND), *[F.col(s) for s in structs])
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    carried = union.select(
        *[F.col(c) for c in spine.columns],
        F.col(_KIND),
        *[F.last(F.col(s), ignorenulls=True).over(window).alias(s) for s in structs],
    ).where(F.col(_KIND) == 1)

    spine_time = F.col(timestamp_column)
    outputs: list[Column] = []
    for family, struct in zip(group, structs, strict=True):
        valid = _valid(F, F.col(f"{struct}.{_TIME}"), spine_time, family.ttl)
        outputs.extend(
            F.when(valid, F.col(f"{struct}.{f}")).alias(family.column(f)) for f in family.features
        )
        if include_event_times:
            outputs.append(
                F.when(valid, F.col(f"{struct}.{_TIME}")).alias(family.event_time_column)
            )
    return carried.select(*[F.col(c) for c in spine.columns], *outputs)


def _valid(
    F: ModuleType, event_time: Column, spine_time: Column, ttl: dt.timedelta | None
) -> Column:
    """A carried row is usable when it exists and, with a ttl, its age is at most the ttl."""
    present = event_time.isNotNull()
    if ttl is None:
        return present
    ttl_micros = ttl // dt.timedelta(microseconds=1)
    age_ok: Column = F.unix_micros(event_time) >= F.unix_micros(spine_time) - F.lit(ttl_micros)
    return present & age_ok
