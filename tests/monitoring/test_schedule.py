"""``nbfeatures monitor schedule``: cron parsing, the job list, and a real scheduler running
one good family and one failing one on a two-second schedule."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from runner_fixtures import FRESH, OLD, PromotedWorkspace, family

from nbfeatures.errors import ConfigError
from nbfeatures.monitoring.runner import RunOutcome, run_reports
from nbfeatures.monitoring.schedule import (
    ScheduledFamily,
    build_scheduler,
    cron_trigger,
    cron_weekdays,
    scheduled_families,
    serve_schedule,
)
from nbfeatures.monitoring.store import ReportStore

MONDAY = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)  # a Monday


def _fires(expression: str, after: dt.datetime, count: int) -> list[dt.datetime]:
    trigger = cron_trigger(expression)
    times, previous, now = [], None, after
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        times.append(fire)
        previous, now = fire, fire + dt.timedelta(microseconds=1)
    return times


def test_six_fields_put_seconds_first() -> None:
    fires = _fires("*/2 * * * * *", MONDAY, 3)
    assert [f.second for f in fires] == [0, 2, 4]


def test_five_fields_are_crontab_with_cron_weekdays() -> None:
    # 1-5 is Monday to Friday in cron (APScheduler 3 alone would read Tuesday to Saturday).
    fires = _fires("0 6 * * 1-5", MONDAY, 5)
    assert [f.strftime("%a %H:%M") for f in fires] == [
        "Tue 06:00", "Wed 06:00", "Thu 06:00", "Fri 06:00", "Mon 06:00",
    ]  # fmt: skip
    assert _fires("30 7 * * 0", MONDAY, 1)[0].strftime("%a %H:%M") == "Sun 07:30"
    assert cron_weekdays("7") == "sun" and cron_weekdays("*/2") == "sun,tue,thu,sat"
    assert cron_weekdays("5-7") == "sun,fri,sat" and cron_weekdays("mon,wed") == "mon,wed"


@pytest.mark.parametrize("bad", ["* * *", "61 * * * *", "0 6 * * 9"])
def test_a_bad_schedule_names_where_it_is(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"monitoring\.families\.x\.schedule"):
        cron_trigger(bad, "monitoring.families.x.schedule")


@pytest.mark.integration
def test_star_stands_for_every_production_family_not_named(
    promoted_workspace: PromotedWorkspace,
) -> None:
    settings = dataclasses.replace(
        promoted_workspace.settings,
        monitoring={
            "defaults": {"schedule": "0 6 * * *", "reports": ["freshness"]},
            "families": {FRESH: {"schedule": "none"}, "other": {"schedule": "*/5 * * * *"}},
        },
    )
    jobs = scheduled_families(settings)
    assert jobs == [
        ScheduledFamily(OLD, ("freshness",), "0 6 * * *"),
        ScheduledFamily("other", ("freshness",), "*/5 * * * *"),
    ]
    scheduler = build_scheduler(settings, jobs=jobs)
    scheduler.start(paused=True)  # job defaults apply once the scheduler holds its jobs
    try:
        job = scheduler.get_job(f"reports:{OLD}")
        assert job.coalesce and job.max_instances == 1 and job.misfire_grace_time > 0
        assert str(job.trigger) == str(cron_trigger("0 6 * * *"))
    finally:
        scheduler.shutdown(wait=False)


@pytest.mark.integration
def test_scheduler_keeps_running_the_good_family_while_another_fails(
    promoted_workspace: PromotedWorkspace, caplog: pytest.LogCaptureFixture
) -> None:
    every_two_seconds = {"schedule": "*/2 * * * * *", "reports": ["skew"]}
    settings = dataclasses.replace(
        promoted_workspace.settings,
        monitoring={"families": {FRESH: every_two_seconds, "missing_family": every_two_seconds}},
    )
    store = ReportStore.from_settings(settings)
    before = len(store.list(family=FRESH, limit=1000))

    def run(family: str, kinds: Sequence[str]) -> RunOutcome:
        return run_reports(settings, [family], kinds, notebook=False)

    stop = threading.Event()
    result: list[int] = []
    caplog.set_level(logging.INFO, logger="nbfeatures.monitoring.schedule")
    thread = threading.Thread(
        target=lambda: result.append(
            serve_schedule(settings, run=run, stop=stop, handle_signals=False)
        ),
        daemon=True,
    )
    thread.start()
    # Wait (bounded) until the good family has two new reports; no assertion on timing.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(store.list(family=FRESH, limit=1000)) < before + 2:
        time.sleep(0.5)
    stop.set()
    thread.join(60)

    assert not thread.is_alive() and result == [0]
    assert len(store.list(family=FRESH, limit=1000)) >= before + 2
    ours = [r for r in caplog.records if r.name == "nbfeatures.monitoring.schedule"]
    errors = [r.getMessage() for r in ours if r.levelno == logging.ERROR]
    assert errors and all("missing_family [skew] all=FAILED (no family" in e for e in errors)
    good = [r.getMessage() for r in ours if f" {FRESH} [skew] skew=" in r.getMessage()]
    assert len(good) >= 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_command_stops_cleanly_on_a_signal(tmp_path: Path, signum: signal.Signals) -> None:
    (tmp_path / "nbfeatures.yaml").write_text(
        "owner: tests\nmonitoring:\n  families:\n    user_spend: {schedule: '0 6 * * *'}\n"
    )
    command = [sys.executable, "-m", "nbfeatures.cli", "--workspace", str(tmp_path)]
    process = subprocess.Popen(
        [*command, "monitor", "schedule"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert process.stderr is not None
    lines = []
    for line in process.stderr:  # wait until the job is scheduled, then stop it
        lines.append(line)
        if "scheduled user_spend [drift,skew,freshness] 0 6 * * *" in line:
            break
    process.send_signal(signum)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(lines) + rest
    assert f"{signal.Signals(signum).name} received" in rest and "scheduler stopped" in rest


class LogLines(logging.Handler):
    """The messages logged so far; ``wait_for`` wakes when one holds a text."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.lines.append(record.getMessage())
            self.changed.notify_all()

    def wait_for(self, text: str, timeout: float = 60.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: any(text in line for line in self.lines), timeout)


def not_due(family: str, kinds: Sequence[str]) -> RunOutcome:
    raise AssertionError(f"{family}: no run is due in this test")


@pytest.mark.integration
def test_families_promoted_or_demoted_while_it_runs_gain_or_lose_their_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from nbfeatures.catalog import Catalog
    from nbfeatures.config import load_settings

    (tmp_path / "nbfeatures.yaml").write_text(
        "owner: tests\nmonitoring:\n  defaults: {schedule: '0 6 * * *', reports: [freshness]}\n"
    )
    settings = load_settings(tmp_path, environ={})
    catalog = Catalog.from_settings(settings)
    catalog.register(family("late_family", "events", tmp_path / "events.parquet", "1h"))
    said = LogLines()
    schedule_log = logging.getLogger("nbfeatures.monitoring.schedule")
    schedule_log.addHandler(said)
    caplog.set_level(logging.INFO, logger="nbfeatures.monitoring.schedule")
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            serve_schedule(
                settings,
                run=not_due,
                stop=stop,
                handle_signals=False,
                refresh_seconds=0.2,
            )
        ),
        daemon=True,
    )
    thread.start()
    try:
        assert said.wait_for("no family to run yet")
        catalog.set_alias("late_family", "production", 1)
        assert said.wait_for("scheduled late_family [freshness] 0 6 * * *, next run")
        client = catalog._connection.client
        client.delete_registered_model_alias(catalog.model_name("late_family"), "production")
        assert said.wait_for("unscheduled late_family: it has no production version now")
    finally:
        stop.set()
        thread.join(60)
        schedule_log.removeHandler(said)
    assert not thread.is_alive() and result == [0]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # not_due never ran


def test_a_catalog_that_cannot_be_read_leaves_the_jobs_as_they_are(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from nbfeatures.config import load_settings
    from nbfeatures.monitoring.schedule import refresh_jobs

    (tmp_path / "nbfeatures.yaml").write_text(
        "owner: tests\nmonitoring:\n  defaults: {schedule: '0 6 * * *'}\n"
    )
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the catalog's folder should be")
    settings = load_settings(tmp_path, environ={}, catalog_uri=f"sqlite:///{blocked}/mlflow.db")
    jobs = [ScheduledFamily("kept", ("freshness",), "0 6 * * *")]
    scheduler = build_scheduler(settings, run=not_due, jobs=jobs)
    scheduler.start(paused=True)
    try:
        assert refresh_jobs(scheduler, settings, not_due, jobs) == jobs
        assert [job.id for job in scheduler.get_jobs()] == ["reports:kept"]
    finally:
        scheduler.shutdown(wait=False)
    assert "could not read the production families, keeping the jobs as they are" in caplog.text


def test_nothing_scheduled_exits_1_with_the_setting_to_add(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from nbfeatures.cli import run as cli_run

    (tmp_path / "nbfeatures.yaml").write_text("owner: tests\n")
    assert cli_run(["--workspace", str(tmp_path), "monitor", "schedule"]) == 1
    assert "nothing to schedule: set monitoring.defaults.schedule" in caplog.text
