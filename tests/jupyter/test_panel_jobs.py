"""The job registry on its own: one job per family at a time, outcomes and failures as the
panel reads them. The work here is plain Python functions, the registry's input contract;
the real promotion behind it is tested through the server in test_panel_promotion."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from nbfeatures.errors import PromotionInProgress
from nbfeatures.jupyter.jobs import JobFailed, JobRegistry, Outcome


def _ended(registry: JobRegistry, job_id: str) -> dict[str, Any]:
    for _ in range(1000):
        job = registry.get(job_id)
        assert job is not None
        if job["state"] != "running":
            return job
        time.sleep(0.01)  # waiting for the worker thread, not asserting on time
    raise AssertionError(f"job {job_id} did not end")


def test_one_job_per_family_runs_at_a_time_and_reports_its_outcome() -> None:
    registry = JobRegistry()
    release = threading.Event()

    def slow(report: Callable[[str], None]) -> Outcome:
        report("step 1/6 load: started")
        release.wait(timeout=60)
        return Outcome(3, "nbfeatures-promotions/spend.ipynb", ("spend v3 is live",))

    first = registry.start("promote", "spend", 3, slow)
    with pytest.raises(PromotionInProgress, match=f"job {first.id} of this Jupyter server"):
        registry.start("rollback", "spend", None, slow)
    other = registry.start("rollback", "risk", None, lambda report: Outcome(1))
    assert _ended(registry, other.id)["state"] == "succeeded"
    release.set()
    done = _ended(registry, first.id)
    assert (done["state"], done["production_version"], done["error"]) == ("succeeded", 3, None)
    assert done["lines"] == ["promote spend v3: queued", "step 1/6 load: started",
                             "spend v3 is live"]  # fmt: skip
    assert done["notebook"] == "nbfeatures-promotions/spend.ipynb" and done["ended_at"]
    # A rollback learns its version from its outcome.
    assert registry.get(other.id)["version"] == 1  # type: ignore[index]
    # The family is free again once its job ended.
    assert registry.start("rollback", "spend", None, lambda report: Outcome(2)).family == "spend"


def test_a_failing_job_keeps_the_message_and_the_notebook_to_open() -> None:
    registry = JobRegistry()

    def failing(report: Callable[[str], None]) -> Outcome:
        raise JobFailed("promotion of spend v2 failed at step 'verify': 3 mismatches", "nb.ipynb")

    def broken(report: Callable[[str], None]) -> Outcome:
        raise ValueError("no such column: amount")

    failed = _ended(registry, registry.start("promote", "spend", 2, failing).id)
    assert failed["state"] == "failed" and failed["notebook"] == "nb.ipynb"
    assert failed["error"] == "promotion of spend v2 failed at step 'verify': 3 mismatches"
    crashed = _ended(registry, registry.start("promote", "risk", 1, broken).id)
    assert crashed["error"] == "ValueError: no such column: amount" and crashed["notebook"] is None


def test_an_unknown_job_is_none() -> None:
    assert JobRegistry().get("nope") is None
