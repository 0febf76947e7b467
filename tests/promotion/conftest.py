"""Fixtures for promotion: a real redis-server per test run, a workspace with a SQLite MLflow
catalog, demo transactions and registered families.

The Redis server is this run's own (``servers.RedisServer``: a free port, a temporary folder),
so tests can stop and restart it; ``RedisServer.stop(save=True)`` keeps its data for the restart.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from servers import RedisServer, redis_server  # noqa: F401  (the session fixture)
from workspaces import SPEND_FEATURES, SPEND_SQL, spend_family, write_workspace

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from nbfeatures.config import Settings

SQL_V1 = SPEND_SQL
SQL_V2 = SQL_V1.replace("merchant,", "upper(merchant) AS merchant,")
SQL_V3 = SQL_V1.replace("amount * 100", "amount * 1000")
FEATURES = SPEND_FEATURES
# The names the promotion tests use for the shared builders.
make_settings = write_workspace
family = spend_family


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,  # noqa: F811  (the fixture imported above, by pytest's name)
) -> Settings:
    """One workspace (one MLflow database) per test module; tests use distinct names."""
    return make_settings(tmp_path_factory.mktemp("promotion-ws"), redis_server.url)


@pytest.fixture(scope="module")
def transactions(workspace: Settings) -> Path:
    from nbfeatures.demo_data import write_transactions

    return write_transactions(workspace.workspace / "data" / "transactions.parquet",
                              rows=400, users=20, days=10)  # fmt: skip


def forget_family(store: Any, name: str, versions: Iterable[int]) -> None:
    """Remove a test family from Redis: its value keyspaces, then every key naming it.

    Value keys carry a short per-version id, not the family's name, so a pattern alone
    would leave them behind; the store's own ``delete_version`` knows where they are.
    """
    store.client.delete(store.keys.live(name))  # delete_version never removes a live version
    for version in versions:
        store.delete_version(name, version)
    for key in store.client.scan_iter(match=f"*{name}*"):
        store.client.delete(key)
