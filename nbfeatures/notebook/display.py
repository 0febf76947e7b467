"""HTML for the notebook: preview tables, histograms, the catalog listing and a family's history.

Pure functions from data to HTML text, with no widget or kernel in sight, so the same tables
render in the live preview widget, in a saved notebook (papermill output, nbconvert, a code
host's viewer) and in tests. Every value that reaches the page goes through ``html.escape``.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbfeatures.catalog import FamilySummary, FamilyVersion, Registration
    from nbfeatures.engine.spark.preview import Histogram, Preview

# Scoped by the .nbf class so the styles do not leak into the rest of the notebook page.
STYLE = """<style>
.nbf {font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px;}
.nbf h4 {margin: 10px 0 4px 0;}
.nbf table {border-collapse: collapse; margin: 2px 0 8px 0;}
.nbf th, .nbf td {border: 1px solid #d0d7de; padding: 2px 8px; text-align: right;}
.nbf th {background: #f6f8fa;}
.nbf td.nbf-text, .nbf th.nbf-text {text-align: left;}
.nbf tr.nbf-changed td, .nbf td.nbf-diff {background: #fff8c5;}
.nbf .nbf-header {color: #57606a;}
.nbf .nbf-ok {color: #1a7f37; font-weight: bold;}
.nbf .nbf-error {color: #cf222e; font-weight: bold;}
</style>"""

MISSING = "—"


def fmt(value: Any) -> str:
    """One cell's text: short floats, ISO times, a dash for nothing."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        if math.isnan(value):
            return MISSING
        return f"{value:.4g}"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(fmt(v) for v in value) or MISSING
    return str(value)


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    text_columns: Iterable[int] = (0,),
    highlight: Iterable[bool] | None = None,
) -> str:
    """An HTML table; ``text_columns`` are left-aligned, ``highlight`` marks changed rows."""
    left = set(text_columns)
    marks = iter(highlight) if highlight is not None else None

    def cell(tag: str, index: int, value: Any) -> str:
        css = ' class="nbf-text"' if index in left else ""
        return f"<{tag}{css}>{html.escape(fmt(value))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = []
    for row in rows:
        changed = next(marks, False) if marks is not None else False
        css = ' class="nbf-changed"' if changed else ""
        body.append(f"<tr{css}>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def histogram_svg(histogram: Histogram, width: int = 160, height: int = 36) -> str:
    """A tiny inline SVG bar chart; each bar's tooltip gives its range and count."""
    counts = list(histogram.counts)
    edges = list(histogram.edges)
    if not counts:
        return MISSING
    peak = max(counts) or 1
    bar = width / len(counts)
    bars = []
    for i, count in enumerate(counts):
        h = 0.0 if count == 0 else max(1.0, (height - 2) * count / peak)
        low = fmt(edges[i]) if i < len(edges) else "?"
        high = fmt(edges[i + 1]) if i + 1 < len(edges) else "?"
        tip = html.escape(f"{low} .. {high}: {count}")
        bars.append(
            f'<rect x="{i * bar + 0.5:.1f}" y="{height - h:.1f}" width="{max(bar - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="#218bff"><title>{tip}</title></rect>'
        )
    low = html.escape(fmt(edges[0])) if edges else ""
    high = html.escape(fmt(edges[-1])) if edges else ""
    return (
        f'<svg width="{width}" height="{height}" role="img" class="nbf-hist">{"".join(bars)}</svg>'
        f'<div style="display:flex;justify-content:space-between;width:{width}px;'
        f'font-size:10px;color:#57606a"><span>{low}</span><span>{high}</span></div>'
    )


def preview_header(preview: Preview) -> str:
    """Family, entity, timestamp, rows and entities, event-time range."""
    family = preview.family
    entity = f"{family.entity.name} ({family.entity.join_key})"
    parts = [
        f"<b>{html.escape(family.name)}</b>",
        f"entity {html.escape(entity)}",
        f"timestamp {html.escape(family.timestamp)}",
        f"{preview.row_count:,} rows, {preview.entity_count:,} entities",
        f"event time {html.escape(fmt(preview.event_time_min))} .. "
        f"{html.escape(fmt(preview.event_time_max))}",
        f"owner {html.escape(family.owner)}",
        f"hash {html.escape(family.version_hash[:12])}",
    ]
    return f'<div class="nbf-header">{" · ".join(parts)}</div>'


def sample_table(preview: Preview) -> str:
    """The first rows of the preview, as computed."""
    sample = preview.sample
    rows = [list(r) for r in sample.itertuples(index=False, name=None)]
    columns = [str(c) for c in sample.columns]
    text = [i for i, c in enumerate(columns) if sample[c].dtype == object]
    return table(columns, rows, text_columns=text)


def schema_table(preview: Preview) -> str:
    return table(["column", "type"], preview.schema, text_columns=(0, 1))


def stats_table(preview: Preview) -> str:
    """Per-feature statistics with a histogram cell for numeric features."""
    head = ["feature", "type", "count", "nulls", "distinct", "min", "max", "mean"]
    cells = []
    for name, stats in preview.stats.items():
        values = [
            name,
            stats.dtype,
            stats.count,
            stats.nulls,
            stats.distinct,
            stats.min,
            stats.max,
            stats.mean,
        ]
        row = "".join(
            f"<td{' class=nbf-text' if i < 2 else ''}>{html.escape(fmt(v))}</td>"
            for i, v in enumerate(values)
        )
        hist = preview.histograms.get(name)
        row += f"<td>{histogram_svg(hist) if hist is not None else MISSING}</td>"
        cells.append(f"<tr>{row}</tr>")
    header = "".join(
        f"<th{' class=nbf-text' if i < 2 else ''}>{h}</th>" for i, h in enumerate(head)
    )
    return (
        f"<table><thead><tr>{header}<th>histogram</th></tr></thead>"
        f"<tbody>{''.join(cells)}</tbody></table>"
    )


def changes_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """``Preview.compare`` rows, one per feature: each ``old_X``/``new_X`` pair in one column.

    A value that did not change is shown once; one that did reads ``old → new`` and is
    highlighted. The whole row of an added, removed or retyped feature is highlighted.
    """
    if not rows:
        return "<p>No features to compare.</p>"
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    paired = [k[4:] for k in keys if k.startswith("old_") and f"new_{k[4:]}" in keys]
    plain = [k for k in keys if not k.startswith(("old_", "new_"))]
    head = "".join(
        f'<th class="nbf-text">{html.escape(k)}</th>'
        if k in ("feature", "change")
        else f"<th>{html.escape(k)}</th>"
        for k in (*plain, *paired)
    )
    body = []
    for row in rows:
        change = str(row.get("change", "")).lower()
        css = "" if change in ("", "same", "unchanged") else ' class="nbf-changed"'
        cells = [f'<td class="nbf-text">{html.escape(fmt(row.get(k)))}</td>' for k in plain]
        for key in paired:
            old, new = row.get(f"old_{key}"), row.get(f"new_{key}")
            if old is None or new is None or fmt(old) == fmt(new):
                # Added or removed features are marked by their row; show the value they have.
                cells.append(f"<td>{html.escape(fmt(new if new is not None else old))}</td>")
            else:
                text = f"{fmt(old)} → {fmt(new)}"
                cells.append(f'<td class="nbf-diff">{html.escape(text)}</td>')
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def preview_html(
    preview: Preview,
    *,
    changes: Sequence[Mapping[str, Any]] | None = None,
    previous_version: int | None = None,
    status: str = "",
) -> str:
    """The whole preview as one HTML block (the widget's body and its saved-notebook form)."""
    parts = [STYLE, '<div class="nbf">', preview_header(preview)]
    parts.append(f"<h4>Sample ({len(preview.sample)} of {preview.row_count:,} rows)</h4>")
    parts.append(sample_table(preview))
    parts.append("<h4>Schema</h4>" + schema_table(preview))
    parts.append("<h4>Feature statistics</h4>" + stats_table(preview))
    if previous_version is not None:
        parts.append(f"<h4>Changes vs v{previous_version}</h4>" + changes_table(changes or []))
    if status:
        parts.append(f"<div>{status}</div>")
    parts.append("</div>")
    return "".join(parts)


def registration_html(registration: Registration) -> str:
    """What a registration did, in one line: new version, or the same content already there."""
    version = registration.version
    name = html.escape(version.family.name)
    if registration.created:
        text = f"Registered {name} v{version.version}"
        if registration.changes:
            text += " (" + html.escape("; ".join(registration.changes)) + ")"
    elif registration.updated:
        text = f"Same content as {name} v{version.version}; metadata updated: " + html.escape(
            "; ".join(registration.updated)
        )
    else:
        text = f"Already registered as {name} v{version.version} (same content)"
    return f'<span class="nbf-ok">{text}</span>'


def standalone(fragment: str) -> str:
    """A fragment with the styles it needs, for display on its own."""
    return f'{STYLE}<div class="nbf">{fragment}</div>'


def error_html(message: str) -> str:
    return f'<span class="nbf-error">{html.escape(message)}</span>'


def catalog_html(families: Sequence[FamilySummary]) -> str:
    """``%features``: one row per family."""
    if not families:
        return STYLE + '<div class="nbf">The catalog has no feature families yet.</div>'
    rows = [
        [
            f.name,
            f"v{f.latest_version}" if f.latest_version is not None else None,
            f"v{f.production_version}" if f.production_version is not None else None,
            f.owner,
            f.status,
            f.entity,
            f.features,
            f.tags,
        ]
        for f in families
    ]
    headers = ["name", "latest", "production", "owner", "status", "entity", "features", "tags"]
    return (
        STYLE
        + '<div class="nbf">'
        + table(headers, rows, text_columns=(0, 3, 4, 5, 6, 7))
        + "</div>"
    )


def history_html(name: str, versions: Sequence[FamilyVersion]) -> str:
    """``%features NAME``: the family's latest metadata, then every version."""
    parts = [STYLE, '<div class="nbf">']
    if versions:
        latest = max(versions, key=lambda v: v.version).family
        meta = [
            f"<b>{html.escape(latest.name)}</b>",
            f"owner {html.escape(latest.owner)}",
            f"entity {html.escape(latest.entity.name)} ({html.escape(latest.entity.join_key)})",
            f"timestamp {html.escape(latest.timestamp)}",
            "features " + html.escape(", ".join(latest.feature_names)),
        ]
        if latest.tags:
            meta.append("tags " + html.escape(", ".join(latest.tags)))
        if latest.description:
            meta.append(html.escape(latest.description))
        parts.append(f'<div class="nbf-header">{" · ".join(meta)}</div>')
    rows = [
        [
            f"v{v.version}",
            v.hash[:12],
            v.created_at,
            v.status,
            v.aliases,
            _deprecation_text(v.deprecation),
        ]
        for v in sorted(versions, key=lambda v: v.version, reverse=True)
    ]
    headers = ["version", "hash", "created", "status", "aliases", "deprecation"]
    parts.append(table(headers, rows, text_columns=(0, 1, 2, 3, 4, 5)))
    parts.append("</div>")
    return "".join(parts)


def _deprecation_text(deprecation: Any) -> str | None:
    if deprecation is None:
        return None
    text = str(getattr(deprecation, "reason", deprecation))
    replacement = getattr(deprecation, "replacement", None)
    sunset = getattr(deprecation, "sunset", None)
    if replacement:
        text += f"; use {replacement}"
    if sunset:
        text += f"; sunset {sunset}"
    return text
