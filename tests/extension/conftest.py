"""Fixtures of the Features panel's browser tests: a workspace with a real catalog, a real
JupyterLab started on it, and Debian's Chromium driven by Playwright.

- ``panel_workspace``: a workspace (SQLite MLflow catalog, demo transactions, this run's own
  redis-server) with two families, one of them in two versions, and one monitoring report
  saved through the report store.
- ``jupyter_lab``: ``python -m jupyterlab`` on that workspace with the nbfeatures server
  extension and this checkout's built panel; quiet (no news, no update check, read-only
  extension manager) and stopped with everything it started.
- ``browser``: Debian's Chromium (installed with apt when missing and running as root; the
  tests skip, saying why, otherwise), never a browser downloaded by Playwright.
- ``artifacts``: a folder for screenshots, printed at the start of the run.

Everything is session-scoped: JupyterLab and Chromium start once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from servers import RedisServer, free_port, redis_server, stop_group, wait_for_http  # noqa: F401

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

REPO = Path(__file__).resolve().parents[2]
BUILT_PANEL = REPO / "nbfeatures" / "labextension"
PANEL_PACKAGE = "nbfeatures-labextension"
CHROMIUM = Path("/usr/bin/chromium")
# Without these, Chromium keeps calling Google's hosts, which this kind of network refuses.
CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SPEND_V1 = "SELECT user_id, ts, amount, merchant FROM transactions"
SPEND_V2 = (
    "SELECT user_id, ts, amount * 100 AS amount, upper(merchant) AS merchant FROM transactions"
)
MERCHANT_SQL = "SELECT user_id, ts, length(merchant) AS merchant_len FROM transactions"


@dataclass(frozen=True)
class PanelWorkspace:
    settings: Settings
    families: tuple[str, ...]
    report_id: str


@dataclass(frozen=True)
class LabServer:
    url: str
    token: str
    log: Path

    def lab_url(self) -> str:
        return f"{self.url}lab?token={self.token}"


def _spend_family(sql: str, data: Path) -> FeatureFamily:
    return FeatureFamily(
        name="user_spend",
        entity=Entity("user", "user_id"),
        timestamp="ts",
        features=(Feature("amount", FeatureType.FLOAT64), Feature("merchant", FeatureType.STRING)),
        transformation=Transformation("sql", sql),
        sources=(Source.infer("transactions", str(data), "ts"),),
        owner="tests",
        description="What each user spends, and where",
        tags=("payments",),
    )


def _merchant_family(data: Path) -> FeatureFamily:
    return FeatureFamily(
        name="merchant_names",
        entity=Entity("user", "user_id"),
        timestamp="ts",
        features=(Feature("merchant_len", FeatureType.INT64),),
        transformation=Transformation("sql", MERCHANT_SQL),
        sources=(Source.infer("transactions", str(data), "ts"),),
        owner="tests",
        description="Length of the merchant's name",
    )


def _evidently_page(path: Path) -> Path:
    """A real Evidently drift page (its plots are drawn by its own scripts in the browser)."""
    import numpy as np
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    rng = np.random.default_rng(15)
    reference = pd.DataFrame({"amount": rng.normal(20.0, 5.0, 300)})
    current = pd.DataFrame({"amount": rng.normal(26.0, 5.0, 300)})
    Report([DataDriftPreset()]).run(current, reference).save_html(str(path))
    return path


def _save_report(settings: Settings, folder: Path) -> str:
    """One drift report of user_spend v1 through the report store; its id."""
    from nbfeatures.monitoring.store import ReportStore
    from nbfeatures.monitoring.summary import FeatureCheck, ReportResult, ReportSummary, Status

    now = dt.datetime.now(dt.UTC)
    summary = ReportSummary(
        kind="drift",
        family="user_spend",
        version=1,
        status=Status.WARN,
        created_at=now,
        window_start=now - dt.timedelta(days=1),
        window_end=now,
        rows=300,
        rows_total=300,
        checks=(FeatureCheck("amount", Status.WARN, "psi", 0.31, 0.2),),
    )
    page = _evidently_page(folder / "drift.html")
    record = ReportStore.from_settings(settings).save(ReportResult(summary, page))
    return record.id


@pytest.fixture(scope="session")
def panel_workspace(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,  # noqa: F811  (the fixture imported above, by pytest's name)
    spark: object,  # registration checks SQL bodies with Spark's parser: the session's Spark
) -> PanelWorkspace:
    from nbfeatures.catalog import Catalog
    from nbfeatures.demo_data import write_transactions

    root = tmp_path_factory.mktemp("panel-ws")
    # The kernel of a promotion reads the same file, so it finds this run's Redis.
    (root / "nbfeatures.yaml").write_text(
        f"owner: tests\nredis_url: {redis_server.url}\nspark_memory: 1g\n"
    )
    settings = load_settings(root, environ={})
    data = write_transactions(root / "data" / "transactions.parquet", rows=300, users=15, days=5)
    catalog = Catalog.from_settings(settings)
    for family in (_spend_family(SPEND_V1, data), _spend_family(SPEND_V2, data),
                   _merchant_family(data)):  # fmt: skip
        catalog.register(family)
    report_id = _save_report(settings, tmp_path_factory.mktemp("report-page"))
    return PanelWorkspace(settings, ("user_spend", "merchant_names"), report_id)


def _built_panel() -> Path:
    """This checkout's built extension; built here when missing (``make setup`` builds it)."""
    if not (BUILT_PANEL / "package.json").exists():
        jlpm = shutil.which("jlpm")
        if jlpm is None:
            pytest.fail("the panel is not built and jlpm is missing: run `make setup`")
        for script in (["install"], ["build"]):
            subprocess.run([jlpm, *script], cwd=REPO / "extension", check=True)
    return BUILT_PANEL


@pytest.fixture(scope="session")
def jupyter_lab(
    panel_workspace: PanelWorkspace, tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[LabServer]:
    home = tmp_path_factory.mktemp("lab")
    # This checkout's build under the package's name, found before any installed copy.
    extensions = home / "labextensions"
    extensions.mkdir()
    (extensions / PANEL_PACKAGE).symlink_to(_built_panel(), target_is_directory=True)
    # The news notification would cover part of the screenshots and call the network.
    user_settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    user_settings.mkdir(parents=True)
    (user_settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    config = home / "jupyter_server_config.json"
    config.write_text(
        json.dumps(
            {
                "ServerApp": {"jpserver_extensions": {"nbfeatures.jupyter": True}},
                "LabApp": {"extra_labextensions_path": [str(extensions)]},
            }
        )
    )
    port = free_port()
    token = secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--ServerApp.token={token}", f"--ServerApp.root_dir={panel_workspace.settings.workspace}",
        "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--config={config}",
    ]  # fmt: skip
    if os.geteuid() == 0:
        command.append("--allow-root")
    env = {
        **os.environ,
        "NBF_WORKSPACE": str(panel_workspace.settings.workspace),
        # The server and the promotion's kernel import this checkout's nbfeatures.
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    log = artifacts / "lab.log"  # kept with the screenshots: it explains a failed step
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = LabServer(f"http://127.0.0.1:{port}/", token, log)
    try:
        wait_for_http(f"{server.url}api/status?token={token}", process, log, limit=120)
        yield server
    finally:
        stop_group(process)


def _ensure_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(
            "Debian's Chromium is not installed (/usr/bin/chromium) and these tests can only "
            "install it as root with apt-get: run `apt-get install -y chromium`"
        )
    quiet = {"stdout": subprocess.DEVNULL, "check": True}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], env=env, **quiet)  # type: ignore[call-overload]
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
        env=env,
        **quiet,  # type: ignore[call-overload]
    )
    return CHROMIUM


# Module scope, not session: sync Playwright keeps its asyncio loop marked running until it
# stops, and later folders (pytest-jupyter's handler tests) need to run a loop of their own.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium under Playwright (Playwright's own browsers are never used)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is missing: pip install -e '.[dev]'"
    )
    executable = _ensure_chromium()
    flags = [*CHROMIUM_FLAGS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=flags
        )
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so a fixture can tell that its test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def artifacts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: $NBF_TEST_ARTIFACTS, else a temporary folder; printed."""
    chosen = os.environ.get("NBF_TEST_ARTIFACTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"panel screenshots: {folder}")
    return folder
