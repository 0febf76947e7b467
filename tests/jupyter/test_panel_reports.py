"""The reports routes of the panel's API on a real report store (MLflow runs of the
monitoring experiment). Reports are saved from ``ReportResult`` values built here, the store's
input contract, so neither Evidently nor served logs are needed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.serverapp import ServerApp
from panel_api import Fetch, api, browser_session
from promotion.conftest import SQL_V1, family

from nbfeatures.config import Settings
from nbfeatures.monitoring.summary import FeatureCheck, ReportResult, ReportSummary, Status

pytestmark = pytest.mark.integration

NAME = "panel_watched"
OTHER = "panel_unwatched"
PAGE = "<html><body><h1>{kind} of {family}</h1><script>var shown = 1;</script></body></html>"


def _result(folder: Path, kind: str, status: Status, day: int) -> ReportResult:
    end = dt.datetime(2026, 11, day, tzinfo=dt.UTC)
    summary = ReportSummary(
        kind=kind, family=NAME, version=1, status=status, created_at=end,
        window_start=end - dt.timedelta(days=1), window_end=end, rows=400, rows_total=400,
        checks=(FeatureCheck("amount", status, "psi", 0.3 if status is Status.ALERT else 0.01,
                             0.2),),
    )  # fmt: skip
    page = folder / f"{kind}-{day}.html"
    page.write_text(PAGE.format(kind=kind, family=NAME))
    return ReportResult(summary, page)


@pytest.fixture(scope="module")
def saved(
    spark: Any, workspace: Settings, transactions: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Three reports on one family, saved oldest first: drift ok, skew warn, drift alert.
    The family's latest drift is thus in alert, its latest skew in warn."""
    from nbfeatures.catalog import Catalog
    from nbfeatures.monitoring.store import ReportStore

    catalog = Catalog.from_settings(workspace)
    catalog.register(family(NAME, SQL_V1, transactions))
    catalog.register(family(OTHER, SQL_V1, transactions))
    store = ReportStore.from_settings(workspace)
    folder = tmp_path_factory.mktemp("report-pages")
    ids = {}
    for label, kind, status, day in (
        ("old_drift", "drift", Status.OK, 1),
        ("skew", "skew", Status.WARN, 2),
        ("drift", "drift", Status.ALERT, 3),
    ):
        ids[label] = store.save(_result(folder, kind, status, day)).id
    return ids


async def test_reports_are_listed_newest_first_and_filtered(
    jp_fetch: Fetch, saved: dict[str, str]
) -> None:
    status, reply = await api(jp_fetch, "reports", params={"family": NAME})
    assert status == 200, reply
    assert [r["id"] for r in reply["reports"]] == [
        saved["drift"],
        saved["skew"],
        saved["old_drift"],
    ]
    drift = reply["reports"][0]
    assert (drift["kind"], drift["status"], drift["version"], drift["owner"]) == (
        "drift", "alert", 1, "tests"
    )  # fmt: skip
    assert drift["summary"]["checks"][0]["feature"] == "amount" and drift["review"] is None

    kind = await api(jp_fetch, "reports", params={"family": NAME, "kind": "skew"})
    assert [r["id"] for r in kind[1]["reports"]] == [saved["skew"]]
    ok = await api(jp_fetch, "reports", params={"status": "ok"})
    assert saved["old_drift"] in [r["id"] for r in ok[1]["reports"]]
    assert all(r["status"] == "ok" for r in ok[1]["reports"])
    assert await api(jp_fetch, "reports", params={"family": OTHER}) == (200, {"reports": []})


@pytest.mark.parametrize(("params", "field"), [({"status": "bad"}, "status"),
                                               ({"kind": "vibes"}, "kind")])  # fmt: skip
async def test_a_bad_filter_is_400_naming_it(
    jp_fetch: Fetch, saved: dict[str, str], params: dict[str, str], field: str
) -> None:
    status, reply = await api(jp_fetch, "reports", params=params)
    assert status == 400 and reply["message"].startswith(f"{field}: "), reply


async def test_the_family_list_and_detail_show_the_reports(
    jp_fetch: Fetch, saved: dict[str, str]
) -> None:
    listed = {f["name"]: f for f in (await api(jp_fetch, "families"))[1]["families"]}
    # The worst of the latest per kind: drift alert (the older drift ok no longer counts).
    assert listed[NAME]["report_status"] == "alert"
    assert listed[OTHER]["report_status"] is None
    detail = (await api(jp_fetch, "families", NAME))[1]
    assert [r["id"] for r in detail["reports"]] == [
        saved["drift"],
        saved["skew"],
        saved["old_drift"],
    ]


async def test_one_report_and_its_page(jp_fetch: Fetch, saved: dict[str, str]) -> None:
    status, record = await api(jp_fetch, "reports", saved["skew"])
    assert status == 200 and (record["id"], record["kind"], record["status"]) == (
        saved["skew"], "skew", "warn"
    )  # fmt: skip
    page = await jp_fetch("nbfeatures", "api", "reports", saved["skew"], "html")
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.body.decode() == PAGE.format(kind="skew", family=NAME)
    # The page's scripts run, but sandboxed into an origin of their own.
    assert "sandbox allow-scripts" in page.headers["Content-Security-Policy"]


async def test_an_unknown_report_is_404_naming_it(jp_fetch: Fetch, saved: dict[str, str]) -> None:
    status, reply = await api(jp_fetch, "reports", "0" * 32)
    assert status == 404 and f"report '{'0' * 32}' not found" in reply["message"]
    page = await jp_fetch("nbfeatures", "api", "reports", "0" * 32, "html", raise_error=False)
    assert page.code == 404 and b"not found" in page.body


async def test_marking_reviewed_records_the_jupyter_user(
    jp_fetch: Fetch, jp_serverapp: ServerApp, saved: dict[str, str]
) -> None:
    # A browser's session: one user for every call (each token-only call is a new one).
    session = await browser_session(jp_fetch, jp_serverapp)
    me = json.loads((await jp_fetch("api", "me", headers=session.headers())).body)["identity"]
    path = ("reports", saved["drift"], "review")
    status, record = await api(jp_fetch, *path, method="POST", body={"comment": "a bad day"},
                               headers=session.headers(xsrf=True))  # fmt: skip
    assert status == 200, record
    review = record["review"]
    assert (review["reviewer"], review["comment"]) == (me["name"], "a bad day")
    assert (await api(jp_fetch, "reports", saved["drift"]))[1]["review"] == review
    bad, reply = await api(jp_fetch, *path, method="POST", body={"comment": 7})
    assert bad == 400 and reply["message"] == "comment: must be text"
