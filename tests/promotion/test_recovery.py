"""Recovering from killed promotions and lost data, through the CLI, on this module's own Redis.

The tests run in order and share one family (v1, v2) and one redis-server started here (so
the restore test may FLUSHALL it):

1. ``nbfeatures compute`` v1, then a promotion of v1 that reuses that offline set and is
   killed right after its flip: ``status`` names the dead lock and records the run as
   succeeded; ``cleanup`` releases the lock; promoting v1 again is refused at once.
2. A promotion of v2 killed after materializing: ``status`` names its dead lock and orphan
   keyspace, ``cleanup --dry-run`` changes nothing, ``cleanup`` removes both, v1 untouched.
3. ``promote --recompute`` computes v2's offline set again although it is current.
4. Redis loses everything; ``promote --restore`` puts v2 back from its offline set, and a
   plain ``promote --version 2`` of the production version works as well.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from servers import RedisServer

from nbfeatures.config import Settings

from .conftest import SQL_V1, SQL_V2, family, make_settings

pytestmark = pytest.mark.integration

NAME = "promo_recover"

# A real promotion in a child process that SIGKILLs itself when STEP starts or ends, the
# way a machine or an operator kills one. Its lock lives 120 s, so the tests see it held.
KILL_AT = """
import os, signal, sys
from nbfeatures.config import load_settings
from nbfeatures.promotion import PromotionOptions, promote

workspace, name, version, step, when = sys.argv[1:6]

def progress(event):
    print(event.line(), flush=True)
    if event.step == step and (event.seconds is not None) == (when == "end"):
        os.kill(os.getpid(), signal.SIGKILL)

promote(load_settings(workspace, environ={}), name, int(version), progress=progress,
        options=PromotionOptions(lock_ttl=120.0))
"""


@dataclass
class Place:
    server: RedisServer
    settings: Settings


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    from nbfeatures.catalog import Catalog
    from nbfeatures.demo_data import write_transactions

    server = RedisServer(tmp_path_factory.mktemp("recovery-redis"))
    server.start()
    try:
        settings = make_settings(tmp_path_factory.mktemp("recovery-ws"), server.url)
        data = write_transactions(
            settings.workspace / "data" / "transactions.parquet", rows=400, users=20, days=10
        )
        catalog = Catalog.from_settings(settings)
        catalog.register(family(NAME, SQL_V1, data))
        catalog.register(family(NAME, SQL_V2, data))
        yield Place(server, settings)
    finally:
        server.stop()


def nbfeatures(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nbfeatures.cli", "--workspace", str(settings.workspace), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "NBF_WORKSPACE": str(settings.workspace)},
    )


def kill_at(settings: Settings, version: int, step: str, when: str) -> tuple[int, str]:
    """Run a promotion that kills itself at ``step`` (``start`` or ``end``); its pid, output."""
    child = subprocess.Popen(
        [sys.executable, "-c", KILL_AT, str(settings.workspace), NAME,
         str(version), step, when],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "NBF_WORKSPACE": str(settings.workspace)},
    )  # fmt: skip
    out, _ = child.communicate(timeout=900)
    assert child.returncode == -signal.SIGKILL, out
    return child.pid, out


def _store(settings: Settings) -> Any:
    from nbfeatures.online.store import OnlineStore

    return OnlineStore.from_settings(settings)


def _production(settings: Settings) -> int:
    from nbfeatures.catalog import Catalog

    return Catalog.from_settings(settings).get(NAME, alias="production").version


def _runs(settings: Settings) -> dict[str, Any]:
    from nbfeatures.promotion.tracking import promotion_runs

    return {r.info.run_id: r for r in promotion_runs(settings, NAME)}


def _run_dirs(settings: Settings) -> list[Path]:
    return sorted((settings.home / "promotions").glob(f"{NAME}-*"))


def _manifest(settings: Settings, version: int) -> Any:
    from nbfeatures.engine.offline_store import read_manifest

    return read_manifest(settings, NAME, version)


def test_kill_after_flip_is_repaired_and_the_live_version_is_refused_at_once(
    place: Place,
) -> None:
    from nbfeatures.promotion.lock import PromotionLock

    settings = place.settings
    computed = nbfeatures(settings, "compute", NAME, "--version", "1")
    assert computed.returncode == 0, computed.stderr[-3000:]
    offline = _manifest(settings, 1)
    assert offline is not None and offline.rows == 400

    pid, out = kill_at(settings, 1, "flip", "end")
    assert re.search(r"^step 5/6 flip: [\d.]+ s$", out, re.M), out
    assert "step 6/6" not in out
    store = _store(settings)
    assert store.live_version(NAME) == 1 and _production(settings) == 1
    # The promotion reused what `compute` had just written: the manifest did not change.
    (run_dir,) = _run_dirs(settings)
    compute = json.loads((run_dir / "results.json").read_text())["compute"]
    assert compute["reused"] is True
    assert compute["offline"].startswith("reused the offline set computed at ")
    after = _manifest(settings, 1)
    assert after.updated_at == offline.updated_at and len(after.runs) == len(offline.runs)
    (dead,) = [r for r in _runs(settings).values() if r.info.status == "RUNNING"]

    status = nbfeatures(settings, "status")
    assert status.returncode == 0, status.stderr
    assert re.search(
        rf"^{NAME}: promotion lock held by \S+ pid {pid}, which is no longer running "
        rf"\(process {pid} no longer exists on \S+, where it ran\); it expires in \d+ s; "
        r"`nbfeatures cleanup` releases it$",
        status.stdout,
        re.M,
    ), status.stdout
    assert (
        f"repaired {NAME}: MLflow run {dead.info.run_id} recorded as succeeded: v1 is live "
        "(its process stopped after the flip)"
    ) in status.stdout, status.stdout
    repaired = _runs(settings)[dead.info.run_id]
    assert repaired.info.status == "FINISHED"
    assert repaired.data.tags["outcome"] == "succeeded" and "repaired" in repaired.data.tags
    assert repaired.data.params["to_version"] == "1"
    assert repaired.data.params["offline"] == "reused"

    cleaned = nbfeatures(settings, "cleanup")
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"released the promotion lock of {NAME} held by " in cleaned.stdout, cleaned.stdout
    assert PromotionLock(store.client, store.prefix, NAME, 1).holder() is None

    runs = set(_runs(settings))
    again = nbfeatures(settings, "promote", NAME, "--version", "1")
    assert again.returncode == 2
    assert f"{NAME} v1 is already live" in again.stderr and "nothing to promote" in again.stderr
    assert not re.search(r"^step \d/6", again.stderr, re.M) and "Traceback" not in again.stderr
    # Refused before anything ran: no run, no notebook, the offline set untouched.
    assert set(_runs(settings)) == runs and _run_dirs(settings) == [run_dir]
    assert _manifest(settings, 1).updated_at == offline.updated_at


def test_killed_promotion_leftovers_are_reported_and_cleaned_up(place: Place) -> None:
    from nbfeatures.promotion.lock import PromotionLock

    settings = place.settings
    pid, out = kill_at(settings, 2, "verify", "start")
    assert re.search(r"^step 3/6 materialize: [\d.]+ s$", out, re.M), out
    store = _store(settings)
    assert store.live_version(NAME) == 1 and store.count_keys(NAME, 2) == 20

    status = nbfeatures(settings, "status")
    assert status.returncode == 0, status.stderr
    assert re.search(
        rf"^{NAME}: promotion lock held by \S+ pid {pid}, which is no longer running",
        status.stdout,
        re.M,
    ), status.stdout
    assert re.search(
        rf"^{NAME} v2: orphan keyspace \(20 entities, written [\d-]+ [\d:]+ UTC\): neither live "
        r"nor in the live history and no promotion is running; `nbfeatures cleanup` deletes it$",
        status.stdout,
        re.M,
    ), status.stdout
    assert f"{NAME} v1: orphan" not in status.stdout
    assert re.search(rf"^repaired {NAME}: MLflow run \w+ marked KILLED", status.stdout, re.M)

    dry = nbfeatures(settings, "cleanup", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (
        f"would release the promotion lock of {NAME} (process {pid} no longer exists" in dry.stdout
    )
    assert f"would delete the orphan keyspace of {NAME} v2 (20 entities)" in dry.stdout
    lock = PromotionLock(store.client, store.prefix, NAME, 1)
    assert store.count_keys(NAME, 2) == 20 and lock.holder() is not None

    cleaned = nbfeatures(settings, "cleanup")
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"released the promotion lock of {NAME} held by " in cleaned.stdout
    assert f"deleted the orphan keyspace of {NAME} v2 (20 entities)" in cleaned.stdout
    assert lock.holder() is None
    assert store.count_keys(NAME, 2) == 0 and store.layout(NAME, 2) is None
    assert store.live_version(NAME) == 1 and store.count_keys(NAME, 1) == 20

    quiet = nbfeatures(settings, "status")
    assert "orphan keyspace" not in quiet.stdout and "promotion lock" not in quiet.stdout
    nothing = nbfeatures(settings, "cleanup")
    assert (
        nothing.stdout.strip()
        == "nothing to clean up: no dead promotion locks, no orphan keyspaces"
    )


def test_recompute_computes_a_current_offline_set_again(place: Place) -> None:
    settings = place.settings
    before = _manifest(settings, 2)  # written by the killed promotion's compute step
    assert before is not None
    promoted = nbfeatures(settings, "promote", NAME, "--version", "2", "--recompute")
    assert promoted.returncode == 0, promoted.stderr[-3000:]
    assert re.search(
        r"^offline set: recomputed the offline set, now covering \[.+\) \(asked to recompute\)$",
        promoted.stdout,
        re.M,
    ), promoted.stdout
    after = _manifest(settings, 2)
    assert after.updated_at > before.updated_at and len(after.runs) == len(before.runs) + 1
    assert _store(settings).live_version(NAME) == 2 and _production(settings) == 2


def _offline_latest(settings: Settings, version: int) -> Any:
    from nbfeatures.engine.offline_store import arrow_dataset, version_path

    frame = arrow_dataset(version_path(settings, NAME, version)).to_table().to_pandas()
    latest = frame.sort_values("ts").groupby("user_id").tail(1)
    return latest.set_index("user_id").sort_index()


def test_restore_after_redis_lost_everything(place: Place) -> None:
    import numpy as np
    import redis

    settings = place.settings
    offline = _manifest(settings, 2)
    redis.Redis(port=place.server.port).flushall()
    store = _store(settings)
    assert store.live_version(NAME) is None and _production(settings) == 2

    restored = nbfeatures(settings, "promote", NAME, "--restore")
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert (
        f"restored {NAME} v2, the production version, into the online store; "
        "the production alias is unchanged"
    ) in restored.stdout, restored.stdout
    assert re.search(
        r"^offline set: reused the offline set computed at [\d-]+ [\d:]+ UTC covering \[.+\) "
        r"\(restoring what production served\)$",
        restored.stdout,
        re.M,
    ), restored.stdout
    assert _manifest(settings, 2).updated_at == offline.updated_at  # nothing recomputed
    store = _store(settings)
    assert store.live_version(NAME) == 2 and _production(settings) == 2

    latest = _offline_latest(settings, 2)
    layout = store.layout(NAME, 2)
    rows = store.read(layout, list(latest.index)).to_arrow().to_pandas().set_index("key")
    assert rows["present"].all() and len(rows) == 20
    rows.index = rows.index.astype(latest.index.dtype)
    assert list(rows["merchant"]) == list(latest["merchant"])
    assert list(rows["cents"]) == list(latest["cents"])
    assert np.array_equal(rows["amount"].to_numpy(), latest["amount"].to_numpy())
    assert np.array_equal(
        rows["amount32"].to_numpy(np.float32), latest["amount32"].to_numpy(np.float32)
    )
    runs = [r for r in _runs(settings).values() if r.data.tags.get("nbfeatures.kind") == "restore"]
    assert len(runs) == 1 and runs[0].data.tags["outcome"] == "succeeded"

    # Lost again: a plain promotion of the production version is not refused either.
    redis.Redis(port=place.server.port).flushall()
    promoted = nbfeatures(settings, "promote", NAME, "--version", "2")
    assert promoted.returncode == 0, promoted.stderr[-3000:]
    assert _store(settings).live_version(NAME) == 2 and _store(settings).count_keys(NAME, 2) == 20
