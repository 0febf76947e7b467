"""The catalog routes of the panel's API on a real Jupyter server and a real MLflow catalog:
list and search, a family's detail (versions, definition, changes, lineage), deprecation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from panel_api import Fetch, api
from promotion.conftest import SQL_V1, SQL_V2, family

from nbfeatures.config import Settings

pytestmark = pytest.mark.integration

NAME = "panel_spend"
OTHER = "panel_risk"


@pytest.fixture(scope="module")
def registered(spark: Any, workspace: Settings, transactions: Path) -> dict[str, Any]:
    """Two versions of one family (the SQL changed), one version of another, and a
    training run that used v1."""
    import mlflow

    from nbfeatures.catalog import Catalog
    from nbfeatures.lineage import uses_tag

    catalog = Catalog.from_settings(workspace)
    v1 = catalog.register(family(NAME, SQL_V1, transactions)).version
    v2 = catalog.register(family(NAME, SQL_V2, transactions)).version
    other = family(OTHER, SQL_V1, transactions)
    catalog.register(other.with_metadata(owner="risk-team", description="merchant risk"))
    client = mlflow.MlflowClient(tracking_uri=workspace.catalog)
    experiment = client.create_experiment("churn-training")
    run = client.create_run(experiment, run_name="churn-gbm", tags={uses_tag(NAME, 1): "true"})
    client.set_terminated(run.info.run_id)
    return {"v1": v1, "v2": v2, "run_id": run.info.run_id}


async def test_the_list_has_every_family_with_its_badges(
    jp_fetch: Fetch, registered: dict[str, Any]
) -> None:
    status, reply = await api(jp_fetch, "families")
    assert status == 200, reply
    families = {f["name"]: f for f in reply["families"]}
    assert sorted(families) == [OTHER, NAME]
    spend = families[NAME]
    assert (spend["latest_version"], spend["production_version"]) == (2, None)
    assert (spend["owner"], spend["status"]) == ("tests", "draft")
    assert spend["features"] == ["amount", "amount32", "merchant", "cents"]
    # Nothing is live, so the online store has no newest value to judge; no reports yet.
    assert spend["freshness"] == {
        "sla_seconds": None, "newest_event_time": None, "age_seconds": None, "status": None
    }  # fmt: skip
    assert spend["report_status"] is None
    assert families[OTHER]["owner"] == "risk-team"


async def test_search_matches_name_description_and_features(
    jp_fetch: Fetch, registered: dict[str, Any]
) -> None:
    by_description = await api(jp_fetch, "families", params={"q": "Merchant RISK"})
    assert [f["name"] for f in by_description[1]["families"]] == [OTHER]
    by_feature = await api(jp_fetch, "families", params={"q": "cents"})
    assert [f["name"] for f in by_feature[1]["families"]] == [OTHER, NAME]
    by_owner = await api(jp_fetch, "families", params={"owner": "risk-team"})
    assert [f["name"] for f in by_owner[1]["families"]] == [OTHER]
    nothing = await api(jp_fetch, "families", params={"q": "no such thing"})
    assert nothing == (200, {"families": []})


async def test_the_detail_has_versions_definitions_changes_and_lineage(
    jp_fetch: Fetch, registered: dict[str, Any]
) -> None:
    status, detail = await api(jp_fetch, "families", NAME)
    assert status == 200, detail
    assert (detail["name"], detail["owner"], detail["production_version"]) == (NAME, "tests", None)
    v1, v2 = detail["versions"]
    assert (v1["version"], v2["version"]) == (1, 2)
    assert v2["hash"] == registered["v2"].hash and v1["hash"] != v2["hash"]
    assert v2["language"] == "sql" and v2["transformation"] == SQL_V2
    assert v2["definition"]["transformation"] == {"kind": "sql", "text": SQL_V2}
    assert v2["status"] == "draft" and v2["deprecation"] is None
    assert dt.datetime.fromisoformat(v2["created_at"]).tzinfo is not None

    [change] = detail["changes"]
    assert (change["from"], change["to"]) == (1, 2)
    diff = change["diff"].splitlines()
    assert diff[:2] == [f"--- {NAME}@v1/definition.yaml", f"+++ {NAME}@v2/definition.yaml"]
    # The SQL is a YAML block: its lines are diffed as lines, four spaces in.
    assert f"-    {SQL_V1}" in diff and f"+    {SQL_V2}" in diff
    assert f"+hash: {registered['v2'].hash}" in diff
    assert change["summary"] == ["transformation changed (sql)"]

    lineage = detail["lineage"]
    assert lineage["version"] == 2  # nothing in production: the latest
    assert [s["name"] for s in lineage["sources"]] == ["transactions"]
    [run] = lineage["runs"]
    assert run["run_id"] == registered["run_id"]
    assert (run["name"], run["experiment"], run["version"]) == ("churn-gbm", "churn-training", 1)
    assert detail["reports"] == []


async def test_an_unknown_family_is_404_naming_it(
    jp_fetch: Fetch, registered: dict[str, Any]
) -> None:
    status, reply = await api(jp_fetch, "families", "no_such_family")
    assert status == 404
    assert reply == {"message": "feature family no_such_family not found"}
    status, reply = await api(jp_fetch, "families", "no_such_family", "promote", method="POST")
    assert status == 404 and "no_such_family" in reply["message"]


async def test_deprecate_records_reason_replacement_and_sunset(
    jp_fetch: Fetch, registered: dict[str, Any]
) -> None:
    body = {"reason": "merchant risk moved", "replacement": NAME, "sunset": "2027-01-31"}
    status, detail = await api(jp_fetch, "families", OTHER, "deprecate", method="POST", body=body)
    assert status == 200, detail
    expected = {"reason": "merchant risk moved", "replacement": NAME, "sunset": "2027-01-31"}
    assert detail["status"] == "deprecated" and detail["deprecation"] == expected
    assert [v["status"] for v in detail["versions"]] == ["deprecated"]
    listed = {f["name"]: f for f in (await api(jp_fetch, "families"))[1]["families"]}
    assert listed[OTHER]["status"] == "deprecated" and listed[NAME]["status"] == "draft"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "old", "sunset": "31/01/2027"}, "sunset"),
        ({"reason": "old", "sunset": "2027-02-30"}, "sunset"),
        ({"reason": "  "}, "reason"),
        ({"sunset": "2027-01-31"}, "reason"),
        ({"reason": "old", "replacement": 3}, "replacement"),
    ],
)
async def test_bad_deprecation_input_is_400_naming_the_field_and_changes_nothing(
    jp_fetch: Fetch, registered: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    status, reply = await api(jp_fetch, "families", NAME, "deprecate", method="POST", body=body)
    assert status == 400
    assert reply["message"].startswith(f"{field}: "), reply
    assert (await api(jp_fetch, "families", NAME))[1]["status"] == "draft"


async def test_a_body_that_is_not_a_json_object_is_400(
    jp_fetch: Fetch, registered: dict[str, Any]
) -> None:
    response = await jp_fetch(
        "nbfeatures", "api", "families", NAME, "deprecate",
        method="POST", body="reason=old", raise_error=False,
    )  # fmt: skip
    assert response.code == 400 and b"body: not JSON" in response.body
