"""The `nbfeatures` command over a real SQLite-backed MLflow catalog."""

from __future__ import annotations

import subprocess
import sys
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
