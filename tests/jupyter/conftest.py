"""Fixtures for the panel's server extension: a real Jupyter server (pytest-jupyter) with
``nbfeatures.jupyter`` enabled, rooted at a real workspace (SQLite MLflow catalog, this run's
own redis-server, demo transactions).

pytest-jupyter's fixtures and hooks are imported here, not listed in ``pytest_plugins`` at
the top: its hooks take over how test functions are called (to run coroutines) and would
otherwise apply to the whole suite. This folder has no ``__init__.py`` on purpose: as a
package it would be named ``jupyter`` and shadow Jupyter's own ``jupyter`` module.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from promotion.conftest import make_settings
from pytest_jupyter.jupyter_server import *  # noqa: F403  (jp_fetch, jp_serverapp, ...)
from servers import RedisServer, redis_server  # noqa: F401  (the session fixture)
from traitlets.config import Config

from nbfeatures.config import Settings

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def workspace(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,  # noqa: F811  (the fixture imported above, by pytest's name)
) -> Settings:
    """One workspace for the folder, which is also the Jupyter server's root: its MLflow
    database is created once (seconds); test modules use distinct family names."""
    return make_settings(tmp_path_factory.mktemp("panel-ws"), redis_server.url)


@pytest.fixture(scope="session")
def transactions(workspace: Settings) -> Path:
    from nbfeatures.demo_data import write_transactions

    return write_transactions(workspace.workspace / "data" / "transactions.parquet",
                              rows=400, users=20, days=10)  # fmt: skip


@pytest.fixture
def jp_root_dir(workspace: Settings) -> Path:
    """The server's root is the workspace, as with ``jupyter lab`` started in it."""
    return workspace.workspace


@pytest.fixture
def jp_server_config() -> Config:
    """The extension enabled, as the wheel's ``jupyter_server_config.d`` file does."""
    return Config({"ServerApp": {"jpserver_extensions": {"nbfeatures.jupyter": True}}})
