"""``nbfeatures monitor schedule``: each family's reports on its own cron schedule.

The schedules come from the workspace's ``monitoring:`` settings
(``monitoring_config(settings).scheduled()``): a family named there runs on its own
``schedule``, and ``*`` (the defaults' schedule) stands for every family with a production
version that is not named. The catalog is asked again every ``REFRESH_SECONDS``: a family
promoted since the scheduler started gets its job, one whose production alias is gone loses
it, and a catalog that cannot be read leaves the jobs as they were.

One APScheduler 3.x job per family and report set, each with ``coalesce`` (runs missed while
the process was busy or asleep become one), ``max_instances=1`` (a slow report is never run
twice at once) and a misfire grace time. A run that fails is logged by the error listener
and the next run of every job still happens; every run, good or bad, is one log line.

Schedules are crontab text in UTC: five fields (minute hour day month weekday, weekday 0 or 7
is Sunday as in cron), or six with seconds first (``*/2 * * * * *``: every two seconds), for
short schedules and tests.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.errors import ConfigError, MonitoringError
from nbfeatures.monitoring.config import FamilyMonitoring, monitoring_config

if TYPE_CHECKING:
    from nbfeatures.config import Settings
    from nbfeatures.monitoring.runner import RunOutcome

log = logging.getLogger(__name__)

# A run that starts later than this after its time (the process was stopped or busy) is
# skipped, not run late: the next scheduled run reports on a current window anyway.
MISFIRE_GRACE_SECONDS = 600
# How often ``serve_schedule`` asks the catalog which families ``*`` covers now.
REFRESH_SECONDS = 300.0

RunFunction = Callable[[str, Sequence[str]], "RunOutcome"]

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class ScheduledRunFailed(MonitoringError):
    """A scheduled run of a family's reports where at least one report could not run."""

    def __init__(self, family: str, reasons: Sequence[str]) -> None:
        self.family = family
        self.reasons = tuple(reasons)
        super().__init__(f"reports of {family} failed: " + "; ".join(reasons))


@dataclass(frozen=True)
class ScheduledFamily:
    """One job: a family, its report kinds and its crontab."""

    family: str
    kinds: tuple[str, ...]
    schedule: str

    @property
    def job_id(self) -> str:
        return f"reports:{self.family}"


def scheduled_families(settings: Settings) -> list[ScheduledFamily]:
    """What ``monitor schedule`` runs: named families with a schedule, ``*`` for the rest."""
    config = monitoring_config(settings)
    scheduled = config.scheduled()
    jobs: dict[str, FamilyMonitoring] = {n: m for n, m in scheduled.items() if n != "*"}
    if "*" in scheduled:
        from nbfeatures.catalog import Catalog

        production = Catalog.from_settings(settings).production_versions()
        for family in sorted(production):
            if family not in config.families:
                jobs[family] = scheduled["*"]
    return [
        ScheduledFamily(name, tuple(m.reports), m.schedule)
        for name, m in sorted(jobs.items())
        if m.schedule
    ]


def cron_trigger(expression: str, where: str = "schedule") -> Any:
    """An APScheduler ``CronTrigger`` (UTC) for crontab text of 5 fields, or 6 with seconds.

    Weekday numbers mean what they mean in cron (0 and 7: Sunday); APScheduler 3.x counts
    from Monday, so numbers are turned into day names first.
    """
    cron = require("apscheduler.triggers.cron", "monitoring")
    fields = expression.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ConfigError(
            where,
            f"{expression!r} is not a crontab: 5 fields (minute hour day month weekday) "
            "or 6 with seconds first",
        )
    second, minute, hour, day, month, weekday = fields
    try:
        return cron.CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=cron_weekdays(weekday),
            timezone=dt.UTC,
        )
    except ValueError as exc:
        raise ConfigError(where, f"{expression!r}: {exc}") from None


def cron_weekdays(field: str) -> str:
    """Cron's weekday field in APScheduler 3.x's terms: numbers (Sunday 0 or 7) as names."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            low, high = span.split("-", 1)
            first, last = _day(low), _day(high)
        else:
            first = _day(span)
            last = 6 if step_text else first
        if last < first:  # 5-0 and the like wrap past Saturday
            last += 7
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_DAYS[d] for d in sorted(days))


def _day(text: str) -> int:
    text = text.strip().lower()
    if text[:3] in _DAYS:
        return _DAYS.index(text[:3])
    try:
        number = int(text)
    except ValueError:
        raise ConfigError("schedule", f"{text!r} is not a weekday") from None
    if not 0 <= number <= 7:
        raise ConfigError("schedule", f"weekday {number} is not within 0-7")
    # Cron's 7 is Sunday again; ranges like 5-7 stay in order.
    return number


def _default_run(settings: Settings) -> RunFunction:
    def run(family: str, kinds: Sequence[str]) -> RunOutcome:
        from nbfeatures.monitoring.runner import run_reports

        return run_reports(settings, [family], kinds)

    return run


def run_line(family: str, kinds: Sequence[str], outcome: RunOutcome | None, error: str = "") -> str:
    """The log line of one scheduled run: time, family, kinds, each status or the error."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    head = f"{now} {family} [{','.join(kinds)}]"
    if outcome is None:
        return f"{head} error: {error}"
    parts = [f"{r.kind}={r.status.value}" for r in outcome.records]
    parts += [f"{f.kind or 'all'}=FAILED ({f.reason})" for f in outcome.failures]
    return f"{head} " + " ".join(parts)


def build_scheduler(
    settings: Settings,
    *,
    run: RunFunction | None = None,
    jobs: Sequence[ScheduledFamily] | None = None,
    misfire_grace_seconds: int = MISFIRE_GRACE_SECONDS,
) -> Any:
    """A not yet started APScheduler ``BackgroundScheduler`` with one job per family.

    ``run(family, kinds)`` makes and saves the reports (default: ``run_reports`` through the
    template notebook); ``jobs`` defaults to ``scheduled_families(settings)``. A run whose
    outcome has failures raises ``ScheduledRunFailed`` in its job, so the error listener logs
    it; an exception never stops the scheduler or the other jobs.
    """
    background = require("apscheduler.schedulers.background", "monitoring")
    events = require("apscheduler.events", "monitoring")
    run = run or _default_run(settings)
    jobs = scheduled_families(settings) if jobs is None else jobs

    scheduler = background.BackgroundScheduler(
        timezone=dt.UTC,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": misfire_grace_seconds,
        },
    )
    for job in jobs:
        add_job(scheduler, run, job)

    def on_error(event: Any) -> None:
        family = event.job_id.removeprefix("reports:")
        added = scheduler.get_job(event.job_id)  # gone if unscheduled meanwhile
        kinds: Sequence[str] = ()
        if added is not None:
            _, _, kinds = added.args  # as ``add_job`` gives them
        if isinstance(event.exception, ScheduledRunFailed):
            return  # its run line, with each failure, is logged already
        log.error("%s", run_line(family, kinds, None, _one_line(event.exception)))

    def on_missed(event: Any) -> None:
        log.warning(
            "%s: the run due at %s was skipped (past the misfire grace time)",
            event.job_id.removeprefix("reports:"),
            event.scheduled_run_time,
        )

    scheduler.add_listener(on_error, events.EVENT_JOB_ERROR)
    scheduler.add_listener(on_missed, events.EVENT_JOB_MISSED)
    return scheduler


def add_job(scheduler: Any, run: RunFunction, job: ScheduledFamily) -> Any:
    """Schedule ``job`` on ``scheduler`` (replacing one of the same family); the APScheduler job."""
    return scheduler.add_job(
        _job,
        cron_trigger(job.schedule, f"monitoring.families.{job.family}.schedule"),
        args=(run, job.family, job.kinds),
        id=job.job_id,
        name=f"{job.family} [{','.join(job.kinds)}] {job.schedule}",
        replace_existing=True,
    )


def refresh_jobs(
    scheduler: Any, settings: Settings, run: RunFunction, jobs: Sequence[ScheduledFamily]
) -> list[ScheduledFamily]:
    """Bring the scheduler's jobs to what ``scheduled_families`` says now; return that list.

    A family ``*`` no longer covers loses its job (a run in progress finishes); one it covers
    since ``jobs`` were made gets one. If the catalog cannot be read, ``jobs`` stay.
    """
    try:
        wanted = scheduled_families(settings)
    except Exception as exc:  # the catalog may be away for a while: the scheduler outlives it
        log.warning(
            "could not read the production families, keeping the jobs as they are: %s",
            _one_line(exc),
        )
        return list(jobs)
    have = {job.job_id: job for job in jobs}
    want = {job.job_id: job for job in wanted}
    for job_id, job in have.items():
        if want.get(job_id) != job:
            scheduler.remove_job(job_id)
            if job_id not in want:
                log.info("unscheduled %s: it has no production version now", job.family)
    for job_id, job in want.items():
        if have.get(job_id) != job:
            added = add_job(scheduler, run, job)
            log.info("scheduled %s, next run %s", added.name, added.next_run_time)
    return wanted


def _job(run: RunFunction, family: str, kinds: Sequence[str]) -> None:
    """One scheduled run: make the reports, log one line, raise when a report failed."""
    outcome = run(family, kinds)
    line = run_line(family, kinds, outcome)
    if outcome.failures:
        log.error("%s", line)
        raise ScheduledRunFailed(family, [f.line() for f in outcome.failures])
    log.info("%s", line)


def _one_line(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def serve_schedule(
    settings: Settings,
    *,
    run: RunFunction | None = None,
    stop: threading.Event | None = None,
    handle_signals: bool = True,
    refresh_seconds: float = REFRESH_SECONDS,
) -> int:
    """Run the scheduler until SIGTERM/SIGINT (or ``stop`` is set); return 0.

    Jobs that are running when the stop comes are waited for, so no report is cut in half.
    Every ``refresh_seconds`` the families ``*`` covers are read again (``refresh_jobs``).
    With no schedule in the settings it says so and returns 1 at once.
    """
    if not monitoring_config(settings).scheduled():
        log.error(
            "nothing to schedule: set monitoring.defaults.schedule or a family's schedule "
            "in nbfeatures.yaml"
        )
        return 1
    run = run or _default_run(settings)
    jobs = scheduled_families(settings)
    scheduler = build_scheduler(settings, run=run, jobs=jobs)
    stop = stop or threading.Event()
    previous: dict[int, Any] = {}
    if handle_signals:

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("%s received: stopping after the running reports", signal.Signals(signum).name)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    scheduler.start()
    for job in scheduler.get_jobs():
        log.info("scheduled %s, next run %s", job.name, job.next_run_time)
    if not jobs:
        log.info(
            "no family to run yet: `*` covers each family with a production version; "
            "the catalog is read again every %g s",
            refresh_seconds,
        )
    try:
        look_again = time.monotonic() + refresh_seconds
        # Short waits, so a signal is handled promptly on every platform.
        while not stop.wait(min(1.0, refresh_seconds)):
            if time.monotonic() >= look_again:
                jobs = refresh_jobs(scheduler, settings, run, jobs)
                look_again = time.monotonic() + refresh_seconds
    finally:
        scheduler.shutdown(wait=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.info("scheduler stopped")
    return 0
