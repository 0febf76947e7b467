"""Point-in-time correct training sets from a spine of entity keys and event times.

    training_set(spine, ["user_spend:*", "merchant_risk@v2:chargebacks"])

The spine is a pandas or Spark DataFrame holding each family's entity key column, the event
timestamp column (``event_timestamp`` unless told otherwise) and anything else (labels,
ids), which passes through. The result has the same type as the spine: a pandas result keeps
the spine's row order, a Spark result is lazy. Every spine row comes out exactly once.

Feature columns are named ``{family}__{feature}`` (double underscore), always, so adding a
family never renames the columns of the others. Values are the latest known at each row's
time (event time <= spine time, and for a family with ``ttl``, event time >= spine time - ttl);
see ``nbfeatures.engine.pit``.

Times are UTC: naive pandas timestamps are taken as UTC, aware ones converted, a column
mixing naive and aware values is refused. References resolve through the catalog for
training (a deprecated family past its sunset is refused). Each version must have offline
data covering the spine's time range, else ``OfflineDataMissing`` names the gap. Nothing is
written unless everything succeeded; inside an active MLflow run the set is then logged as a
dataset input and the run is tagged with the versions used (``nbfeatures.lineage``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.definitions import FeatureRef, parse_refs
from nbfeatures.engine.join_index import MAX_ROWS
from nbfeatures.errors import DefinitionError, SpineError

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog, FamilyVersion
    from nbfeatures.config import Settings

DEFAULT_TIMESTAMP = "event_timestamp"
ENGINES = ("auto", "spark", "arrow")
# ``engine="auto"`` joins in this process up to this many stored feature rows in all (about
# 1 GB per 10M rows of ten float64 features, plus sort arrays); beyond it, on Spark. Versions
# up to it get a join index when computed.
ARROW_MAX_ROWS = MAX_ROWS
_ROW = "__nbf_row"
_ONE_MICROSECOND = dt.timedelta(microseconds=1)
_FIRST = dt.datetime.min.replace(tzinfo=dt.UTC)
_LAST = dt.datetime.max.replace(tzinfo=dt.UTC)


def _end_after(high: dt.datetime) -> dt.datetime:
    """The exclusive end just after ``high``; at 9999-12-31T23:59:59.999999, that time."""
    return high + _ONE_MICROSECOND if high < _LAST else _LAST


def _start_before(low: dt.datetime, ttl: dt.timedelta) -> dt.datetime:
    """``low - ttl``, or the first representable time for spines near year 1."""
    return low - ttl if low - _FIRST > ttl else _FIRST


@dataclass
class _Selection:
    version: FamilyVersion
    features: list[str] = field(default_factory=list)
    # Features read only as inputs of on-demand families: dropped from the result.
    hidden: list[str] = field(default_factory=list)

    @property
    def on_demand(self) -> bool:
        return self.version.family.on_demand


def training_set(
    spine: Any,
    features: Sequence[str | FeatureRef],
    *,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    spark: Any = None,
    timestamp_column: str = DEFAULT_TIMESTAMP,
    label_columns: Sequence[str] = (),
    include_event_times: bool = False,
    progress: bool = True,
    today: dt.date | None = None,
    engine: str = "auto",
) -> Any:
    """A point-in-time correct training set for ``spine`` with the referenced features.

    ``label_columns`` must be in the spine; they pass through and are recorded as the MLflow
    dataset's targets. ``include_event_times`` adds ``{family}__event_time`` columns naming
    the event time of each value used. ``spark`` defaults to the spine's own session (Spark
    spine) or the workspace session (pandas spine).

    ``engine`` picks where the join runs; both give the same rows and columns:
    ``"spark"`` (the sort-merge window join of ``engine.pit``, on any cluster),
    ``"arrow"`` (``engine.local_pit``: pyarrow reads the offline Parquet, local or ``gs://``,
    and numpy joins in this process; no Spark is started for a pandas spine), or ``"auto"``:
    ``"arrow"`` for a pandas spine when Spark is local (not Spark Connect) and the stored
    rows to read, counted from the manifests, are at most ``ARROW_MAX_ROWS``; else Spark.
    """
    from nbfeatures.config import activate, active_settings, load_settings

    if engine not in ENGINES:
        raise DefinitionError("engine", f"is {engine!r}; choose one of {', '.join(ENGINES)}")
    settings = settings or active_settings() or activate(load_settings())
    selections = _resolve(features, settings, catalog, today)
    on_demand = [s for s in selections.values() if s.on_demand]
    is_pandas = _is_pandas(spine)
    columns = tuple(str(c) for c in spine.columns)
    needed = [timestamp_column, *label_columns]
    needed += [s.version.family.entity.join_key for s in selections.values() if not s.on_demand]
    needed += [f.name for s in on_demand for f in s.version.family.request]
    for column in needed:
        if column not in columns:
            raise SpineError(column, "is missing", columns)
    if is_pandas:
        spine = _normalize_pandas(spine, timestamp_column, columns)
        low, high = _pandas_bounds(spine, timestamp_column)
        if _use_arrow(engine, spark, settings, selections, low, high):
            result = _arrow_training_set(
                spine.drop(columns=[_ROW]),
                selections,
                settings,
                low,
                high,
                timestamp_column,
                include_event_times,
            )
            versions = [s.version.ref for s in selections.values()]
            _record_lineage(result, True, versions, label_columns)
            return result
    if spark is None:
        spark = spine.sparkSession if not is_pandas else _workspace_spark(settings)
    if engine == "arrow" and not is_pandas:
        result = _arrow_spark_spine(
            spark, spine, selections, settings, timestamp_column, include_event_times
        )
        versions = [s.version.ref for s in selections.values()]
        _record_lineage(result, False, versions, label_columns)
        return result
    result = _spark_training_set(
        spark,
        spine,
        is_pandas,
        selections,
        settings,
        timestamp_column,
        include_event_times,
        progress,
        (low, high) if is_pandas else None,
    )
    versions = [s.version.ref for s in selections.values()]
    _record_lineage(result, is_pandas, versions, label_columns)
    return result


def _spark_training_set(
    spark: Any,
    spine: Any,
    is_pandas: bool,
    selections: dict[str, _Selection],
    settings: Settings,
    timestamp_column: str,
    include_event_times: bool,
    progress: bool,
    bounds: tuple[dt.datetime | None, dt.datetime | None] | None,
) -> Any:
    """The join on Spark: a pandas result in the spine's order, or a lazy Spark frame."""
    from nbfeatures.engine.offline import check_offline, read_offline
    from nbfeatures.engine.pit import FeatureFrame, point_in_time_join
    from nbfeatures.engine.progress import spark_progress

    on_demand = [s for s in selections.values() if s.on_demand]
    low, high = bounds if bounds is not None else (None, None)
    with spark_progress(spark, "training set", enabled=progress):
        if is_pandas:
            frame = _spark_spine(spark, spine)
        else:
            frame = spine
            low, high = _spark_bounds(spine, timestamp_column)
        families = []
        for name, selection in selections.items():
            if selection.on_demand:
                continue  # computed below from the joined inputs: nothing offline
            version = selection.version
            ttl = version.family.ttl
            if low is not None and high is not None:
                check_offline(settings, name, version.version, low, _end_after(high))
            start = _start_before(low, ttl) if (low is not None and ttl is not None) else None
            end = _end_after(high) if high is not None else None
            stored = read_offline(spark, settings, name, version.version, start, end, check=False)
            families.append(
                FeatureFrame(
                    name=name,
                    frame=stored,
                    join_key=version.family.entity.join_key,
                    timestamp=version.family.timestamp,
                    features=tuple(selection.features + selection.hidden),
                    ttl=ttl,
                )
            )
        joined = point_in_time_join(
            frame,
            families,
            timestamp_column=timestamp_column,
            include_event_times=include_event_times,
        )
        result = _to_pandas(joined, timestamp_column, families) if is_pandas else joined
        if on_demand:
            result = _add_on_demand(result, selections)
    return result


def _spark_spine(spark: Any, spine: Any) -> Any:
    """A pandas spine as a Spark frame; an empty one through Arrow, which keeps its types
    (from pandas, Spark cannot infer a schema without rows)."""
    if len(spine):
        return spark.createDataFrame(spine)
    pa = require("pyarrow", "spark")
    return spark.createDataFrame(pa.Table.from_pandas(spine, preserve_index=False))


def _use_arrow(
    engine: str,
    spark: Any,
    settings: Settings,
    selections: dict[str, _Selection],
    low: dt.datetime | None,
    high: dt.datetime | None,
) -> bool:
    """Whether a pandas spine is joined in this process (see ``training_set``'s ``engine``)."""
    if engine != "auto":
        return engine == "arrow"
    from nbfeatures.engine.arrow_rows import offline_rows
    from nbfeatures.engine.spark_api import is_connect

    if spark is not None:
        master = "" if is_connect(spark) else str(spark.sparkContext.master)
    else:
        master = "" if settings.uses_spark_connect else settings.spark_master
    if not master.startswith("local"):
        return False
    total = 0
    for name, selection in selections.items():
        if selection.on_demand:
            continue
        ttl = selection.version.family.ttl
        start = _start_before(low, ttl) if (low is not None and ttl is not None) else None
        rows = offline_rows(settings, name, selection.version.version, start, high)
        if rows is None:
            return False  # nothing stored: let the Spark path raise its usual error
        total += rows
    return total <= ARROW_MAX_ROWS


def _arrow_families(
    selections: dict[str, _Selection],
    settings: Settings,
    low: dt.datetime | None,
    high: dt.datetime | None,
) -> list[Any]:
    """Each family's stored rows for ``[low - ttl, high]``, read with pyarrow."""
    from nbfeatures.engine.arrow_rows import read_offline_table
    from nbfeatures.engine.local_pit import ArrowFeatures
    from nbfeatures.engine.offline import check_offline

    families = []
    for name, selection in selections.items():
        if selection.on_demand:
            continue
        version = selection.version
        family = version.family
        ttl = family.ttl
        if low is not None and high is not None:
            check_offline(settings, name, version.version, low, _end_after(high))
        start = _start_before(low, ttl) if (low is not None and ttl is not None) else None
        features = tuple(selection.features + selection.hidden)
        rows = read_offline_table(settings, name, version.version, start, high)
        families.append(
            ArrowFeatures(name, rows, family.entity.join_key, family.timestamp, features, ttl)
        )
    return families


def _arrow_training_set(
    spine: Any,
    selections: dict[str, _Selection],
    settings: Settings,
    low: dt.datetime | None,
    high: dt.datetime | None,
    timestamp_column: str,
    include_event_times: bool,
) -> Any:
    """The join in this process for a normalized pandas spine: a pandas frame, spine order."""
    pa = require("pyarrow", "spark")
    from nbfeatures.engine.local_pit import point_in_time_join_arrow, to_pandas

    families = _arrow_families(selections, settings, low, high)
    table = pa.Table.from_pandas(spine, preserve_index=False)
    joined = point_in_time_join_arrow(
        table, families, timestamp_column=timestamp_column, include_event_times=include_event_times
    )
    result = to_pandas(joined)
    if any(s.on_demand for s in selections.values()):
        result = _add_on_demand(result, selections)
    return result


def _arrow_spark_spine(
    spark: Any,
    spine: Any,
    selections: dict[str, _Selection],
    settings: Settings,
    timestamp_column: str,
    include_event_times: bool,
) -> Any:
    """``engine="arrow"`` for a Spark spine: collected as Arrow, joined here, back to Spark."""
    from nbfeatures.engine.local_pit import point_in_time_join_arrow

    low, high = _spark_bounds(spine, timestamp_column)
    families = _arrow_families(selections, settings, low, high)
    joined = point_in_time_join_arrow(
        spine.toArrow(),
        families,
        timestamp_column=timestamp_column,
        include_event_times=include_event_times,
    )
    result = spark.createDataFrame(joined)
    if any(s.on_demand for s in selections.values()):
        result = _add_on_demand(result, selections)
    return result


def _resolve(
    features: Sequence[str | FeatureRef],
    settings: Settings,
    catalog: Catalog | None,
    today: dt.date | None,
) -> dict[str, _Selection]:
    """Resolve each reference for training; merge the features asked of each family.

    An on-demand family's inputs are resolved too; those not asked for are ``hidden``.
    """
    if isinstance(features, str):
        features = [features]
    refs = parse_refs(features)
    if not refs:
        raise DefinitionError("features", "name at least one feature, e.g. 'family:feature'")
    if catalog is None:
        from nbfeatures.catalog import Catalog

        catalog = Catalog.from_settings(settings)
    selections: dict[str, _Selection] = {}

    def select(ref: FeatureRef, hidden: bool) -> _Selection:
        version = catalog.resolve(ref, purpose="training", today=today)
        selection = selections.setdefault(ref.family, _Selection(version))
        if selection.version.version != version.version:
            raise DefinitionError(
                "features",
                f"{ref} and {selection.version.ref} name two versions of {ref.family}; "
                "one training set uses one version of a family",
            )
        wanted = version.family.feature_names if ref.is_wildcard else (ref.feature,)
        for name in wanted:
            if name in selection.features:
                continue
            if not hidden:
                selection.features.append(name)
                if name in selection.hidden:
                    selection.hidden.remove(name)
            elif name not in selection.hidden:
                selection.hidden.append(name)
        return selection

    for ref in refs:
        select(ref, hidden=False)
    for selection in [s for s in selections.values() if s.on_demand]:
        for text in selection.version.family.inputs:
            if select(FeatureRef.parse(text), hidden=True).on_demand:
                raise DefinitionError(
                    "features",
                    f"{selection.version.ref} reads {text}, an on-demand feature; the inputs "
                    "of an on-demand family are materialized features",
                )
    return selections


def _add_on_demand(result: Any, selections: dict[str, _Selection]) -> Any:
    """Compute each on-demand family from the joined inputs; drop inputs not asked for."""
    from nbfeatures.on_demand.batch import add_on_demand_columns, output_column

    types = {
        output_column(name, feature): s.version.family.feature(feature).dtype
        for name, s in selections.items()
        if not s.on_demand
        for feature in s.features + s.hidden
    }
    families = [(s.version.family, s.features) for s in selections.values() if s.on_demand]
    hidden = [output_column(name, f) for name, s in selections.items() for f in s.hidden]
    return add_on_demand_columns(result, families, types, drop=hidden)


def _is_pandas(spine: Any) -> bool:
    pd = require("pandas", "spark")
    if isinstance(spine, pd.DataFrame):
        return True
    if hasattr(spine, "sparkSession") and hasattr(spine, "columns"):
        return False
    raise DefinitionError(
        "spine", f"expected a pandas or Spark DataFrame, got {type(spine).__name__}"
    )


def _normalize_pandas(spine: Any, timestamp_column: str, columns: tuple[str, ...]) -> Any:
    """A copy with the timestamp column as UTC-aware datetimes and the row order recorded."""
    pd = require("pandas", "spark")
    values = spine[timestamp_column]
    if values.dtype == object:
        kinds = {
            getattr(v, "tzinfo", None) is None
            for v in values
            if isinstance(v, dt.datetime) and not pd.isna(v)
        }
        if len(kinds) > 1:
            raise SpineError(
                timestamp_column,
                "mixes naive and time-zone-aware timestamps; make them all one kind "
                "(naive values are taken as UTC)",
                columns,
            )
    try:
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            converted = values.dt.tz_convert("UTC")
        else:
            converted = pd.to_datetime(values)
            converted = (
                converted.dt.tz_localize("UTC")
                if converted.dt.tz is None
                else converted.dt.tz_convert("UTC")
            )
    except (TypeError, ValueError) as exc:
        raise SpineError(
            timestamp_column, f"cannot be read as timestamps: {exc}", columns
        ) from None
    normalized = spine.copy()
    normalized[timestamp_column] = converted
    normalized[_ROW] = range(len(normalized))
    return normalized


def _pandas_bounds(spine: Any, column: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    values = spine[column].dropna()
    if values.empty:
        return None, None
    return values.min().to_pydatetime(), values.max().to_pydatetime()


def _spark_bounds(spine: Any, column: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The spine's time range as UTC datetimes (via microseconds: no local-zone conversion)."""
    from nbfeatures.engine.spark_api import functions

    F = functions(spine)
    ts = F.col(column).cast("timestamp")
    row = spine.agg(F.unix_micros(F.min(ts)), F.unix_micros(F.max(ts))).collect()[0]
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    low, high = row[0], row[1]
    if low is None or high is None:
        return None, None
    return epoch + low * _ONE_MICROSECOND, epoch + high * _ONE_MICROSECOND


def _workspace_spark(settings: Settings) -> Any:
    from nbfeatures.engine.session import get_spark

    return get_spark(settings)


def _to_pandas(joined: Any, timestamp_column: str, families: Sequence[Any]) -> Any:
    """Collect, restore the spine's order and make every timestamp column UTC-aware.

    Integer and boolean features keep their type with pandas' nullable dtypes: a missing
    value (no data, or past the ttl) would otherwise turn a count into a float.
    """
    from nbfeatures.engine.local_pit import times_in_utc

    require("pandas", "spark")
    out = joined.toPandas().sort_values(_ROW, kind="stable").drop(columns=[_ROW])
    out = out.reset_index(drop=True)
    nullable = {"int": "Int32", "bigint": "Int64", "smallint": "Int16", "tinyint": "Int8"}
    nullable["boolean"] = "boolean"
    for column_type in joined.schema.fields:
        dtype = nullable.get(column_type.dataType.simpleString())
        if dtype is not None and column_type.name in out.columns:
            out[column_type.name] = out[column_type.name].astype(dtype)
    return times_in_utc(out)


def _digest(frame: Any, versions: Sequence[str]) -> str:
    """A short identity of a training set: versions, shape, schema, hashed sample rows."""
    pd = require("pandas", "spark")
    sample = frame.head(10_000)
    hashed = int(pd.util.hash_pandas_object(sample, index=False).sum()) & (2**64 - 1)
    text = "|".join(
        [",".join(versions), str(frame.shape), ",".join(map(str, frame.dtypes)), str(hashed)]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _record_lineage(
    result: Any,
    is_pandas: bool,
    versions: Sequence[str],
    label_columns: Sequence[str],
) -> None:
    """Inside an active MLflow run, log the dataset input and tag the versions used."""
    mlflow = require("mlflow", "catalog")
    if mlflow.active_run() is None:
        return
    from nbfeatures.lineage import SAMPLE_ROWS, log_training_set

    frame = result if is_pandas else result.limit(SAMPLE_ROWS).toPandas()
    targets = label_columns[0] if len(label_columns) == 1 else None
    log_training_set(frame, versions, _digest(frame, versions), targets=targets)
