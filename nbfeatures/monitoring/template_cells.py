"""What the report template's cells do, as functions: run one kind, keep its files, show it.

The template (``nbfeatures/templates/report.ipynb``) stays a few lines per cell so that a
reader sees the steps, and the work lives here, typed and tested. For each kind the run
leaves in ``output_dir`` either ``<kind>.summary.json`` (and the kind's ``<kind>.html``) or
``<kind>.error.txt``: the runner reads those files back, so one failing kind never hides the
others.
"""

from __future__ import annotations

import datetime as dt
import html
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nbfeatures.monitoring.kinds import report_function
from nbfeatures.monitoring.summary import ReportResult, ReportSummary, Status

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog
    from nbfeatures.config import Settings

SUMMARY_SUFFIX = ".summary.json"
ERROR_SUFFIX = ".error.txt"
# Colours of the status badge: the page is read by people scanning for red.
_COLOURS = {Status.OK: "#1a7f37", Status.WARN: "#9a6700", Status.ALERT: "#cf222e"}


@dataclass(frozen=True)
class KindOutcome:
    """What running one kind left: its result, or the error that stopped it."""

    kind: str
    result: ReportResult | None = None
    error: str | None = None


def summary_path(output_dir: Path, kind: str) -> Path:
    return output_dir / f"{kind}{SUMMARY_SUFFIX}"


def error_path(output_dir: Path, kind: str) -> Path:
    return output_dir / f"{kind}{ERROR_SUFFIX}"


def parse_time(value: str | dt.datetime | None) -> dt.datetime | None:
    """An ISO-8601 parameter as an aware UTC time (a naive one is taken as UTC)."""
    if value is None or value == "":
        return None
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def run_kind(
    settings: Settings,
    family: str,
    kind: str,
    output_dir: Path,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    catalog: Catalog | None = None,
) -> KindOutcome:
    """Run one report kind; write its summary, or its error, next to its page.

    Any exception is caught and written to ``<kind>.error.txt`` (first line: the error in
    one line; then the traceback), because a report that cannot run is itself news.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in (summary_path(output_dir, kind), error_path(output_dir, kind)):
        stale.unlink(missing_ok=True)
    try:
        result = report_function(kind)(
            settings, family, output_dir=output_dir, start=start, end=end, catalog=catalog
        )
    except Exception as exc:
        reason = first_line(exc)
        error_path(output_dir, kind).write_text(f"{reason}\n\n{traceback.format_exc()}")
        return KindOutcome(kind, error=reason)
    summary_path(output_dir, kind).write_text(result.summary.to_json())
    return KindOutcome(kind, result=result)


def read_outcome(output_dir: Path, kind: str) -> KindOutcome:
    """Read back what ``run_kind`` left for ``kind`` (in another process, after papermill)."""
    written = summary_path(output_dir, kind)
    if written.exists():
        summary = ReportSummary.from_json(written.read_text())
        return KindOutcome(kind, result=ReportResult(summary, output_dir / f"{kind}.html"))
    failed = error_path(output_dir, kind)
    if failed.exists():
        return KindOutcome(kind, error=failed.read_text().splitlines()[0] or "failed")
    return KindOutcome(kind, error="the notebook stopped before this report ran")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line}"[:500] if line else type(exc).__name__


def summary_html(summary: ReportSummary) -> str:
    """The verdict of one report as HTML: a status badge, the window, notes, one row a check."""
    colour = _COLOURS[summary.status]
    window = (
        f"{summary.window_start:%Y-%m-%d %H:%M} to {summary.window_end:%Y-%m-%d %H:%M} UTC"
        if summary.window_start and summary.window_end
        else "no window"
    )
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(c.feature)}</td>"
        f"<td style='color:{_COLOURS[c.status]};font-weight:bold'>{c.status.value}</td>"
        f"<td>{html.escape(c.metric)}</td>"
        f"<td>{_number(c.value)}</td><td>{_number(c.threshold)}</td>"
        "</tr>"
        for c in summary.checks
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in summary.notes)
    version = f"v{summary.version}" if summary.version is not None else "no version"
    rows_line = f"{summary.rows:,} rows" + (
        f" (sampled from {summary.rows_total:,})" if summary.sampled else ""
    )
    return (
        f"<div class='nbf-report-summary'><h3>{html.escape(summary.kind)}: "
        f"<span style='color:{colour}'>{summary.status.value.upper()}</span></h3>"
        f"<p>{html.escape(summary.family)} {version}; {window}; {rows_line}</p>"
        + (f"<ul>{notes}</ul>" if notes else "")
        + "<table><thead><tr><th>feature</th><th>status</th><th>metric</th><th>value</th>"
        f"<th>threshold</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def embedded_page(page: Path, height: int = 900) -> str:
    """The Evidently page inside an iframe (``srcdoc``): it keeps its own scripts and styles
    apart from the notebook's, and travels with the notebook file. JupyterLab shows it once
    the notebook is trusted (its sanitizer drops iframes of untrusted outputs)."""
    if not page.exists():
        return f"<p>no page was written ({html.escape(page.name)})</p>"
    document = html.escape(page.read_text(), quote=True)
    return (
        f'<iframe srcdoc="{document}" style=\'width:100%;height:{height}px;border:1px solid '
        "#d0d7de'></iframe>"
    )


def error_html(kind: str, reason: str) -> str:
    return (
        f"<div class='nbf-report-error'><h3>{html.escape(kind)}: "
        f"<span style='color:{_COLOURS[Status.ALERT]}'>COULD NOT RUN</span></h3>"
        f"<pre>{html.escape(reason)}</pre></div>"
    )


def overall_line(family: str, outcomes: Sequence[KindOutcome]) -> str:
    """One line for the end of the notebook: each kind's status, or that it failed."""
    parts = [
        f"{o.kind} {o.result.summary.status.value}" if o.result else f"{o.kind} FAILED"
        for o in outcomes
    ]
    return f"{family}: " + ", ".join(parts)
