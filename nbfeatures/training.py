"""Point-in-time correct training sets from a spine of entity keys and event times.

    training_set(spine, ["user_spend:*", "merchant_risk@v2:chargebacks"])

The spine is a pandas or Spark DataFrame holding each family's entity key column, the event
timestamp column (``event_timestamp`` unless told otherwise) and anything else (labels,
ids), which passes through. The result has the same type as the spine: a pandas result keeps
the spine's row order, a Spark result is lazy. Every spine row comes out exactly once.

Feature columns are named ``{family}__{feature}`` (double underscore), always, so adding a
family never renames the columns of the others. Values are the latest known at each row's
time (event time <= spine time, and for a family with ``ttl``, event time >= spine time - ttl);
see ``nbfeatures.engine.spark.pit``. The join runs on an engine through ``engine.port``.

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
from nbfeatures.engine.factory import check_engine, engine_name, master_of
from nbfeatures.engine.pit_rules import ROW_COLUMN
from nbfeatures.errors import DefinitionError, SpineError

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog, FamilyVersion
    from nbfeatures.config import Settings
    from nbfeatures.engine.port import Engine, StoredFamily

DEFAULT_TIMESTAMP = "event_timestamp"
_ROW = ROW_COLUMN
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
    ``"spark"`` (the sort-merge window join of ``engine.spark.pit``, on any cluster),
    ``"arrow"`` (``engine.arrow.pit``: pyarrow reads the offline Parquet, local or ``gs://``,
    and numpy joins in this process; no Spark is started for a pandas spine), or ``"auto"``:
    ``"arrow"`` for a pandas spine when Spark is local (not Spark Connect) and the stored
    rows to read, counted from the manifests, are at most ``engine.factory.ARROW_MAX_ROWS``;
    else Spark. ``engine.factory`` holds the rule.
    """
    from nbfeatures.config import activate, active_settings, load_settings
    from nbfeatures.engine.factory import create

    check_engine(engine, "training")
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
    versions = [s.version.ref for s in selections.values()]
    if is_pandas:
        spine = _normalize_pandas(spine, timestamp_column, columns)
        low, high = _pandas_bounds(spine, timestamp_column)
        if _use_arrow(engine, spark, settings, selections, low, high):
            arrow = create("arrow", settings)
            result = _join(
                arrow,
                arrow.from_pandas(spine, _ROW),
                selections,
                settings,
                low,
                high,
                timestamp_column,
                include_event_times,
            )
            result = _finish(arrow.to_pandas(result), selections)
            _record_lineage(result, True, versions, label_columns)
            return result
    if spark is None:
        spark = spine.sparkSession if not is_pandas else None
    on_spark = create("spark", settings, spark)
    if engine == "arrow" and not is_pandas:
        # Collected as Arrow, joined here, back to Spark.
        from nbfeatures.engine.spark.frames import time_bounds

        low, high = time_bounds(spine, timestamp_column)
        joined = _join(
            create("arrow", settings),
            spine.toArrow(),
            selections,
            settings,
            low,
            high,
            timestamp_column,
            include_event_times,
        )
        result = _finish(spark.createDataFrame(joined), selections)
        _record_lineage(result, False, versions, label_columns)
        return result
    with on_spark.progress("training set", enabled=progress):
        if is_pandas:
            frame = on_spark.from_pandas(spine, _ROW)
        else:
            from nbfeatures.engine.spark.frames import time_bounds

            frame = spine
            low, high = time_bounds(spine, timestamp_column)
        joined = _join(
            on_spark, frame, selections, settings, low, high, timestamp_column, include_event_times
        )
        result = _finish(on_spark.to_pandas(joined) if is_pandas else joined, selections)
    _record_lineage(result, is_pandas, versions, label_columns)
    return result


def _join(
    engine: Engine,
    spine: Any,
    selections: dict[str, _Selection],
    settings: Settings,
    low: dt.datetime | None,
    high: dt.datetime | None,
    timestamp_column: str,
    include_event_times: bool,
) -> Any:
    """Each family's stored rows for ``[low - ttl, high]`` joined to ``spine`` on ``engine``.

    With a bounded spine, each version's offline data must cover ``[low, high]``.
    """
    from nbfeatures.engine.offline_store import check_offline
    from nbfeatures.engine.port import StoredFamily

    families: list[StoredFamily] = []
    for name, selection in selections.items():
        if selection.on_demand:
            continue  # computed afterwards from the joined inputs: nothing offline
        version = selection.version
        family = version.family
        ttl = family.ttl
        if low is not None and high is not None:
            check_offline(settings, name, version.version, low, _end_after(high))
        start = _start_before(low, ttl) if (low is not None and ttl is not None) else None
        # Spark reads ``[start, end)``; Arrow reads whole dates up to ``high``'s, and the join
        # drops what it cannot choose.
        end = None if high is None else (_end_after(high) if engine.name == "spark" else high)
        rows = engine.read_offline(settings, name, version.version, start, end)
        features = tuple(selection.features + selection.hidden)
        families.append(
            StoredFamily(name, rows, family.entity.join_key, family.timestamp, features, ttl)
        )
    return engine.point_in_time_join(
        spine,
        families,
        timestamp_column=timestamp_column,
        include_event_times=include_event_times,
    )


def _use_arrow(
    engine: str,
    spark: Any,
    settings: Settings,
    selections: dict[str, _Selection],
    low: dt.datetime | None,
    high: dt.datetime | None,
) -> bool:
    """Whether a pandas spine is joined in this process (``engine.factory``'s rule)."""

    def stored_rows() -> int | None:
        from nbfeatures.engine.arrow.offline import offline_rows

        total = 0
        for name, selection in selections.items():
            if selection.on_demand:
                continue
            ttl = selection.version.family.ttl
            start = _start_before(low, ttl) if (low is not None and ttl is not None) else None
            rows = offline_rows(settings, name, selection.version.version, start, high)
            if rows is None:
                return None
            total += rows
        return total

    master = master_of("training", spark, settings) if engine == "auto" else None
    return engine_name(engine, "training", master=master, stored_rows=stored_rows) == "arrow"


def _finish(result: Any, selections: dict[str, _Selection]) -> Any:
    """``result`` with its on-demand families computed, if any were asked for."""
    if any(s.on_demand for s in selections.values()):
        return _add_on_demand(result, selections)
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
