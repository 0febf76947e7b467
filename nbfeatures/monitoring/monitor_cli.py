"""``nbfeatures monitor``: run the reports once (cron, Airflow) or keep them on a schedule.

    nbfeatures monitor run (--family NAME ... | --all) [--kind K ...] [--start ISO] [--end ISO]
                           [--in-process]
    nbfeatures monitor schedule

``monitor run`` exits 0 when no saved report is in alert, 1 when one is, and 2 when a report
could not run (a family that does not exist, a kind that raised, MLflow away): 2 outranks 1,
since a report that did not run is something nobody is watching.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from typing import TYPE_CHECKING, Any

from nbfeatures.monitoring.summary import REPORT_KINDS

if TYPE_CHECKING:
    from nbfeatures.config import Settings


def _time(text: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def add_parser(commands: Any) -> None:
    """Add ``monitor run`` and ``monitor schedule`` to the ``nbfeatures`` subcommands."""
    monitor = commands.add_parser("monitor", help="drift, skew and freshness reports")
    actions = monitor.add_subparsers(dest="monitor_command", required=True)

    run = actions.add_parser(
        "run",
        help="run the reports once; exit 0 ok, 1 something in alert, 2 a report could not run",
    )
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--family", action="append", metavar="NAME", help="a family to report on (repeatable)"
    )
    which.add_argument("--all", action="store_true", help="every family with a production version")
    run.add_argument(
        "--kind",
        action="append",
        choices=REPORT_KINDS,
        help="a report kind (repeatable); default: the family's configured reports",
    )
    run.add_argument("--start", type=_time, help="window start, ISO 8601 (UTC if no offset)")
    run.add_argument("--end", type=_time, help="window end, exclusive (default: now)")
    run.add_argument(
        "--in-process",
        action="store_true",
        help="run the reports in this process instead of the template notebook (faster; "
        "no notebook is saved with the reports)",
    )

    actions.add_parser(
        "schedule",
        help="run each family's reports on the cron schedules of nbfeatures.yaml until stopped",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one parsed ``monitor`` command; return the exit code."""
    if args.monitor_command == "schedule":
        from nbfeatures.monitoring.schedule import serve_schedule

        logging.basicConfig(
            level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
        return serve_schedule(settings)

    from nbfeatures.monitoring.runner import run_reports

    def say(line: str) -> None:
        print(line, flush=True)

    outcome = run_reports(
        settings,
        None if args.all else args.family,
        args.kind,
        start=args.start,
        end=args.end,
        notebook=not args.in_process,
        progress=say,
    )
    for failure in outcome.failures:
        print(f"nbfeatures: {failure.line()}", file=sys.stderr)
    alerts = [r for r in outcome.records if r.status.value == "alert"]
    print(
        f"{len(outcome.records)} reports saved, {len(alerts)} in alert, "
        f"{len(outcome.failures)} could not run"
    )
    return outcome.exit_code
