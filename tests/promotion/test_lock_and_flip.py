"""The promotion lock and the pointer-and-alias flip, in process against real Redis and MLflow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from servers import RedisServer

from nbfeatures.catalog import Catalog
from nbfeatures.config import Settings
from nbfeatures.errors import FeatureNotFound, PromotionInProgress

from .conftest import SQL_V1, SQL_V2, family, forget_family

pytestmark = pytest.mark.integration


def test_lock_refuses_a_second_holder_and_frees_on_release(redis_server: RedisServer) -> None:
    import redis

    from nbfeatures.promotion.lock import PromotionLock

    client = redis.Redis.from_url(redis_server.url)
    name = f"lock_{uuid.uuid4().hex[:8]}"
    first = PromotionLock(client, "nbft:", name, ttl=30)
    second = PromotionLock(client, "nbft:", name, ttl=30)
    with first.hold():
        with pytest.raises(PromotionInProgress) as busy:
            second.acquire()
        assert busy.value.expires_in is not None and busy.value.expires_in <= 30
        assert not second.renew()  # not its lock: neither renewed nor released
        second.release()
        assert first.holder() is not None
    assert first.holder() is None
    with second.hold():
        assert second.renew()


def test_alias_failure_flips_the_pointer_back(workspace: Settings, transactions: Path) -> None:
    from nbfeatures.online.store import FamilyLayout, OnlineStore
    from nbfeatures.promotion.switch import flip_together

    name = f"flip_{uuid.uuid4().hex[:8]}"
    catalog = Catalog.from_settings(workspace)
    v1 = catalog.register(family(name, SQL_V1, transactions)).version
    store = OnlineStore.from_settings(workspace)
    try:
        for number in (1, 7):  # v7 exists in Redis but not in the catalog
            store.write_layout(FamilyLayout.of(v1.family, number))
        assert flip_together(store, catalog, name, 1, None) is None
        assert catalog.get(name, alias="production").version == 1
        with pytest.raises(FeatureNotFound):
            flip_together(store, catalog, name, 7, 1)
        assert store.live_version(name) == 1
        assert store.live_history(name) == []
        assert catalog.get(name, alias="production").version == 1
    finally:
        forget_family(store, name, (1, 7))


def test_on_demand_family_is_published_without_a_notebook_run(workspace: Settings) -> None:
    from nbfeatures.on_demand import define_on_demand, load_on_demand
    from nbfeatures.online.store import OnlineStore
    from nbfeatures.promotion import promote

    name = f"od_{uuid.uuid4().hex[:8]}"
    body = "def f(df):\n    return pd.DataFrame({'share': df['amount'] / 2.0})\n"
    defined = define_on_demand(
        name,
        body,
        entity_key="user_id",
        inputs={},
        request={"amount": "float64"},
        owner="tests",
    )
    catalog = Catalog.from_settings(workspace)
    catalog.register(defined)
    steps: list[str] = []
    record = promote(workspace, name, 1, progress=lambda event: steps.append(event.line()))
    assert (record.version, record.previous, record.notebook) == (1, None, "")
    assert steps[0] == "step 1/1 publish: started" and steps[-1].startswith("step 1/1 publish: ")
    store = OnlineStore.from_settings(workspace)
    assert store.live_version(name) == 1
    published = load_on_demand(store, name, 1)
    assert published is not None and published.family.feature_names == ("share",)
    assert catalog.get(name, alias="production").version == 1


# Runs a real rollback in a child process that dies by SIGKILL inside the alias update, i.e.
# after the live pointer moved and before the production alias could follow.
KILLED_BETWEEN_FLIP_AND_ALIAS = """
import os, signal, sys
from nbfeatures.catalog import Catalog
from nbfeatures.config import load_settings
from nbfeatures.promotion import rollback

def die(self, name, alias, version):
    os.kill(os.getpid(), signal.SIGKILL)

Catalog.set_alias = die
rollback(load_settings(sys.argv[1], environ={}), sys.argv[2], lock_ttl=2.0)
"""


def test_kill_between_pointer_and_alias_is_repaired_by_status(
    workspace: Settings, transactions: Path
) -> None:
    from nbfeatures.online.store import FamilyLayout, OnlineStore
    from nbfeatures.promotion.bookkeeping import KeyspaceAges
    from nbfeatures.promotion.lock import PromotionLock
    from nbfeatures.promotion.switch import flip_together

    name = f"split_{uuid.uuid4().hex[:8]}"
    catalog = Catalog.from_settings(workspace)
    v1 = catalog.register(family(name, SQL_V1, transactions)).version
    catalog.register(family(name, SQL_V2, transactions))
    store = OnlineStore.from_settings(workspace)
    try:
        for number in (1, 2):
            store.write_layout(FamilyLayout.of(v1.family, number))
        flip_together(store, catalog, name, 1, None)
        flip_together(store, catalog, name, 2, 1)
        env = {**os.environ, "NBF_WORKSPACE": str(workspace.workspace)}
        child = subprocess.run(
            [sys.executable, "-c", KILLED_BETWEEN_FLIP_AND_ALIAS, str(workspace.workspace), name],
            env=env,
            timeout=300,
        )
        assert child.returncode == -signal.SIGKILL
        assert store.live_version(name) == 1  # the pointer moved back to v1 ...
        assert Catalog.from_settings(workspace).get(name, alias="production").version == 2

        # status leaves a family whose lock is held alone (its holder may be mid-flip):
        # wait for the dead holder's lock to expire (2 s), a readiness poll.
        lock = PromotionLock(store.client, store.prefix, name, 1)
        deadline = time.monotonic() + 60
        while lock.holder() is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        status = subprocess.run(
            [sys.executable, "-m", "nbfeatures.cli", "--workspace", str(workspace.workspace),
             "status"],
            capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
        # Families of other tests in this workspace, whose keys they deleted, are reported
        # as production data lost (exit 1); this one is not.
        lost = [line for line in status.stdout.splitlines() if "(data lost?)" in line]
        assert status.returncode == (1 if lost else 0), status.stdout + status.stderr
        assert not [line for line in lost if line.startswith(f"{name}:")]
        assert f"repaired {name}: production alias moved from v2 to v1" in status.stdout
        assert Catalog.from_settings(workspace).get(name, alias="production").version == 1
        assert "retired" in KeyspaceAges(store.client, store.prefix, name).all()[2]
        again = subprocess.run(
            [sys.executable, "-m", "nbfeatures.cli", "--workspace", str(workspace.workspace),
             "status"],
            capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
        assert "repaired" not in again.stdout and f"{name}" in again.stdout
    finally:
        forget_family(store, name, (1, 2))
