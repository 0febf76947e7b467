"""Read a family's sources (Parquet, CSV or Spark tables) into Spark DataFrames.

A source that cannot be read raises ``SourceError`` naming the source and its location, so a
typo in a path reads as such instead of as a Spark stack trace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbfeatures._deps import require
from nbfeatures.definitions import Source, SourceFormat
from nbfeatures.engine.spark.spark_errors import error_condition, spark_message
from nbfeatures.errors import DefinitionError, SourceError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def check_limit(limit: int | None) -> int | None:
    """Return ``limit`` if it is ``None`` (all rows) or a positive row count."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DefinitionError("limit", f"{limit!r} is not a positive number of rows")
    return limit


def read_source(spark: SparkSession, source: Source, limit: int | None = None) -> DataFrame:
    """The source as a DataFrame; with ``limit``, at most that many rows are read.

    The limit bounds a preview: Spark stops scanning files once it has enough rows, so a
    preview of a large source reads its first rows, not a random sample.
    """
    check_limit(limit)
    errors = require("pyspark.errors", "spark")
    try:
        if source.format is SourceFormat.PARQUET:
            df = spark.read.parquet(source.location)
        elif source.format is SourceFormat.CSV:
            df = spark.read.csv(source.location, header=True, inferSchema=True)
        else:
            df = spark.table(source.location)
        # Spark Connect resolves lazily: ask for the schema so a bad location fails here.
        columns = df.columns
    except errors.AnalysisException as exc:
        raise SourceError(source.name, _unreadable_reason(source, exc)) from None
    if source.timestamp is not None and source.timestamp not in columns:
        raise SourceError(
            source.name,
            f"timestamp column {source.timestamp!r} is not in {source.location}; "
            f"columns are: {', '.join(columns)}",
        )
    return df if limit is None else df.limit(limit)


def _unreadable_reason(source: Source, exc: Exception) -> str:
    condition = error_condition(exc)
    if condition.startswith("PATH_NOT_FOUND"):
        return f"path does not exist: {source.location}"
    if condition.startswith(("TABLE_OR_VIEW_NOT_FOUND", "SCHEMA_NOT_FOUND")):
        return f"table does not exist: {source.location}"
    return f"cannot read {source.format.value} at {source.location}: {spark_message(exc)}"
