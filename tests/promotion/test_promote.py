"""Promotion end to end, through papermill and a real kernel with its own Spark.

The tests of this module run in order and share one family: v1 goes live (while a second
promotion is refused), a promotion of v2 is killed during materialization, v2 then goes live,
rollback returns to v1, v3 fails verification, and cleanup removes v3's keyspace only.
Each papermill run starts a kernel and Spark, so the module keeps the number of runs small.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from nbfeatures.config import Settings
from nbfeatures.errors import PromotionFailed, PromotionInProgress
from nbfeatures.promotion import PromotionOptions, StepEvent

from .conftest import SQL_V1, SQL_V2, SQL_V3, family, forget_family
from .test_verify import corrupt_value

pytestmark = pytest.mark.integration

NAME = "promo_spend"


def _store(settings: Settings) -> Any:
    from nbfeatures.online.store import OnlineStore

    return OnlineStore.from_settings(settings)


def _catalog(settings: Settings) -> Any:
    from nbfeatures.catalog import Catalog

    return Catalog.from_settings(settings)


def _production(settings: Settings) -> int | None:
    summary = {s.name: s for s in _catalog(settings).list()}.get(NAME)
    return summary.production_version if summary else None


@pytest.fixture(scope="module")
def registered(workspace: Settings, transactions: Path) -> dict[int, int]:
    catalog = _catalog(workspace)
    versions = {}
    for number, sql in ((1, SQL_V1), (2, SQL_V2), (3, SQL_V3)):
        versions[number] = catalog.register(family(NAME, sql, transactions)).version.version
    yield versions
    forget_family(_store(workspace), NAME, versions.values())


def test_promote_v1_refuses_a_concurrent_promotion(
    workspace: Settings, registered: dict[int, int]
) -> None:
    from nbfeatures.promotion import promote
    from nbfeatures.promotion.tracking import promotion_runs

    events: list[StepEvent] = []
    loading = threading.Event()
    outcome: dict[str, Any] = {}

    def progress(event: StepEvent) -> None:
        events.append(event)
        if event.step == "load":
            loading.set()

    def run() -> None:
        try:
            outcome["record"] = promote(workspace, NAME, 1, progress=progress)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    assert loading.wait(timeout=300), outcome
    with pytest.raises(PromotionInProgress) as refused:
        promote(workspace, NAME, 1)
    thread.join()
    assert "error" not in outcome, outcome.get("error")
    assert refused.value.family == NAME and "pid" in refused.value.holder

    record = outcome["record"]
    assert (record.version, record.previous) == (1, None)
    assert [e.step for e in events if e.seconds is None] == list(record.steps)
    assert [e.line().split(":")[0] for e in events[-2:]] == ["step 6/6 record"] * 2
    verify = record.results["verify"]
    assert verify["ok"] and verify["mismatches"] == 0 and verify["sampled"] == 20
    assert verify["online_keys"] == verify["offline_entities"] == 20
    assert record.results["compute"]["rows"] == 400

    store = _store(workspace)
    assert store.live_version(NAME) == 1
    assert _production(workspace) == 1
    runs = promotion_runs(workspace, NAME)
    run_ = next(r for r in runs if r.info.run_id == record.run_id)
    assert run_.data.params["to_version"] == "1" and run_.data.params["from_version"] == "none"
    assert run_.data.tags["outcome"] == "succeeded" and run_.info.status == "FINISHED"
    assert run_.data.metrics["verify_online_keys"] == 20
    artifacts = [
        a.path for a in _catalog(workspace)._connection.client.list_artifacts(record.run_id)
    ]
    assert artifacts == ["promote.ipynb"]


KILLER = """
import sys
from nbfeatures.config import load_settings
from nbfeatures.promotion import PromotionOptions, promote

def progress(event):
    print(event.line(), flush=True)

promote(load_settings(sys.argv[1], environ={}), sys.argv[2], 2, progress=progress,
        options=PromotionOptions(lock_ttl=3.0))
"""


def test_killed_promotion_changes_nothing_and_the_next_one_closes_its_run(
    workspace: Settings, registered: dict[int, int]
) -> None:
    from nbfeatures.promotion import promote
    from nbfeatures.promotion.tracking import promotion_runs

    child = subprocess.Popen(
        [sys.executable, "-c", KILLER, str(workspace.workspace), NAME],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "NBF_WORKSPACE": str(workspace.workspace)},
    )
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("step 3/6 materialize: started"):
            break
    else:
        pytest.fail(f"the promotion ended before materializing: {child.wait()}")
    child.send_signal(signal.SIGKILL)
    child.wait()

    assert _store(workspace).live_version(NAME) == 1
    assert _production(workspace) == 1
    # Its MLflow run was never ended: the killed process would have ended it.
    stale = [r for r in promotion_runs(workspace, NAME) if r.info.status == "RUNNING"]
    assert len(stale) == 1
    # The killed holder's lock expires (3 s); the next promotion waits for it and proceeds.
    record = promote(workspace, NAME, 2, options=PromotionOptions(lock_wait=60))
    assert (record.version, record.previous) == (2, 1)
    store = _store(workspace)
    assert store.live_version(NAME) == 2 and store.live_history(NAME)[0] == 1
    assert _production(workspace) == 2
    # ... and, holding the lock, it ended the dead promotion's run as KILLED first.
    runs = {r.info.run_id: r for r in promotion_runs(workspace, NAME)}
    dead = runs[stale[0].info.run_id]
    assert dead.info.status == "KILLED" and dead.data.tags["outcome"] == "killed"
    assert runs[record.run_id].info.status == "FINISHED"
    assert not [r for r in runs.values() if r.info.status == "RUNNING"]


def test_rollback_mismatch_and_cleanup(
    workspace: Settings, registered: dict[int, int], transactions: Path
) -> None:
    import pyarrow.parquet as pq

    from nbfeatures.promotion import cleanup, promote, rollback

    assert rollback(workspace, NAME) == 1
    store = _store(workspace)
    assert store.live_version(NAME) == 1 and _production(workspace) == 1

    # Genuinely different data: just before the verify step runs, one value of v3's freshly
    # written keyspace is rewritten in Redis (papermill reports a step before running it).
    entity = pq.read_table(transactions, columns=["user_id"]).column(0)[0].as_py()
    corrupted: list[str] = []

    def corrupt_before_verify(event: StepEvent) -> None:
        if event.step == "verify" and event.seconds is None:
            corrupt_value(store, store.layout(NAME, 3), entity)
            corrupted.append(entity)

    with pytest.raises(PromotionFailed) as failed:
        promote(workspace, NAME, 3, progress=corrupt_before_verify)
    assert corrupted == [entity]
    error = failed.value
    assert (error.step, error.version) == ("verify", 3)
    assert "differ" in error.reason and f"{entity}.amount: offline" in error.reason
    assert error.notebook is not None and Path(error.notebook).exists()
    assert error.cell is not None
    import nbformat

    cells = nbformat.read(error.notebook, as_version=4).cells
    assert "verify" in cells[error.cell].metadata["tags"]
    assert store.live_version(NAME) == 1 and _production(workspace) == 1
    assert store.count_keys(NAME, 3) == 20  # written, never live

    assert cleanup(workspace, NAME) == []  # all within the grace period
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=25)
    assert cleanup(workspace, NAME, now=later) == [3]
    assert store.count_keys(NAME, 3) == 0
    assert store.count_keys(NAME, 1) == 20 and store.count_keys(NAME, 2) == 20
