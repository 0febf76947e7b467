"""``nbfeatures reports``: list, read and review saved monitoring reports from a terminal.

    nbfeatures reports list [--family F] [--kind K] [--status S] [--unreviewed] [--limit N]
    nbfeatures reports show ID [--html PATH]       summary per feature, notes, review
    nbfeatures reports review ID [--by NAME] [--comment TEXT]   (--by defaults to $USER)

A thin shell over ``ReportStore``: parse, call the store, print. Library errors reach
``nbfeatures.cli.main``, which prints them on one line with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbfeatures.monitoring.summary import REPORT_KINDS, Status

if TYPE_CHECKING:
    from nbfeatures.config import Settings
    from nbfeatures.monitoring.store import ReportRecord

MISSING = "-"


def add_parser(commands: Any) -> None:
    """Add ``reports`` and its actions to the ``nbfeatures`` subcommands."""
    reports = commands.add_parser("reports", help="monitoring reports: list, show, review")
    actions = reports.add_subparsers(dest="reports_action", required=True)

    listing = actions.add_parser("list", help="saved reports, newest first")
    listing.add_argument("--family", help="only reports on this family")
    listing.add_argument("--kind", choices=REPORT_KINDS, help="only this kind of report")
    listing.add_argument("--status", choices=[s.value for s in Status], help="only this status")
    listing.add_argument("--unreviewed", action="store_true", help="only reports not reviewed")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")

    show = actions.add_parser("show", help="one report: verdict per feature, notes, review")
    show.add_argument("id", help="the report id (its MLflow run id)")
    show.add_argument("--html", type=Path, metavar="PATH", help="also write the page to PATH")

    review = actions.add_parser("review", help="mark a report reviewed")
    review.add_argument("id", help="the report id (its MLflow run id)")
    review.add_argument("--by", help="who reviewed it (default: $USER)")
    review.add_argument("--comment", default="", help="what the reviewer concluded")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Carry out ``nbfeatures reports <action>``; returns the exit code."""
    from nbfeatures.monitoring.store import ReportStore

    store = ReportStore.from_settings(settings)
    if args.reports_action == "list":
        records = store.list(
            family=args.family,
            kind=args.kind,
            status=args.status,
            reviewed=False if args.unreviewed else None,
            limit=args.limit,
        )
        print_table(records)
    elif args.reports_action == "show":
        print_report(store.get(args.id))
        if args.html is not None:
            args.html.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(store.html(args.id), args.html)
            print(f"\npage written to {args.html}")
    else:
        # The environment is read here, at the edge; the store only takes the name.
        reviewer = args.by if args.by is not None else os.environ.get("USER", "")
        record = store.review(args.id, reviewer, args.comment)
        print(f"report {record.id} ({record.family} {record.kind}): {review_text(record)}")
    return 0


def print_table(records: list[ReportRecord]) -> None:
    if not records:
        print("no reports")
        return
    rows = [
        (
            r.id,
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            r.family,
            f"v{r.version}" if r.version is not None else MISSING,
            r.kind,
            r.status.value,
            r.owner or MISSING,
            f"by {r.review.reviewer}" if r.review is not None else "pending",
        )
        for r in records
    ]
    headers = ("id", "created (UTC)", "family", "version", "kind", "status", "owner", "review")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    for line in (headers, *rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def review_text(record: ReportRecord) -> str:
    review = record.review
    if review is None:
        return "not reviewed"
    when = review.at.strftime("%Y-%m-%d %H:%M UTC")
    said = f": {review.comment}" if review.comment else ""
    return f"reviewed by {review.reviewer} at {when}{said}"


def print_report(record: ReportRecord) -> None:
    summary = record.summary
    version = f" v{record.version}" if record.version is not None else ""
    print(f"{record.kind} report on {record.family}{version}: {record.status.value.upper()}")
    print(f"  id        {record.id}")
    print(f"  created   {record.created_at.strftime('%Y-%m-%d %H:%M:%S')} UTC")
    if summary.window_start is not None and summary.window_end is not None:
        print(f"  window    {summary.window_start.isoformat()} .. {summary.window_end.isoformat()}")
    sampled = " (sampled)" if summary.sampled else ""
    print(f"  rows      {summary.rows:,} of {summary.rows_total:,}{sampled}")
    print(f"  owner     {record.owner or MISSING}")
    if record.copy_uri or record.copy_error:
        print(f"  copy      {record.copy_uri or record.copy_error}")
    if record.webhook_error:
        print(f"  webhook   {record.webhook_error}")
    if record.has_notebook:
        print("  notebook  report.ipynb (artifact of the run)")
    if summary.checks:
        print()
        rows = [
            (c.feature, c.status.value, c.metric, _number(c.value), _number(c.threshold))
            for c in summary.checks
        ]
        headers = ("feature", "status", "metric", "value", "threshold")
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
        for line in (headers, *rows):
            print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    if summary.notes:
        print("\nnotes:")
        for note in summary.notes:
            print(f"  - {note}")
    print(f"\nreview: {review_text(record)}")


def _number(value: float | None) -> str:
    return MISSING if value is None else f"{value:.4g}"
