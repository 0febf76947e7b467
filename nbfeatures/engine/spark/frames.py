"""Spines in and joined frames out of Spark: pandas conversions and a spine's time range."""

from __future__ import annotations

import datetime as dt
from typing import Any

from nbfeatures._deps import require
from nbfeatures.engine.pit_rules import ROW_COLUMN, times_in_utc

_ONE_MICROSECOND = dt.timedelta(microseconds=1)


def spark_spine(spark: Any, spine: Any) -> Any:
    """A pandas spine as a Spark frame; an empty one through Arrow, which keeps its types
    (from pandas, Spark cannot infer a schema without rows)."""
    if len(spine):
        return spark.createDataFrame(spine)
    pa = require("pyarrow", "spark")
    return spark.createDataFrame(pa.Table.from_pandas(spine, preserve_index=False))


def time_bounds(spine: Any, column: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The spine's time range as UTC datetimes (via microseconds: no local-zone conversion)."""
    from nbfeatures.engine.spark.spark_api import functions

    F = functions(spine)
    ts = F.col(column).cast("timestamp")
    row = spine.agg(F.unix_micros(F.min(ts)), F.unix_micros(F.max(ts))).collect()[0]
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    low, high = row[0], row[1]
    if low is None or high is None:
        return None, None
    return epoch + low * _ONE_MICROSECOND, epoch + high * _ONE_MICROSECOND


def to_pandas(joined: Any) -> Any:
    """Collect, restore the spine's order (``ROW_COLUMN``) and make every timestamp column
    UTC-aware.

    Integer and boolean features keep their type with pandas' nullable dtypes: a missing
    value (no data, or past the ttl) would otherwise turn a count into a float.
    """
    require("pandas", "spark")
    out = joined.toPandas().sort_values(ROW_COLUMN, kind="stable").drop(columns=[ROW_COLUMN])
    out = out.reset_index(drop=True)
    nullable = {"int": "Int32", "bigint": "Int64", "smallint": "Int16", "tinyint": "Int8"}
    nullable["boolean"] = "boolean"
    for column_type in joined.schema.fields:
        dtype = nullable.get(column_type.dataType.simpleString())
        if dtype is not None and column_type.name in out.columns:
            out[column_type.name] = out[column_type.name].astype(dtype)
    return times_in_utc(out)
