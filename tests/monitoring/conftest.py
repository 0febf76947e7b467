"""Fixtures of the monitoring tests: a redis-server of their own for the session, workspaces
(SQLite MLflow catalog, Parquet offline store) per test, the report store's fixtures and the
runner's promoted workspace. The GCS emulator is the engine tests' (started once)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from servers import RedisServer, redis_server  # noqa: F401  (the session fixture)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# The engine tests' fixture module starts the GCS emulator and the Spark Connect server at
# most once per run; import that same module (by the same name), never a second copy of it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

# The catalog tests' MLflow tracking server on PostgreSQL (one test runs the store on it).
from catalog.conftest import server_backend  # noqa: F401
from drift_fixtures import drift_workspace, make_workspace  # noqa: F401
from offline_fixtures import connect_spark, gcs_root  # noqa: F401
from report_fixtures import make_result, receiver, report_workspace  # noqa: F401
from runner_fixtures import promoted_workspace  # noqa: F401
from skew_fixtures import skew_world  # noqa: F401  (the skew tests' promoted family)

from nbfeatures.config import Settings


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:  # noqa: F811
    with redis_server.client() as client:
        yield client


@pytest.fixture
def workspace(tmp_path: Path) -> Settings:
    return make_workspace(tmp_path / "ws")
