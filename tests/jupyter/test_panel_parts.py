"""The extension's parts without a Jupyter server: where settings come from, the freshness
judgement with and without an online store, and where a promotion notebook is opened from."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from promotion.conftest import SQL_V1, family
from servers import free_port

from nbfeatures.config import Settings, load_settings
from nbfeatures.errors import ConfigError
from nbfeatures.jupyter import _jupyter_server_extension_points
from nbfeatures.jupyter.freshness import connect_online, judge
from nbfeatures.jupyter.notebooks import COPIES_FOLDER, openable_path
from nbfeatures.jupyter.panel import Panel, load_panel
from nbfeatures.jupyter.reads import list_families

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_config_enables_the_extension_this_package_names() -> None:
    config = REPO / "jupyter-config" / "jupyter_server_config.d" / "nbfeatures.json"
    enabled = json.loads(config.read_text())["ServerApp"]["jpserver_extensions"]
    assert enabled == {"nbfeatures.jupyter": True}
    assert _jupyter_server_extension_points() == [{"module": "nbfeatures.jupyter"}]


def test_the_workspace_is_nbf_workspace_else_the_server_root(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (elsewhere / "nbfeatures.yaml").write_text("owner: data-team\n")
    named = load_panel(root, environ={"NBF_WORKSPACE": str(elsewhere)})
    assert named.settings is not None and named.settings.workspace == elsewhere.resolve()
    assert named.settings.owner == "data-team" and named.root == root.resolve()
    default = load_panel(root, environ={})
    assert default.settings is not None and default.settings.workspace == root.resolve()


def test_an_unreadable_workspace_is_kept_as_the_error_every_call_reports(tmp_path: Path) -> None:
    (tmp_path / "nbfeatures.yaml").write_text("colour: blue\n")
    panel = load_panel(tmp_path, environ={})
    assert panel.settings is None
    with pytest.raises(ConfigError, match="colour: unknown setting"):
        list_families(panel)


@pytest.mark.parametrize(
    ("age", "status"), [(0.0, "ok"), (3600.0, "ok"), (3601.0, "warn"), (7200.0, "warn"),
                        (7201.0, "alert")],
)  # fmt: skip
def test_freshness_is_ok_within_the_sla_warn_to_twice_it_alert_beyond(
    age: float, status: str
) -> None:
    assert judge(age, 3600) == status


def test_an_embedded_redis_that_is_not_running_is_not_started(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert settings.redis_url is None
    assert connect_online(settings) is None
    assert not (settings.home / "redis").exists()


@pytest.mark.integration
def test_an_unreachable_online_store_leaves_the_badge_numbers_null(
    spark: Any, workspace: Settings, transactions: Path
) -> None:
    from nbfeatures.catalog import Catalog

    name = "panel_offline"
    Catalog.from_settings(workspace).register(
        family(name, SQL_V1, transactions).with_metadata(freshness="1d")
    )
    closed = dataclasses.replace(workspace, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    listed = {f["name"]: f for f in list_families(Panel(workspace.workspace, closed))["families"]}
    assert listed[name]["freshness"] == {
        "sla_seconds": 86_400, "newest_event_time": None, "age_seconds": None, "status": None
    }  # fmt: skip


def _notebook(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    return path


def test_a_visible_notebook_under_the_root_is_opened_where_it_is(tmp_path: Path) -> None:
    notebook = _notebook(tmp_path / "runs" / "promote.ipynb")
    assert openable_path(notebook, tmp_path) == "runs/promote.ipynb"
    assert not (tmp_path / COPIES_FOLDER).exists()


@pytest.mark.parametrize("where", ["hidden", "outside"])
def test_a_hidden_or_outside_notebook_is_copied_under_the_root(tmp_path: Path, where: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    run = "spend-20261203T091500-abc123"
    base = root / ".nbfeatures" if where == "hidden" else tmp_path / "archive"
    notebook = _notebook(base / "promotions" / run / "promote.ipynb")
    path = openable_path(notebook, root)
    assert path == f"{COPIES_FOLDER}/{run}.ipynb"
    assert (root / path).read_text() == notebook.read_text()


def test_a_missing_notebook_has_no_path(tmp_path: Path) -> None:
    assert openable_path(tmp_path / "gone.ipynb", tmp_path) is None
