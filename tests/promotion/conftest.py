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

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from nbfeatures.config import Settings, load_settings
from nbfeatures.definitions import (
    Entity,
    Feature,
    FeatureFamily,
    FeatureType,
    Source,
    Transformation,
)

SQL_V1 = (
    "SELECT user_id, ts, amount, CAST(amount AS FLOAT) AS amount32, merchant, "
    "CAST(amount * 100 AS BIGINT) AS cents FROM transactions"
)
SQL_V2 = SQL_V1.replace("AS cents", "AS cents").replace("merchant,", "upper(merchant) AS merchant,")
SQL_V3 = SQL_V1.replace("amount * 100", "amount * 1000")
FEATURES = (
    Feature("amount", FeatureType.FLOAT64),
    Feature("amount32", FeatureType.FLOAT32),
    Feature("merchant", FeatureType.STRING),
    Feature("cents", FeatureType.INT64),
)


def make_settings(root: Path, redis_url: str) -> Settings:
    """A workspace whose nbfeatures.yaml points at ``redis_url``; the kernel reads it too."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbfeatures.yaml").write_text(
        f"owner: tests\nredis_url: {redis_url}\nspark_memory: 1g\n"
    )
    return load_settings(root, environ={})


def family(name: str, sql: str, data: Path) -> FeatureFamily:
    return FeatureFamily(
        name=name,
        entity=Entity("user", "user_id"),
        timestamp="ts",
        features=FEATURES,
        transformation=Transformation("sql", sql),
        sources=(Source.infer("transactions", str(data), "ts"),),
        owner="tests",
    )


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
