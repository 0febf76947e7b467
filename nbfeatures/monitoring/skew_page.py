"""The skew report's page: an Evidently report of served against recomputed values, with the
mismatch table (per feature, by cause) and the examples above it.

Evidently compares the two distributions per feature (``ValueDrift`` with the family's drift
method, and ``MissingValueCount``); the verdict is ours, value by value, so it goes in a plain
HTML section placed at the top of Evidently's page. Column types come from the family's
definition (``DataDefinition``), never from Evidently's guess, which skips pandas' nullable
``Int64`` and ``boolean``: those are handed over as float and text.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.definitions import FeatureFamily, FeatureType
from nbfeatures.monitoring.summary import ReportSummary

if TYPE_CHECKING:
    from nbfeatures.monitoring.config import DriftSettings
    from nbfeatures.monitoring.skew_compare import Aligned, FeatureSkew

PAGE = "skew.html"
# Evidently draws each distribution from at most this many values per side: its cost grows
# with rows (seconds per column at a million), the picture does not. The verdict uses all.
PAGE_ROWS = 100_000
_STYLE = (
    "<style>.nbf-skew{font-family:sans-serif;margin:16px 24px}"
    ".nbf-skew table{border-collapse:collapse;margin:8px 0 16px}"
    ".nbf-skew td,.nbf-skew th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
    ".nbf-skew .alert{color:#b00020}.nbf-skew .warn{color:#a86400}.nbf-skew .ok{color:#1b5e20}"
    "</style>"
)


def write_page(
    output_dir: Path,
    summary: ReportSummary,
    aligned: Aligned | None,
    features: Sequence[FeatureSkew],
    family: FeatureFamily,
    drift: DriftSettings | None = None,
) -> Path:
    """Write ``output_dir/skew.html``; without rows to compare, the summary section alone."""
    path = output_dir / PAGE
    section = _section(summary)
    if aligned is None or not len(aligned.context):
        page = f"<!DOCTYPE html><html><head><meta charset='utf-8'>{_STYLE}</head><body>"
        path.write_text(f"{page}{section}</body></html>", encoding="utf-8")
        return path
    _evidently_page(path, aligned, family, drift)
    text = path.read_text(encoding="utf-8")
    # Our section first, so the verdict is what a reader sees on opening the page.
    text = text.replace("<body>", f"<body>{_STYLE}{section}", 1)
    path.write_text(text, encoding="utf-8")
    return path


def _evidently_frames(aligned: Aligned, family: FeatureFamily) -> tuple[Any, Any, Any, list[str]]:
    """Served (present) and recomputed (present) values with Evidently-safe dtypes."""
    pd = require("pandas", "spark")
    evidently = require("evidently", "monitoring")
    numbers, categories = [], []
    current, reference = {}, {}
    for feature in family.features:
        served = aligned.served[feature.name][aligned.served_present].reset_index(drop=True)
        offline = aligned.offline[feature.name][aligned.offline_present].reset_index(drop=True)
        if feature.dtype.is_numeric:
            numbers.append(feature.name)
            current[feature.name] = pd.to_numeric(served, errors="coerce").astype("float64")
            reference[feature.name] = pd.to_numeric(offline, errors="coerce").astype("float64")
        elif feature.dtype in (FeatureType.STRING, FeatureType.BOOL):
            categories.append(feature.name)
            current[feature.name] = _text(served)
            reference[feature.name] = _text(offline)
        # Timestamps are compared value by value in the table; Evidently draws no drift of them.
    definition = evidently.DataDefinition(numerical_columns=numbers, categorical_columns=categories)
    return pd.DataFrame(current), pd.DataFrame(reference), definition, [*numbers, *categories]


def _text(values: Any) -> Any:
    return (
        values.astype(object)
        .where(values.notna(), None)
        .map(lambda v: None if v is None else str(v))
    )


def _evidently_page(
    path: Path, aligned: Aligned, family: FeatureFamily, drift: DriftSettings | None
) -> None:
    evidently = require("evidently", "monitoring")
    metrics_module = require("evidently.metrics", "monitoring")
    from nbfeatures.monitoring.config import DriftSettings

    drift = drift or DriftSettings()
    current, reference, definition, columns = _evidently_frames(aligned, family)
    numeric = set(definition.numerical_columns or ())
    metrics: list[Any] = []
    for column in columns:
        metrics.append(metrics_module.MissingValueCount(column=column))
        # A drift test needs values on both sides; an all-null column has none to compare.
        if current[column].notna().any() and reference[column].notna().any():
            method = drift.numeric_method if column in numeric else drift.categorical_method
            threshold = (
                drift.numeric_threshold if column in numeric else drift.categorical_threshold
            )
            metrics.append(
                metrics_module.ValueDrift(column=column, method=method, threshold=threshold)
            )
    if not metrics:
        metrics.append(metrics_module.RowCount())
    report = evidently.Report(metrics)
    snapshot = report.run(
        evidently.Dataset.from_pandas(current, data_definition=definition),
        evidently.Dataset.from_pandas(reference, data_definition=definition),
    )
    snapshot.save_html(str(path))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def _section(summary: ReportSummary) -> str:
    """The verdict: status, rule, per-feature mismatches by cause, examples per cause."""
    from nbfeatures.monitoring.skew_compare import CAUSES

    detail = summary.detail
    parts = [
        "<div class='nbf-skew'>",
        f"<h2>Training/serving skew: {html.escape(summary.family)} "
        f"v{summary.version} <span class='{summary.status.value}'>"
        f"{summary.status.value.upper()}</span></h2>",
        f"<p>Window {_cell(summary.window_start)} to {_cell(summary.window_end)}; "
        f"{summary.rows} served vectors compared of {summary.rows_total} logged.</p>",
    ]
    parts += [f"<p>{html.escape(note)}</p>" for note in summary.notes]
    if "rule" in detail:
        parts.append(f"<p>Rule: {html.escape(str(detail['rule']))}</p>")
    if summary.checks:
        head = "".join(f"<th>{c}</th>" for c in CAUSES)
        parts.append(
            "<table><tr><th>feature</th><th>status</th><th>compared</th><th>mismatch rate</th>"
            f"{head}<th>SMAPE %</th><th>null share served / offline</th></tr>"
        )
        for check in summary.checks:
            causes = check.detail.get("by_cause", {})
            row = "".join(f"<td>{causes.get(c, 0)}</td>" for c in CAUSES)
            parts.append(
                f"<tr><td>{_cell(check.feature)}</td>"
                f"<td class='{check.status.value}'>{check.status.value}</td>"
                f"<td>{check.detail.get('compared')}</td><td>{_cell(check.value)}</td>{row}"
                f"<td>{_cell(check.detail.get('smape'))}</td>"
                f"<td>{_cell(check.detail.get('served_null_share'))} / "
                f"{_cell(check.detail.get('offline_null_share'))}</td></tr>"
            )
        parts.append("</table>")
    for cause, rows in (detail.get("examples") or {}).items():
        if not rows:
            continue
        keys = list(rows[0])
        parts.append(f"<h3>Examples: {html.escape(cause)}</h3><table><tr>")
        parts += [f"<th>{html.escape(k)}</th>" for k in keys]
        parts.append("</tr>")
        for example in rows:
            parts.append("<tr>" + "".join(f"<td>{_cell(example[k])}</td>" for k in keys) + "</tr>")
        parts.append("</table>")
    parts.append("</div>")
    return "".join(parts)
