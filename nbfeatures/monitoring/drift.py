"""Drift report: the served values of a family version against a reference, feature by feature.

    drift_report(settings, "user_spend", output_dir=Path("out"))           # production version
    drift_report(settings, "user_spend", output_dir=..., reference=training_frame)

*Current* is the served vectors of the version in the window (PRESENT and STALE values; the
share of NOT_FOUND is reported beside). *Reference* is the version's offline feature set over
the ``reference_window`` before the window, or a training set (pandas or a Parquet path,
columns named ``feature`` or ``family__feature``).

The verdict is ours (``drift_stats``): one explicit method per kind of feature from the
family's ``DriftSettings``, and the change of each feature's null share, which no drift
method sees. Status: ``alert`` when the share of drifted features reaches ``drift_share``;
``warn`` when any feature drifted or its null share moved more than ``null_share_change``;
else ``ok``. Evidently draws the page (``drift.html``) from the same methods and thresholds,
on at most ``max_rows`` rows of each side (the notes say when it sampled).

``engine``: ``arrow`` computes in this process; ``spark`` computes the statistics with Spark
over the served-log Parquet and the offline set (windows larger than memory); ``auto`` picks
Spark when the files to read are over ``AUTO_SPARK_BYTES``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures._deps import require
from nbfeatures.definitions import FeatureFamily, FeatureType
from nbfeatures.errors import ConfigError, OfflineDataMissing
from nbfeatures.monitoring import drift_stats
from nbfeatures.monitoring.config import DriftSettings, FamilyMonitoring
from nbfeatures.monitoring.scope import family_config, report_window, resolve_version
from nbfeatures.monitoring.served import read_served, served_root
from nbfeatures.monitoring.summary import FeatureCheck, ReportResult, ReportSummary, Status

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog, FamilyVersion
    from nbfeatures.config import Settings

ENGINES = ("auto", "arrow", "spark")
# Above this many bytes of Parquet to read (served log and reference), ``auto`` uses Spark:
# decoded and widened in pandas, a window takes several times its Parquet size in memory.
AUTO_SPARK_BYTES = 2 * 1024**3
SERVED_STATUSES = ("PRESENT", "STALE")
_SEED = 0


@dataclass(frozen=True)
class Collected:
    """What either engine gathers: the statistics, the row counts, and the page's samples."""

    stats: dict[str, drift_stats.FeatureStats]
    vectors: int  # served vectors in the window, every status
    statuses: dict[str, int]
    reference_rows: int
    current_sample: Any  # pandas, comparable columns (see ``comparable``), <= max_rows
    reference_sample: Any


def is_numeric(dtype: FeatureType) -> bool:
    """Numbers and times are compared as numbers (times as epoch seconds); the rest as
    categories (booleans as ``true``/``false``)."""
    return dtype.is_numeric or dtype is FeatureType.TIMESTAMP


def method_for(dtype: FeatureType, settings: DriftSettings) -> tuple[str, float]:
    if is_numeric(dtype):
        return settings.numeric_method, settings.numeric_threshold
    return settings.categorical_method, settings.categorical_threshold


def comparable(frame: Any, family: FeatureFamily) -> Any:
    """The features of ``frame`` as Evidently and our statistics take them: numbers as float64
    with NaN (never pandas' nullable Int64, which Evidently skips), times as epoch seconds,
    categories as text with None (never pandas' nullable boolean)."""
    pd = require("pandas", "monitoring")
    out = {}
    for feature in family.features:
        column = frame[feature.name] if feature.name in frame else pd.Series([None] * len(frame))
        if feature.dtype is FeatureType.TIMESTAMP:
            times = pd.to_datetime(column, utc=True)
            seconds = (times - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
            out[feature.name] = seconds.astype("float64").to_numpy()
        elif is_numeric(feature.dtype):
            out[feature.name] = pd.to_numeric(column).astype("float64").to_numpy()
        else:
            # Whole columns at once: value by value, three text features of 1M served and
            # 1M reference rows took ~7 s of CPU.
            missing = column.isna().to_numpy()
            if feature.dtype is FeatureType.BOOL:
                truth = np.asarray(column.astype(object).where(~missing, False), dtype=bool)
                text = np.where(truth, "true", "false")
            else:
                text = column.astype(object).where(~missing, "").astype(str).to_numpy()
            values = text.astype(object)
            values[missing] = None
            out[feature.name] = values
    return pd.DataFrame(out, index=range(len(frame)))


def feature_stats(
    reference: Any, current: Any, family: FeatureFamily, settings: DriftSettings
) -> dict[str, drift_stats.FeatureStats]:
    """In-process statistics of two ``comparable`` frames."""
    stats: dict[str, drift_stats.FeatureStats] = {}
    for feature in family.features:
        ref, cur = reference[feature.name], current[feature.name]
        if is_numeric(feature.dtype):
            wasserstein = settings.numeric_method == "wasserstein"
            stats[feature.name] = drift_stats.numeric_stats(
                ref.to_numpy(dtype=np.float64),
                cur.to_numpy(dtype=np.float64),
                with_quantiles=wasserstein,
            )
        else:
            stats[feature.name] = drift_stats.categorical_stats(ref.tolist(), cur.tolist())
    return stats


# ---------------------------------------------------------------------- reading, in process


def offline_reference(
    settings: Settings, fv: FamilyVersion, start: dt.datetime, end: dt.datetime
) -> Any:
    """The version's offline rows with event time in ``[start, end)`` (pandas), no Spark."""
    pa = require("pyarrow", "spark")
    ds = require("pyarrow.dataset", "spark")
    from nbfeatures.engine.offline_store import (
        arrow_dataset,
        date_filter,
        read_manifest,
        version_path,
    )

    family = fv.family
    if read_manifest(settings, family.name, fv.version) is None:
        raise OfflineDataMissing(family.name, fv.version, start, end)
    dataset = arrow_dataset(version_path(settings, family.name, fv.version), settings.gcs_emulator)
    # Spark may store times without a zone (UTC by our rule): compare in the stored type.
    stored = dataset.schema.field(family.timestamp).type

    def bound(value: dt.datetime) -> Any:
        return pa.scalar(value if stored.tz else value.replace(tzinfo=None), stored)

    wanted = date_filter(start, end)
    wanted &= ds.field(family.timestamp) >= bound(start)
    wanted &= ds.field(family.timestamp) < bound(end)
    table = dataset.to_table(columns=list(family.feature_names), filter=wanted)
    return table.to_pandas()


def training_reference(reference: Any, family: FeatureFamily) -> Any:
    """A training set (pandas, or a Parquet path) with the family's features as columns."""
    pd = require("pandas", "monitoring")
    frame = reference
    if isinstance(reference, str | Path):
        frame = pd.read_parquet(reference)
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError("reference", "give a pandas DataFrame or the path of a Parquet file")
    renamed: dict[str, Any] = {}
    for name in family.feature_names:
        for column in (f"{family.name}__{name}", name):
            if column in frame.columns:
                renamed[name] = frame[column]
                break
        else:
            raise ConfigError(
                "reference", f"the training set has no column {family.name}__{name} or {name}"
            )
    return pd.DataFrame(renamed)


def _sample(frame: Any, limit: int) -> Any:
    return frame.sample(n=limit, random_state=_SEED) if len(frame) > limit else frame


def collect_arrow(
    settings: Settings,
    fv: FamilyVersion,
    window: tuple[dt.datetime, dt.datetime],
    reference_frame: Any,
    drift: DriftSettings,
) -> Collected:
    family = fv.family
    served = read_served(settings, family, window[0], window[1], version=fv.version).frame
    statuses = {str(k): int(v) for k, v in served["status"].value_counts().items()}
    current = comparable(served[served["status"].isin(SERVED_STATUSES)], family)
    reference = comparable(reference_frame, family)
    return Collected(
        stats=feature_stats(reference, current, family, drift),
        vectors=len(served),
        statuses=statuses,
        reference_rows=len(reference),
        current_sample=_sample(current, drift.max_rows),
        reference_sample=_sample(reference, drift.max_rows),
    )


def _parquet_bytes(settings: Settings, fv: FamilyVersion) -> int:
    """Bytes of Parquet a report would read: the served log and the version's offline set."""
    pafs = require("pyarrow.fs", "spark")
    from nbfeatures.engine.gcs import arrow_filesystem
    from nbfeatures.engine.offline_store import version_path

    total = 0
    for root in (served_root(settings), version_path(settings, fv.family.name, fv.version)):
        fs, path = arrow_filesystem(root, emulator=settings.gcs_emulator)
        if fs.get_file_info(path).type != pafs.FileType.Directory:
            continue
        selector = pafs.FileSelector(path, recursive=True)
        total += sum(
            i.size or 0 for i in fs.get_file_info(selector) if i.type == pafs.FileType.File
        )
    return total


# ---------------------------------------------------------------------- verdict and page


def verdict(
    collected: Collected, family: FeatureFamily, drift: DriftSettings
) -> tuple[Status, list[FeatureCheck], list[str]]:
    """Checks per feature and the report's status by the drift rule."""
    checks: list[FeatureCheck] = []
    drifted: list[str] = []
    unjudged: list[str] = []
    null_moved = False
    for feature in family.features:
        stats = collected.stats[feature.name]
        method, threshold = method_for(feature.dtype, drift)
        score = drift_stats.drift_score(stats, method)
        is_drifted = score is not None and score >= threshold
        change = stats.current.null_share - stats.reference.null_share
        moved = abs(change) > drift.null_share_change
        if is_drifted:
            drifted.append(feature.name)
        if score is None:
            unjudged.append(feature.name)
        null_moved = null_moved or moved
        checks.append(
            FeatureCheck(
                feature=feature.name,
                status=Status.WARN if (is_drifted or moved or score is None) else Status.OK,
                metric=method,
                value=score,
                threshold=threshold,
                detail={
                    "drifted": is_drifted,
                    "kind": "numeric" if is_numeric(feature.dtype) else "categorical",
                    "null_share_reference": round(stats.reference.null_share, 6),
                    "null_share_current": round(stats.current.null_share, 6),
                    "null_share_change": round(change, 6),
                    "null_share_moved": moved,
                    "rows_reference": stats.reference.rows,
                    "rows_current": stats.current.rows,
                },
            )
        )
    share = len(drifted) / len(family.features)
    notes = []
    if drifted:
        notes.append(f"drifted: {', '.join(drifted)} ({share:.0%} of features)")
    if unjudged:
        notes.append(f"no values on one side, not judged: {', '.join(unjudged)}")
    if share >= drift.drift_share and drifted:
        status = Status.ALERT
    elif drifted or null_moved or unjudged:
        status = Status.WARN
    else:
        status = Status.OK
    return status, checks, notes


def evidently_page(
    collected: Collected, family: FeatureFamily, drift: DriftSettings, html: Path, title: str
) -> dict[str, float]:
    """Evidently's page of the samples with our methods and thresholds; its scores by feature.

    The data definition is explicit (Evidently's automatic typing skips nullable columns and
    picks methods by size). Features without values on a side are left out of the page.
    """
    evidently = require("evidently", "monitoring")
    metrics_module = require("evidently.metrics", "monitoring")
    current, reference = collected.current_sample, collected.reference_sample
    shown = [
        f
        for f in family.features
        if current[f.name].notna().any() and reference[f.name].notna().any()
    ]
    if not shown or len(current) == 0:
        html.write_text(plain_page(title, "no served values to compare in this window"))
        return {}
    definition = evidently.DataDefinition(
        numerical_columns=[f.name for f in shown if is_numeric(f.dtype)],
        categorical_columns=[f.name for f in shown if not is_numeric(f.dtype)],
    )
    metrics: list[Any] = []
    for feature in shown:
        method, threshold = method_for(feature.dtype, drift)
        metrics.append(
            metrics_module.ValueDrift(column=feature.name, method=method, threshold=threshold)
        )
        metrics.append(metrics_module.MissingValueCount(column=feature.name))
    columns = [f.name for f in shown]
    snapshot = evidently.Report(metrics, include_tests=True).run(
        evidently.Dataset.from_pandas(current[columns], data_definition=definition),
        evidently.Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    snapshot.save_html(str(html))
    titled(html, title)
    scores: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            scores[config["column"]] = float(metric["value"])
    return scores


def titled(html: Path, title: str) -> None:
    """Put the report's title at the top of Evidently's page, which names no family."""
    import html as html_text

    text = html.read_text()
    heading = f"<h1 style='font-family:sans-serif'>{html_text.escape(title)}</h1>"
    html.write_text(text.replace("<body>", f"<body>{heading}", 1))


def plain_page(title: str, reason: str) -> str:
    import html as html_text

    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html_text.escape(title)}"
        f"</title></head><body><h1>{html_text.escape(title)}</h1><p>{html_text.escape(reason)}"
        "</p></body></html>"
    )


# ---------------------------------------------------------------------- the report


def drift_report(
    settings: Settings,
    family: str,
    *,
    output_dir: Path,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    version: int | None = None,
    catalog: Catalog | None = None,
    config: FamilyMonitoring | None = None,
    reference: Any = None,
    engine: str = "auto",
    spark: Any = None,
) -> ReportResult:
    """Compare the served values of ``family`` in the window with a reference; write
    ``output_dir/drift.html`` and return the summary (see the module's docstring).

    ``spark``: the session of the Spark engine (default: the workspace's).
    """
    if engine not in ENGINES:
        raise ConfigError("engine", f"{engine!r} is not one of {', '.join(ENGINES)}")
    from nbfeatures.catalog import Catalog

    monitoring = family_config(settings, family, config)
    drift = monitoring.drift
    window = report_window(monitoring, start, end)
    catalog = catalog or Catalog.from_settings(settings)
    fv = resolve_version(catalog, family, version)
    reference_range = (window[0] - monitoring.reference_window, window[0])
    if engine == "auto":
        engine = "spark" if _parquet_bytes(settings, fv) > AUTO_SPARK_BYTES else "arrow"
    if engine == "spark":
        from nbfeatures.monitoring.drift_spark import collect_spark

        collected = collect_spark(
            settings, fv, window, reference_range, reference, drift, spark=spark
        )
    else:
        if reference is not None:
            reference_frame = training_reference(reference, fv.family)
        else:
            reference_frame = offline_reference(settings, fv, *reference_range)
        collected = collect_arrow(settings, fv, window, reference_frame, drift)
    if collected.reference_rows == 0 and reference is None:
        raise OfflineDataMissing(family, fv.version, *reference_range)

    status, checks, notes = verdict(collected, fv.family, drift)
    served_rows = sum(collected.statuses.get(s, 0) for s in SERVED_STATUSES)
    if collected.vectors == 0:
        status = Status.WARN
        notes.insert(0, "no served vectors of this version in the window: nothing to compare")
    for side, sample, total in (
        ("served", collected.current_sample, served_rows),
        ("reference", collected.reference_sample, collected.reference_rows),
    ):
        if len(sample) < total:
            notes.append(
                f"the Evidently page shows a sample of {len(sample)} of {total} {side} rows"
            )

    output_dir.mkdir(parents=True, exist_ok=True)
    html = output_dir / "drift.html"
    title = f"Drift of {family} v{fv.version}"
    scores = evidently_page(collected, fv.family, drift, html, title)
    notes.extend(_disagreements(checks, scores))
    drifted = [c.feature for c in checks if c.detail.get("drifted")]
    summary = ReportSummary(
        kind="drift",
        family=family,
        version=fv.version,
        status=status,
        created_at=dt.datetime.now(dt.UTC),
        window_start=window[0],
        window_end=window[1],
        rows=collected.vectors,
        rows_total=collected.vectors,
        checks=tuple(checks),
        notes=tuple(notes),
        detail={
            "engine": engine,
            "reference": {
                "kind": "training set" if reference is not None else "offline",
                "start": None if reference is not None else reference_range[0].isoformat(),
                "end": None if reference is not None else reference_range[1].isoformat(),
                "rows": collected.reference_rows,
            },
            "methods": {
                "numeric": [drift.numeric_method, drift.numeric_threshold],
                "categorical": [drift.categorical_method, drift.categorical_threshold],
            },
            "drifted_features": drifted,
            "drifted_share": len(drifted) / len(checks) if checks else 0.0,
            "drift_share": drift.drift_share,
            "statuses": collected.statuses,
            "not_found_share": _share(collected.statuses.get("NOT_FOUND", 0), collected.vectors),
            "stale_share": _share(collected.statuses.get("STALE", 0), collected.vectors),
            "page_sample": {
                "current": len(collected.current_sample),
                "reference": len(collected.reference_sample),
            },
            "evidently_scores": scores,
        },
    )
    return ReportResult(summary, html)


def _disagreements(checks: list[FeatureCheck], scores: dict[str, float]) -> list[str]:
    """Say where the page's verdict differs from ours, so a reader trusts neither blindly.

    The verdict is ours (decile bins fixed by the reference, the same on Spark); Evidently
    bins its own way, on the page's sample, so near the threshold the two can differ.
    """
    notes = []
    for check in checks:
        theirs = scores.get(check.feature)
        if theirs is None or check.value is None or check.threshold is None:
            continue
        if (theirs >= check.threshold) != bool(check.detail.get("drifted")):
            notes.append(
                f"{check.feature}: the page's Evidently {check.metric} is {theirs:.3g} on its "
                f"sample, ours {check.value:.3g} (threshold {check.threshold:g}); the verdict "
                "is ours: reference-decile bins, the same in every engine"
            )
    return notes


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0
