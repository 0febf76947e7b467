"""Training/serving skew, value by value: what the server answered against what offline says.

    skew_report(settings, "user_spend", output_dir=Path("reports"))

1. Sample up to ``SkewSettings.sample`` served vectors of the family in the window (the
   served-vector log, ``read_served``).
2. Recompute each one offline with the point-in-time join of training sets
   (``training_set(spine, ["family@vN:*"], include_event_times=True)``), the spine being the
   served entity (cast to the offline join key's type) at its request time. ``vN`` is the
   reference: the production version unless ``version`` says otherwise. An on-demand family is
   recomputed by the same Python function training sets call, from offline inputs.
3. Compare feature by feature and give each mismatch its cause (``skew_compare``): *version*,
   *stale*, *missing*, *extra*, *offline_behind*, *value* (same version and event time,
   different value: a bug).

Status rule (``SkewSettings``):

- **alert** when any feature's *value*-cause rate is above ``alert_rate``, or the overall
  mismatch rate (mismatched values / compared values, all features) is above ``alert_rate``;
- **warn** when any feature's mismatch rate, or the overall rate, is above ``warn_rate``,
  or when nothing could be compared (no served vectors logged in the window);
- **ok** otherwise.

The summary's ``detail`` carries the totals by cause, the served versions, and
``examples[cause]``: at most ``SkewSettings.examples`` mismatches per cause (entity, request
time, served value, status, event time and version, offline value and event time).

On-demand values are computed at request time, so their event time is the request time on
both sides: their mismatches are *version* or *value* (or *missing* where the server failed).
An on-demand family with request fields cannot be recomputed: the log does not hold request
data; the report says so and warns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.definitions import FeatureFamily, FeatureRef
from nbfeatures.errors import ConfigError
from nbfeatures.monitoring.config import FamilyMonitoring, monitoring_config
from nbfeatures.monitoring.served import ServedWindow, read_served
from nbfeatures.monitoring.summary import ReportResult, ReportSummary, Status

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog, FamilyVersion
    from nbfeatures.config import Settings
    from nbfeatures.monitoring.skew_compare import Aligned

KIND = "skew"
PRODUCTION = "production"
# Spine columns of the recomputation; names no family key or feature can take (``__`` prefix).
_REQUEST_TIME = "__nbf_request_time"


@dataclass(frozen=True)
class _Recomputed:
    """The offline side, row by row with the kept served rows."""

    values: Any  # pandas: one column per feature, by feature name
    present: Any  # numpy bool: the join found a row
    event_time: Any  # pandas Series of UTC timestamps (NaT where absent)


def skew_report(
    settings: Settings,
    family: str,
    *,
    output_dir: Path,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    version: int | None = None,
    catalog: Catalog | None = None,
    config: FamilyMonitoring | None = None,
    engine: str = "auto",
    sample: int | None = None,
    spark: Any = None,
) -> ReportResult:
    """Compare sampled served vectors of ``family`` with their offline recomputation.

    ``engine`` is the point-in-time join's (``training_set``): ``"auto"``, ``"arrow"`` or
    ``"spark"``; ``spark`` the session it runs on (default: the workspace's, local or Spark
    Connect). ``sample`` overrides ``SkewSettings.sample``. Writes ``output_dir/skew.html``.
    """
    from nbfeatures.catalog import Catalog
    from nbfeatures.monitoring.skew_page import PAGE_ROWS, write_page

    config = config or monitoring_config(settings).for_family(family)
    skew = config.skew
    catalog = catalog or Catalog.from_settings(settings)
    reference = _reference(catalog, family, version)
    end = _utc(end) if end is not None else dt.datetime.now(dt.UTC)
    start = _utc(start) if start is not None else end - config.window
    limit = sample if sample is not None else skew.sample
    if limit <= 0:
        raise ConfigError("skew.sample", f"is {limit}; recompute at least one served vector")
    window = read_served(settings, reference.family, start, end, limit=limit)
    output_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if window.sampled:
        notes.append(
            f"sampled {window.rows} of {window.rows_total} served vectors (uniformly, fixed seed)"
        )
    unrecomputable = _unrecomputable(reference.family)
    if window.rows == 0 or unrecomputable:
        reason = unrecomputable or "no served vectors logged in the window: nothing compared"
        summary = _summary(reference, window, start, end, Status.WARN, (), [*notes, reason], {})
        return ReportResult(summary, write_page(output_dir, summary, None, [], reference.family))
    aligned = _align(settings, catalog, reference, window, engine, spark)
    dropped = window.rows - len(aligned.context)
    if dropped:
        notes.append(f"{dropped} served vectors skipped: their entity is not a valid join key")
    if len(aligned.context) > PAGE_ROWS:
        notes.append(f"the page's distributions draw {PAGE_ROWS:,} values per side; counts use all")
    return _report(output_dir, reference, window, aligned, config, start, end, notes, engine)


def _report(
    output_dir: Path,
    reference: FamilyVersion,
    window: ServedWindow,
    aligned: Aligned,
    config: FamilyMonitoring,
    start: dt.datetime,
    end: dt.datetime,
    notes: list[str],
    engine: str,
) -> ReportResult:
    from nbfeatures.monitoring.skew_compare import (
        cause_totals,
        check_of,
        compare_feature,
        examples,
        overall_status,
    )
    from nbfeatures.monitoring.skew_page import write_page

    skew = config.skew
    features = [compare_feature(aligned, f.name, f.dtype, skew) for f in reference.family.features]
    checks = tuple(check_of(f, skew) for f in features)
    status, rate = overall_status(features, [c.status for c in checks], skew)
    versions = aligned.context["version"].value_counts().sort_index()
    detail = {
        "reference_version": reference.version,
        "served_versions": {str(int(v)): int(n) for v, n in versions.items()},
        "engine": engine,
        "vectors": len(aligned.context),
        "compared_values": sum(f.compared for f in features),
        "mismatched_values": sum(f.mismatches for f in features),
        "mismatch_rate": rate,
        "by_cause": dict(cause_totals(features)),
        "examples": examples(aligned, features, reference.version, skew.examples),
        "tolerance": {"rel": skew.rel_tolerance, "abs": skew.abs_tolerance},
        "rule": (
            f"alert: a feature's value-cause rate or the overall mismatch rate above "
            f"{skew.alert_rate}; warn: a feature's or the overall mismatch rate above "
            f"{skew.warn_rate}"
        ),
    }
    summary = _summary(reference, window, start, end, status, checks, notes, detail)
    html = write_page(output_dir, summary, aligned, features, reference.family, config.drift)
    return ReportResult(summary, html)


def _summary(
    reference: FamilyVersion,
    window: ServedWindow,
    start: dt.datetime,
    end: dt.datetime,
    status: Status,
    checks: tuple[Any, ...],
    notes: list[str],
    detail: dict[str, Any],
) -> ReportSummary:
    return ReportSummary(
        kind=KIND,
        family=reference.family.name,
        version=reference.version,
        status=status,
        created_at=dt.datetime.now(dt.UTC),
        window_start=start,
        window_end=end,
        rows=window.rows,
        rows_total=window.rows_total,
        checks=checks,
        notes=tuple(notes),
        detail=detail,
    )


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _reference(catalog: Catalog, family: str, version: int | None) -> FamilyVersion:
    """The version served values are held to: ``version``, else the production one."""
    if version is not None:
        return catalog.get(family, version)
    return catalog.get(family, alias=PRODUCTION)


def _unrecomputable(family: FeatureFamily) -> str | None:
    if family.on_demand and family.request:
        fields = ", ".join(f.name for f in family.request)
        return (
            f"on-demand family {family.name} reads request fields ({fields}) that the "
            "served-vector log does not keep: its values cannot be recomputed offline"
        )
    return None


def _cast_entities(entities: Any, kind: Any) -> tuple[Any, Any]:
    """Logged (text) entities as an Arrow array of ``kind``, and which rows could be cast.

    One vectorized cast; only when some text does not parse (a bad key in the log) are the
    values cast one by one, so the others are still compared.
    """
    pa = require("pyarrow", "spark")
    pc = require("pyarrow.compute", "spark")
    np = require("numpy", "spark")
    text = pa.array(entities.astype(object).where(entities.notna(), None), pa.string())
    try:
        cast = pc.cast(text, kind)
        return cast, np.asarray(cast.is_valid().to_numpy(zero_copy_only=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values = []
    ok = []
    for item in text.to_pylist():
        try:
            values.append(pc.cast(pa.scalar(item, pa.string()), kind).as_py())
            ok.append(item is not None)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values.append(None)
            ok.append(False)
    return pa.array(values, kind), np.asarray(ok, dtype=bool)


def _align(
    settings: Settings,
    catalog: Catalog,
    reference: FamilyVersion,
    window: ServedWindow,
    engine: str,
    spark: Any,
) -> Aligned:
    """Recompute the window's vectors offline and line both sides up, row by row."""
    from nbfeatures.engine.offline_store import arrow_dataset, version_path
    from nbfeatures.monitoring.skew_compare import Aligned, time_micros
    from nbfeatures.training import training_set

    pa = require("pyarrow", "spark")
    pd = require("pandas", "spark")
    np = require("numpy", "spark")
    family = reference.family
    served = window.frame.reset_index(drop=True)
    inputs = [reference]
    if family.on_demand:
        inputs = [
            catalog.resolve(FeatureRef.parse(text), purpose="training") for text in family.inputs
        ]
    spine_columns: dict[str, Any] = {}
    castable = np.ones(len(served), dtype=bool)
    for fv in inputs:
        key = fv.family.entity.join_key
        if key in spine_columns:
            continue
        path = version_path(settings, fv.family.name, fv.version)
        kind = arrow_dataset(path, settings.gcs_emulator).schema.field(key).type
        spine_columns[key], ok = _cast_entities(served["entity"], kind)
        castable &= ok
    served = served[castable].reset_index(drop=True)
    # Filtered in Arrow, so whole-number keys reach pandas as int64, not float with NaN.
    keep = pa.array(castable)
    spine = pd.DataFrame({k: v.filter(keep).to_pandas() for k, v in spine_columns.items()})
    spine[_REQUEST_TIME] = pd.to_datetime(served["request_time"], utc=True)
    recomputed = training_set(
        spine,
        [f"{family.name}@v{reference.version}:*"],
        settings=settings,
        catalog=catalog,
        timestamp_column=_REQUEST_TIME,
        include_event_times=True,
        progress=False,
        engine=engine,
        spark=spark,
    )
    offline = _offline_side(recomputed, family, spine[_REQUEST_TIME])
    served_us, served_known = time_micros(served["event_time"])
    offline_us, offline_known = time_micros(offline.event_time)
    version = pd.to_numeric(served["version"]).to_numpy()
    return Aligned(
        served=served[[f.name for f in family.features]],
        offline=offline.values,
        served_present=(served["status"] == "PRESENT").to_numpy(dtype=bool),
        offline_present=offline.present,
        served_event_us=served_us,
        served_event_known=served_known,
        offline_event_us=offline_us,
        offline_event_known=offline_known,
        other_version=np.asarray(version != reference.version, dtype=bool),
        context=served[["entity", "request_time", "version", "status", "event_time"]],
        offline_event_time=offline.event_time,
    )


def _offline_side(recomputed: Any, family: FeatureFamily, request_time: Any) -> _Recomputed:
    """Feature columns by feature name, and where the join found a row, from the training set.

    A batch family's row is found when its ``__event_time`` is set. An on-demand value is
    computed at the request time from whatever inputs were found: always present, stamped
    with the request time, as the server stamps it.
    """
    from nbfeatures.on_demand.function import SEPARATOR

    np = require("numpy", "spark")
    pd = require("pandas", "spark")
    values = pd.DataFrame(
        {f.name: recomputed[f"{family.name}{SEPARATOR}{f.name}"] for f in family.features}
    ).reset_index(drop=True)
    if family.on_demand:
        times = pd.Series(pd.to_datetime(request_time, utc=True)).reset_index(drop=True)
        return _Recomputed(values, np.ones(len(values), dtype=bool), times)
    times = pd.to_datetime(recomputed[f"{family.name}{SEPARATOR}event_time"], utc=True)
    times = times.reset_index(drop=True)
    return _Recomputed(values, times.notna().to_numpy(dtype=bool), times)
