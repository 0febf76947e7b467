"""The promotion commands of the ``nbfeatures`` CLI, each run as a real subprocess.

One full promotion (``nbfeatures promote``: papermill, a kernel with Spark, Redis, MLflow),
then an incremental refresh, ``status`` and ``rollback`` of that live family. To have a
version to roll back to without a second full promotion, v1 is made live first by flipping
the pointer and the ``production`` alias directly (its layout written, no values).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nbfeatures.config import Settings

from .conftest import SQL_V1, SQL_V2, family

pytestmark = pytest.mark.integration

NAME = "promo_cli"


def nbfeatures(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``nbfeatures --workspace WS ARGS...`` in a fresh interpreter; never raises on exit code."""
    return subprocess.run(
        [sys.executable, "-m", "nbfeatures.cli", "--workspace", str(settings.workspace), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "NBF_WORKSPACE": str(settings.workspace)},
    )


def _store(settings: Settings) -> Any:
    from nbfeatures.online.store import OnlineStore

    return OnlineStore.from_settings(settings)


def _production(settings: Settings) -> int | None:
    from nbfeatures.catalog import Catalog

    summary = {s.name: s for s in Catalog.from_settings(settings).list()}.get(NAME)
    return summary.production_version if summary else None


@pytest.fixture(scope="module")
def live_v1(workspace: Settings, transactions: Path) -> Any:
    """v1 and v2 registered; v1 live (layout only), so rollback has a target later."""
    from nbfeatures.catalog import Catalog
    from nbfeatures.online.layout import FamilyLayout
    from nbfeatures.promotion.switch import flip_together

    catalog = Catalog.from_settings(workspace)
    v1 = catalog.register(family(NAME, SQL_V1, transactions)).version
    catalog.register(family(NAME, SQL_V2, transactions))
    store = _store(workspace)
    store.write_layout(FamilyLayout.of(v1.family, 1))
    yield flip_together(store, catalog, NAME, 1, None)
    for version in (2, 1):
        if store.live_version(NAME) != version:
            store.delete_version(NAME, version)
    store.client.delete(store.keys.live(NAME), store.keys.history(NAME))


def test_rollback_without_a_previous_version_fails_with_one_line(workspace: Settings) -> None:
    done = nbfeatures(workspace, "rollback", "never_promoted")
    assert done.returncode == 2
    assert done.stderr.startswith("nbfeatures: ") and "no live version" in done.stderr
    assert "Traceback" not in done.stderr


def test_materialize_needs_names_or_all(workspace: Settings) -> None:
    done = nbfeatures(workspace, "materialize", "--incremental")
    assert done.returncode == 2
    assert "name the families to refresh, or pass --all" in done.stderr


def test_promote_from_the_cli_prints_each_step_and_goes_live(
    workspace: Settings, live_v1: Any
) -> None:
    assert live_v1 is None and _store(workspace).live_version(NAME) == 1

    promoted = nbfeatures(workspace, "promote", NAME, "--version", "2")
    assert promoted.returncode == 0, promoted.stderr[-3000:]
    steps = re.findall(r"^step (\d)/6 (\w+): (started|[\d.]+ s)$", promoted.stderr, re.M)
    started = [name for _, name, what in steps if what == "started"]
    finished = [name for _, name, what in steps if what != "started"]
    assert len(started) == 6 and started == finished, promoted.stderr
    assert started[-1] == "record"
    assert re.search(
        rf"^{NAME} v2 is live \(was v1\) after [\d.]+ s; notebook \S+\.ipynb; MLflow run \w+$",
        promoted.stdout,
        re.M,
    ), promoted.stdout
    store = _store(workspace)
    assert store.live_version(NAME) == 2 and _production(workspace) == 2
    assert store.count_keys(NAME, 2) == 20

    status = nbfeatures(workspace, "status")
    assert status.returncode == 0, status.stderr
    assert f"online store: {workspace.redis_url}" in status.stdout
    assert re.search(rf"^{NAME}\s+live v2$", status.stdout, re.M), status.stdout


def test_incremental_refresh_from_the_cli(workspace: Settings, live_v1: Any) -> None:
    assert _store(workspace).live_version(NAME) == 2
    refreshed = nbfeatures(workspace, "materialize", "--incremental", NAME)
    assert refreshed.returncode == 0, refreshed.stderr[-3000:]
    assert re.search(
        rf"^{NAME} v2: \d+ entities refreshed in [\d.]+ s; watermark \S+$", refreshed.stdout, re.M
    ), refreshed.stdout


def test_rollback_from_the_cli_restores_the_previous_version(
    workspace: Settings, live_v1: Any
) -> None:
    store = _store(workspace)
    assert store.live_version(NAME) == 2
    rolled = nbfeatures(workspace, "rollback", NAME)
    assert rolled.returncode == 0, rolled.stderr
    assert rolled.stdout.strip() == f"{NAME} rolled back: v1 is live"
    assert store.live_version(NAME) == 1 and _production(workspace) == 1
    after = nbfeatures(workspace, "status")
    assert re.search(rf"^{NAME}\s+live v1$", after.stdout, re.M), after.stdout
