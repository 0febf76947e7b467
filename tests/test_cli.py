"""The `nbfeatures` command over a real SQLite-backed MLflow catalog."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbfeatures.cli import run
from nbfeatures.config import load_settings
from nbfeatures.definitions import Entity, Feature, FeatureFamily, Transformation

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nbfeatures.catalog import Catalog

    root = tmp_path_factory.mktemp("cli")
    catalog = Catalog.from_settings(load_settings(root, environ={}))
    catalog.register(
        FeatureFamily(
            name="user_spend",
            entity=Entity("user", "user_id"),
            timestamp="ts",
            features=(Feature("spend", "float64"),),
            transformation=Transformation("sql", "SELECT user_id, ts, amount AS spend FROM tx"),
            owner="ana",
            tags=("payments",),
        )
    )
    return root


def test_list_show_search(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--workspace", str(workspace), "list"]) == 0
    assert "user_spend" in capsys.readouterr().out
    run(["--workspace", str(workspace), "show", "user_spend"])
    shown = capsys.readouterr().out
    assert "v1" in shown and "SELECT user_id, ts, amount AS spend FROM tx" in shown
    run(["--workspace", str(workspace), "search", "--tag", "payments"])
    assert "user_spend" in capsys.readouterr().out
    run(["--workspace", str(workspace), "search", "--owner", "nobody"])
    assert "no feature families" in capsys.readouterr().out


def test_set_and_deprecate(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(["--workspace", str(workspace), "set", "user_spend", "--owner", "bo"])
    assert "owner bo" in capsys.readouterr().out
    run(
        [
            "--workspace",
            str(workspace),
            "deprecate",
            "user_spend",
            "--reason",
            "old",
            "--sunset",
            "2030-01-01",
        ]
    )
    run(["--workspace", str(workspace), "list"])
    listed = capsys.readouterr().out
    assert "deprecated" in listed and "bo" in listed


def test_errors_are_one_line_and_exit_2(workspace: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nbfeatures.cli", "--workspace", str(workspace), "show", "nope"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "nbfeatures: feature family nope not found"


def test_serve_processes_flag_is_checked(workspace: Path) -> None:
    # The flag reaches the server's settings: a count below one is refused before anything
    # starts, naming the setting.
    done = subprocess.run(
        [sys.executable, "-m", "nbfeatures.cli", "--workspace", str(workspace), "serve",
         "--port", "0", "--processes", "0"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert "serve.processes" in done.stderr
    assert "must be positive" in done.stderr


@pytest.fixture
def own_redis() -> Iterator[str]:
    """A redis-server of the test's own (it is flushed), as the serving tests start one."""
    from servers import RedisServer

    server = RedisServer()
    server.start()
    yield server.url
    server.stop()


def test_status_names_production_data_the_online_store_lost(
    tmp_path: Path, own_redis: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import redis

    from nbfeatures.catalog import Catalog
    from nbfeatures.online import FamilyLayout, OnlineStore

    (tmp_path / "nbfeatures.yaml").write_text(f"redis_url: {own_redis}\n")
    settings = load_settings(tmp_path, environ={})
    catalog = Catalog.from_settings(settings)
    orders = FeatureFamily(
        name="orders",
        entity=Entity("user", "user_id"),
        timestamp="ts",
        features=(Feature("total", "float64"),),
        transformation=Transformation("sql", "SELECT user_id, ts, total FROM orders"),
        owner="ana",
    )
    catalog.register(orders)
    catalog.set_alias("orders", "production", 1)
    store = OnlineStore.from_url(own_redis)
    store.write_layout(FamilyLayout.of(orders, 1))
    store.flip("orders", 1, None)
    status = ["--workspace", str(tmp_path), "status"]

    assert run(status) == 0
    whole = capsys.readouterr().out
    assert "live v1" in whole and "data lost" not in whole

    redis.Redis.from_url(own_redis).flushall()
    assert run(status) == 1
    lost = capsys.readouterr().out
    assert (
        "orders: production v1 in the catalog but not live in the online store (data lost?) "
        "— restore with: nbfeatures promote orders --restore"
    ) in lost

    store.client.set(store.keys.live("orders"), "1")  # a pointer whose version is gone
    assert run(status) == 1
    assert "orders: production v1 is live but its layout is missing" in capsys.readouterr().out
    store.close()


def test_status_without_a_catalog_creates_none(tmp_path: Path, own_redis: str) -> None:
    (tmp_path / "nbfeatures.yaml").write_text(f"redis_url: {own_redis}\n")
    assert run(["--workspace", str(tmp_path), "status"]) == 0
    assert not (tmp_path / ".nbfeatures" / "mlflow.db").exists()
