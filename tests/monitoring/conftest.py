"""Fixtures of the monitoring tests: a redis-server of their own for the session, and
workspaces (SQLite MLflow catalog, Parquet offline store) per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from servers import RedisServer, redis_server  # noqa: F401  (the session fixture)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from nbfeatures.config import Settings, load_settings


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:  # noqa: F811
    with redis_server.client() as client:
        yield client


def make_workspace(root: Path, redis_url: str | None = None, monitoring: str = "") -> Settings:
    """A workspace of its own: nbfeatures.yaml with an owner, a Redis and monitoring settings."""
    root.mkdir(parents=True, exist_ok=True)
    text = "owner: tests\nspark_memory: 1g\n"
    if redis_url:
        text += f"redis_url: {redis_url}\n"
    (root / "nbfeatures.yaml").write_text(text + monitoring)
    return load_settings(root, environ={})


@pytest.fixture
def workspace(tmp_path: Path) -> Settings:
    return make_workspace(tmp_path / "ws")
