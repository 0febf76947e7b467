"""Fixtures for the notebook tier: a real IPython shell with the extension loaded, real Spark,
and a real SQLite-backed MLflow catalog in a throwaway workspace."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbfeatures.config import Settings
from nbfeatures.demo_data import write_transactions


@pytest.fixture(scope="session")
def shell() -> Any:
    """One real IPython shell for the whole run, with ``%load_ext nbfeatures`` done."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbfeatures")
    return ip


@pytest.fixture(scope="session")
def transactions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo data set: 400 transactions of 20 users."""
    root = tmp_path_factory.mktemp("demo-data")
    return write_transactions(root / "transactions.parquet", rows=400, users=20, days=10)


@pytest.fixture(scope="module")
def module_settings(
    spark_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """A workspace (and so a catalog) shared by one test module; tests use distinct names.

    Creating a fresh MLflow database costs seconds, so it is not done per test. Registering
    with metadata starts the workspace's embedded Redis; it is stopped when the module ends,
    so no redis-server outlives the tests.
    """
    from nbfeatures.online.embedded import stop_embedded

    root = tmp_path_factory.mktemp("notebook-workspace")
    settings = dataclasses.replace(spark_settings, workspace=root, owner="tests")
    yield settings
    stop_embedded(settings)


@pytest.fixture
def kernel(
    shell: Any, spark: object, module_settings: Settings, transactions: Path
) -> Iterator[Any]:
    """The shell pointed at the module's workspace, with a ``transactions`` source registered."""
    from nbfeatures.notebook import configure

    configure(module_settings)
    shell.run_line_magic("nbf_source", f"transactions {transactions} --timestamp ts")
    yield shell
    configure(None)
