"""Promotion and rollback from the panel: background jobs in the server that run the real
promotion (papermill, a kernel with its own Spark, Redis, MLflow), polled to their end.

v1 is made live first by flipping pointer and alias directly (its layout only), so one full
promotion (v2) suffices, and the rollback has v1 to go back to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from panel_api import Fetch, api, finished_job
from promotion.conftest import SQL_V1, SQL_V2, family, forget_family

from nbfeatures.config import Settings

pytestmark = pytest.mark.integration

NAME = "panel_promo"


def _catalog(settings: Settings) -> Any:
    from nbfeatures.catalog import Catalog

    return Catalog.from_settings(settings)


def _store(settings: Settings) -> Any:
    from nbfeatures.online.store import OnlineStore

    return OnlineStore.from_settings(settings)


@pytest.fixture(scope="module")
def live_v1(spark: Any, workspace: Settings, transactions: Path) -> Iterator[None]:
    """v1 and v2 registered (freshness SLA 365d); v1 live with its layout only."""
    from nbfeatures.online.layout import FamilyLayout
    from nbfeatures.promotion.switch import flip_together

    catalog = _catalog(workspace)
    v1 = catalog.register(family(NAME, SQL_V1, transactions).with_metadata(freshness="365d"))
    catalog.register(family(NAME, SQL_V2, transactions).with_metadata(freshness="365d"))
    store = _store(workspace)
    store.write_layout(FamilyLayout.of(v1.version.family, 1))
    flip_together(store, catalog, NAME, 1, None)
    yield
    forget_family(store, NAME, (1, 2))


async def test_promote_runs_as_a_job_refuses_a_second_and_goes_live(
    jp_fetch: Fetch, workspace: Settings, transactions: Path, live_v1: None
) -> None:
    status, reply = await api(jp_fetch, "families", NAME, "promote", method="POST",
                              body={"version": 2})  # fmt: skip
    assert status == 202, reply
    job = reply["job"]
    assert (job["action"], job["family"], job["version"], job["state"]) == (
        "promote", NAME, 2, "running"
    )  # fmt: skip

    # While it runs, neither another promotion nor a rollback of the family may start.
    again, refused = await api(jp_fetch, "families", NAME, "promote", method="POST", body={})
    assert again == 409, refused
    assert refused["message"].startswith(f"another promotion of {NAME} is running (job ")
    busy, _ = await api(jp_fetch, "families", NAME, "rollback", method="POST")
    assert busy == 409

    done = await finished_job(jp_fetch, job["id"])
    assert done["state"] == "succeeded", done["error"]
    assert done["production_version"] == 2 and done["error"] is None
    assert done["ended_at"] is not None
    started = [line.split(":")[0] for line in done["lines"] if line.endswith(": started")]
    assert started == [f"step {i}/6 {s}" for i, s in enumerate(
        ("load", "compute", "materialize", "verify", "flip", "record"), start=1)]  # fmt: skip
    assert any(line.startswith(f"{NAME} v2 is live (was v1) after ") for line in done["lines"])

    # The executed notebook is copied out of the hidden workspace folder, so Lab opens it.
    notebook = done["notebook"]
    assert notebook.startswith("nbfeatures-promotions/") and notebook.endswith(".ipynb")
    response = await jp_fetch("api", "contents", notebook)
    assert response.code == 200 and b'"type": "notebook"' in response.body

    assert _store(workspace).live_version(NAME) == 2
    listed = {f["name"]: f for f in (await api(jp_fetch, "families"))[1]["families"]}
    assert listed[NAME]["production_version"] == 2 and listed[NAME]["status"] == "production"
    # The badge reads the live keyspace: the demo data ends in January 2024, more than twice
    # the 365-day SLA ago.
    freshness = listed[NAME]["freshness"]
    newest = pd.read_parquet(transactions)["ts"].max().to_pydatetime()
    assert dt.datetime.fromisoformat(freshness["newest_event_time"]) == newest
    assert freshness["sla_seconds"] == 365 * 86_400
    assert freshness["age_seconds"] > 2 * 365 * 86_400 and freshness["status"] == "alert"


async def test_rollback_runs_as_a_job_and_brings_back_v1(
    jp_fetch: Fetch, workspace: Settings, live_v1: None
) -> None:
    assert _store(workspace).live_version(NAME) == 2
    status, reply = await api(jp_fetch, "families", NAME, "rollback", method="POST")
    assert status == 202, reply
    done = await finished_job(jp_fetch, reply["job"]["id"])
    assert done["state"] == "succeeded", done["error"]
    assert (done["action"], done["version"], done["production_version"]) == ("rollback", 1, 1)
    assert done["lines"][-1] == f"{NAME} rolled back: v1 is live"
    assert _store(workspace).live_version(NAME) == 1
    assert _catalog(workspace).production_versions()[NAME] == 1
    detail = (await api(jp_fetch, "families", NAME))[1]
    assert detail["production_version"] == 1
    assert [v["aliases"] for v in detail["versions"]] == [["production"], []]


async def test_a_failed_job_reports_what_failed(
    jp_fetch: Fetch, workspace: Settings, live_v1: None
) -> None:
    # v1 is live again: promoting it is refused by the promotion itself, before any run.
    status, reply = await api(jp_fetch, "families", NAME, "promote", method="POST",
                              body={"version": 1})  # fmt: skip
    assert status == 202
    done = await finished_job(jp_fetch, reply["job"]["id"])
    assert done["state"] == "failed" and done["notebook"] is None
    assert done["error"] == (
        f"promotion of {NAME} v1 failed at step 'load': {NAME} v1 is already live (the online "
        "store's live pointer names it); nothing to promote; production is unchanged"
    )


@pytest.mark.parametrize("version", ["2", 0, True, 1.5])
async def test_a_bad_version_is_400_and_starts_nothing(
    jp_fetch: Fetch, live_v1: None, version: Any
) -> None:
    status, reply = await api(jp_fetch, "families", NAME, "promote", method="POST",
                              body={"version": version})  # fmt: skip
    assert status == 400 and reply["message"].startswith("version: "), reply


async def test_an_unknown_version_or_job_is_404(jp_fetch: Fetch, live_v1: None) -> None:
    status, reply = await api(jp_fetch, "families", NAME, "promote", method="POST",
                              body={"version": 9})  # fmt: skip
    assert status == 404 and reply["message"] == f"feature family {NAME}@v9 not found"
    status, reply = await api(jp_fetch, "jobs", "0123456789ab")
    assert status == 404 and reply["message"] == "no job 0123456789ab in this Jupyter server"
