"""``run_reports``: run a family's reports (through the template notebook) and save each one.

Per family, papermill executes ``nbfeatures/templates/report.ipynb`` in a fresh kernel; the
notebook runs each kind and leaves ``<kind>.summary.json`` or ``<kind>.error.txt`` in the
run's folder, and this process saves each finished report with ``ReportStore.save`` (MLflow
run, page, summary, executed notebook). ``notebook=False`` calls the kinds in this process
instead: no kernel start, for cron-speed runs and tests.

Nothing stops the run early: a family that does not exist, a kind that raises, a notebook
whose kernel dies or a save that fails becomes a ``ReportFailure`` and the rest go on. The
outcome's ``exit_code`` is what ``nbfeatures monitor run`` exits with.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.errors import ConfigError
from nbfeatures.monitoring.config import monitoring_config
from nbfeatures.monitoring.summary import REPORT_KINDS, Status
from nbfeatures.monitoring.template_cells import (
    KindOutcome,
    error_path,
    first_line,
    read_outcome,
    run_kind,
)

if TYPE_CHECKING:
    from nbfeatures.config import Settings
    from nbfeatures.monitoring.store import ReportRecord, ReportStore

log = logging.getLogger(__name__)

TEMPLATE = "report.ipynb"
KERNEL = "python3"
# Exit codes of ``nbfeatures monitor run`` (and ``RunOutcome.exit_code``).
EXIT_OK, EXIT_ALERT, EXIT_FAILED = 0, 1, 2

Progress = Callable[[str], None]


def template_path() -> Path:
    """The report template shipped inside the package."""
    return Path(str(resources.files("nbfeatures.templates").joinpath(TEMPLATE)))


@dataclass(frozen=True)
class ReportFailure:
    """A report that could not run or be saved; ``kind`` is None when the whole family failed."""

    family: str
    kind: str | None
    reason: str

    def line(self) -> str:
        return f"{self.family} {self.kind or '(all reports)'}: FAILED: {self.reason}"


@dataclass(frozen=True)
class RunOutcome:
    """The saved reports of one run and what failed."""

    records: tuple[ReportRecord, ...] = ()
    failures: tuple[ReportFailure, ...] = ()

    @property
    def status(self) -> Status:
        """The worst status of the saved reports (ok when none was saved)."""
        return Status.worst(r.status for r in self.records)

    @property
    def exit_code(self) -> int:
        """2 when a report could not run (it outranks an alert: something is not watched),
        1 when a saved report is in alert, 0 otherwise."""
        if self.failures:
            return EXIT_FAILED
        return EXIT_ALERT if self.status is Status.ALERT else EXIT_OK


def log_progress(line: str) -> None:
    """The default progress report: one log line per finished report and family."""
    log.info("%s", line)


def run_reports(
    settings: Settings,
    families: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    notebook: bool = True,
    progress: Progress | None = None,
    kernel_name: str = KERNEL,
    store: ReportStore | None = None,
) -> RunOutcome:
    """Run and save the reports of ``families`` (None: every family with a production version).

    ``kinds`` None runs each family's configured reports (``monitoring.defaults.reports`` or
    the family's own). ``start``/``end`` override the window; by default each kind takes the
    family's window ending now. ``progress`` gets one line as each report and family ends.
    An unknown kind raises ``ConfigError`` before anything runs.
    """
    from nbfeatures.catalog import Catalog
    from nbfeatures.monitoring.store import ReportStore

    for kind in kinds or ():
        if kind not in REPORT_KINDS:
            raise ConfigError("report kind", f"{kind!r} is not one of {', '.join(REPORT_KINDS)}")
    say = progress or log_progress
    config = monitoring_config(settings)
    catalog = Catalog.from_settings(settings)
    summaries = {s.name: s for s in catalog.list()}
    if families is None:
        families = sorted(n for n, s in summaries.items() if s.production_version is not None)
    store = store or ReportStore.from_settings(settings)
    records: list[ReportRecord] = []
    failures: list[ReportFailure] = []
    for family in families:
        began = time.perf_counter()
        summary = summaries.get(family)
        if summary is None:
            known = ", ".join(sorted(summaries)) or "none"
            missing = ReportFailure(
                family, None, f"no family {family!r} in the catalog (families: {known})"
            )
            failures.append(missing)
            say(missing.line())
            continue
        chosen = tuple(kinds or config.for_family(family).reports)
        folder = _run_folder(settings, family)
        if notebook:
            executed: Path | None = folder / TEMPLATE
            outcomes = _run_notebook(settings, family, chosen, folder, start, end, kernel_name)
        else:
            executed = None
            outcomes = [
                run_kind(settings, family, kind, folder, start=start, end=end, catalog=catalog)
                for kind in chosen
            ]
        saved = 0
        for outcome in outcomes:
            record, failure = _save(store, family, outcome, executed, summary.owner)
            if record is not None:
                records.append(record)
                saved += 1
                say(_record_line(record))
            if failure is not None:
                failures.append(failure)
                say(failure.line())
        seconds = time.perf_counter() - began
        say(f"{family}: {saved} of {len(chosen)} reports saved in {seconds:.1f} s")
    return RunOutcome(tuple(records), tuple(failures))


def _run_folder(settings: Settings, family: str) -> Path:
    stamp = dt.datetime.now(dt.UTC)
    folder = settings.home / "reports" / f"{family}-{stamp:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _run_notebook(
    settings: Settings,
    family: str,
    kinds: Sequence[str],
    folder: Path,
    start: dt.datetime | None,
    end: dt.datetime | None,
    kernel_name: str,
) -> list[KindOutcome]:
    """Execute the template for one family; a notebook that stops fails its unrun kinds."""
    # The same settings the promotion notebook receives: the caller's, beyond the files.
    from nbfeatures.promotion.runner import _overrides as settings_overrides

    papermill = require("papermill", "notebook")
    try:
        papermill.execute_notebook(
            str(template_path()),
            str(folder / TEMPLATE),
            parameters={
                "workspace": str(settings.workspace),
                "family": family,
                "kinds": list(kinds),
                "start": start.isoformat() if start else None,
                "end": end.isoformat() if end else None,
                "output_dir": str(folder),
                "settings_overrides": settings_overrides(settings),
            },
            kernel_name=kernel_name,
            cwd=str(settings.workspace),
            progress_bar=False,
        )
    except Exception as exc:
        # Kinds that finished before the stop keep their results; the rest carry the reason.
        reason = f"the report notebook stopped: {_papermill_reason(exc)}"
        outcomes = []
        for kind in kinds:
            outcome = read_outcome(folder, kind)
            ran = outcome.result is not None or error_path(folder, kind).exists()
            outcomes.append(outcome if ran else KindOutcome(kind, error=reason))
        return outcomes
    return [read_outcome(folder, kind) for kind in kinds]


def _papermill_reason(exc: Any) -> str:
    name, value = str(getattr(exc, "ename", "")), str(getattr(exc, "evalue", ""))
    if name:
        return f"{name}: {value}" if value else name
    return first_line(exc)


def _save(
    store: ReportStore, family: str, outcome: KindOutcome, notebook: Path | None, owner: str
) -> tuple[ReportRecord | None, ReportFailure | None]:
    if outcome.result is None:
        return None, ReportFailure(family, outcome.kind, outcome.error or "failed")
    try:
        record = store.save(
            outcome.result,
            notebook=notebook if notebook is not None and notebook.exists() else None,
            owner=owner or None,
        )
    except Exception as exc:  # MLflow away: the report ran but is not kept, so it failed
        return None, ReportFailure(family, outcome.kind, f"could not save: {first_line(exc)}")
    return record, None


def _record_line(record: ReportRecord) -> str:
    checks = record.summary.checks
    bad = [c.feature for c in checks if c.status is not Status.OK]
    detail = f"{len(checks)} checks" + (f", not ok: {', '.join(bad)}" if bad else "")
    version = f" v{record.version}" if record.version is not None else ""
    status = record.status.value
    return f"{record.family}{version} {record.kind}: {status} ({detail}); report {record.id}"
