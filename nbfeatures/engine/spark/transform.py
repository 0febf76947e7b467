"""Turn a ``%%feature`` cell into a Spark DataFrame, its features and a ``FeatureFamily``.

``run_transformation`` is the one code path from a definition to data: the notebook preview
calls it with a row ``limit``, the batch job without one. SQL bodies are handled by
``sql_body``, Python bodies by ``python_body``; this module checks the output's schema.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from nbfeatures.definitions import (
    NAME_PATTERN,
    Entity,
    Feature,
    FeatureFamily,
    FeatureType,
    Source,
    Transformation,
    TransformationKind,
    check_name,
    parse_duration,
)
from nbfeatures.engine.spark.python_body import run_python
from nbfeatures.engine.spark.sources import check_limit
from nbfeatures.engine.spark.sql_body import run_sql
from nbfeatures.errors import DefinitionError, SchemaError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_TIMESTAMP_TYPES = {"timestamp", "timestamp_ntz"}
_KEY_TYPES = {"string", "int", "bigint", "smallint", "tinyint"}


def run_transformation(
    spark: SparkSession,
    family: str,
    transformation: Transformation,
    sources: Sequence[Source],
    limit: int | None = None,
) -> tuple[DataFrame, tuple[Source, ...]]:
    """The transformation's (lazy) result and the sources it reads.

    With ``limit``, each source is cut to that many rows before the transformation runs.
    Errors: ``SourceError`` (unknown or unreadable source), ``TransformationError`` (does
    not parse, fails analysis, or a Python body that raises), ``DefinitionError`` (bad limit).
    """
    check_limit(limit)
    by_name = {source.name: source for source in sources}
    if transformation.kind is TransformationKind.SQL:
        return run_sql(spark, family, transformation.text, by_name, limit)
    return run_python(spark, family, transformation.text, by_name, limit)


def infer_features(
    df: DataFrame, family: str, entity_key: str, timestamp: str
) -> tuple[Feature, ...]:
    """One feature per output column other than the entity key and the timestamp."""
    fields = df.schema.fields
    names = [field.name for field in fields]
    duplicated = [name for name, n in Counter(n.lower() for n in names).items() if n > 1]
    if duplicated:
        raise SchemaError(
            family,
            duplicated[0],
            f"duplicate feature name: the output has {names.count(duplicated[0])} columns "
            "of that name; alias them apart",
        )
    types = {field.name: field.dataType.simpleString() for field in fields}
    listing = ", ".join(names)
    for column in (entity_key, timestamp):
        if column not in types:
            raise SchemaError(family, column, f"not in the output; columns are: {listing}")
    if types[entity_key] not in _KEY_TYPES:
        raise SchemaError(
            family,
            entity_key,
            f"the entity key is of type {types[entity_key]}; use a string or integer column",
        )
    if types[timestamp] not in _TIMESTAMP_TYPES:
        raise SchemaError(
            family,
            timestamp,
            f"is of type {types[timestamp]}, not timestamp; "
            + _timestamp_hint(timestamp, types[timestamp]),
        )
    features = []
    for name, spark_type in types.items():
        if name in (entity_key, timestamp):
            continue
        if not NAME_PATTERN.match(name):
            raise SchemaError(
                family,
                name,
                "is not a valid feature name; alias the column (... AS my_feature) with "
                "lowercase letters, digits and underscores, starting with a letter",
            )
        try:
            dtype = FeatureType.from_spark(spark_type, name)
        except DefinitionError:
            raise SchemaError(family, name, _type_hint(name, spark_type)) from None
        features.append(Feature(name=name, dtype=dtype))
    return tuple(features)


def build_family(
    spark: SparkSession,
    *,
    name: str,
    body: str,
    python: bool,
    entity_key: str,
    timestamp: str,
    sources: Sequence[Source],
    owner: str,
    description: str = "",
    tags: Iterable[str] = (),
    ttl: str | None = None,
    freshness: str | None = None,
    limit: int | None,
    retention: str | None = None,
) -> tuple[FeatureFamily, DataFrame]:
    """Validate a ``%%feature`` cell, run it (bounded by ``limit``) and describe its family.

    Cheap checks (names, durations, body) come before any Spark work. The family lists only
    the sources its transformation reads. Nothing is left registered in the Spark session.
    """
    check_name(name, "name")
    entity = Entity(name=entity_name(entity_key), join_key=entity_key)
    check_name(timestamp, "timestamp")
    ttl_value = parse_duration(ttl, "ttl")
    freshness_value = parse_duration(freshness, "freshness")
    retention_value = parse_duration(retention, "retention")
    if retention_value is not None and ttl_value is None:
        raise DefinitionError("retention", "a retention window extends the ttl; set --ttl as well")
    kind = TransformationKind.PYTHON if python else TransformationKind.SQL
    transformation = Transformation(kind=kind, text=body)
    df, used = run_transformation(spark, name, transformation, sources, limit)
    features = infer_features(df, name, entity_key, timestamp)
    family = FeatureFamily(
        name=name,
        entity=entity,
        timestamp=timestamp,
        features=features,
        transformation=transformation,
        sources=used,
        owner=owner,
        description=description,
        tags=tuple(tags),
        ttl=ttl_value,
        freshness=freshness_value,
        retention=retention_value,
    )
    return family, df


def entity_name(entity_key: str) -> str:
    """``user_id`` -> ``user``; a key without an ``_id`` suffix names its entity itself."""
    check_name(entity_key, "entity.join_key")
    stripped = entity_key.removesuffix("_id")
    return stripped if stripped and NAME_PATTERN.match(stripped) else entity_key


def _timestamp_hint(column: str, spark_type: str) -> str:
    if spark_type == "date":
        return f"convert it in the transformation: CAST({column} AS TIMESTAMP)"
    if spark_type in ("int", "bigint", "double", "float"):
        return (
            f"if it holds epoch seconds, convert it with timestamp_seconds({column}) "
            f"(or timestamp_millis({column}))"
        )
    return (
        f"convert it in the transformation: CAST({column} AS TIMESTAMP) or "
        f"to_timestamp({column}, 'yyyy-MM-dd HH:mm:ss')"
    )


def _type_hint(column: str, spark_type: str) -> str:
    supported = ", ".join(sorted({t.value for t in FeatureType}))
    reason = f"type {spark_type} is not supported (feature types: {supported})"
    if spark_type.startswith("decimal"):
        return f"{reason}; CAST({column} AS DOUBLE)"
    if spark_type == "date":
        return f"{reason}; CAST({column} AS TIMESTAMP)"
    if spark_type.startswith(("array", "map", "struct")):
        return f"{reason}; features are scalars: flatten it into one column per value"
    return reason
