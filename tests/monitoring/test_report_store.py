"""The report store on a real MLflow (SQLite workspace): save, find, read back, review."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from report_fixtures import PAGE, make_summary, unique_family

from nbfeatures.catalog import Catalog
from nbfeatures.config import Settings
from nbfeatures.definitions import (
    Entity,
    Feature,
    FeatureFamily,
    FeatureType,
    Source,
    Transformation,
    TransformationKind,
)
from nbfeatures.errors import ConfigError, ReportFailed, ReportNotFound, ReviewRefused
from nbfeatures.monitoring.store import (
    TAG_FAMILY,
    TAG_KIND,
    TAG_OWNER,
    TAG_REVIEW_BY,
    TAG_REVIEW_STATE,
    TAG_STATUS,
    TAG_VERSION,
    ReportStore,
)
from nbfeatures.monitoring.summary import ReportResult, ReportSummary, Status

Make = Callable[..., ReportResult]


@pytest.fixture
def store(report_workspace: Settings) -> ReportStore:
    return ReportStore.from_settings(report_workspace)


def _register(settings: Settings, name: str, owner: str) -> int:
    """A family in the workspace's real catalog (a Python body: no Spark needed)."""
    family = FeatureFamily(
        name=name,
        entity=Entity("user", "user_id"),
        timestamp="ts",
        features=(Feature("spend", FeatureType.FLOAT64), Feature("txn_count", FeatureType.INT64)),
        transformation=Transformation(TransformationKind.PYTHON, "def f(df):\n    return df\n"),
        sources=(Source.infer("events", "data/events.parquet", "ts"),),
        owner=owner,
    )
    return Catalog.from_settings(settings).register(family).version.version


def test_a_saved_report_is_one_mlflow_run_with_tags_and_artifacts(
    store: ReportStore, report_workspace: Settings, make_result: Make, tmp_path: Path
) -> None:
    family = unique_family()
    version = _register(report_workspace, family, owner="ana")
    result = make_result(family, "drift", Status.WARN, version=version)
    executed = tmp_path / "executed.ipynb"
    executed.write_text('{"cells": [], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}')

    record = store.save(result, notebook=executed)

    assert (record.kind, record.family, record.version) == ("drift", family, version)
    assert record.status is Status.WARN
    assert record.owner == "ana"  # read from the catalog when the report was saved
    assert record.review is None and record.copy_uri is None
    assert record.summary == result.summary
    # What MLflow itself holds, read with MLflow's own client.
    client = store._connection.client
    run = client.get_run(record.id)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "nbfeatures-monitoring"
    assert experiment.artifact_location == report_workspace.artifacts
    tags = run.data.tags
    assert tags[TAG_KIND] == "drift" and tags[TAG_FAMILY] == family
    assert tags[TAG_VERSION] == str(version) and tags[TAG_STATUS] == "warn"
    assert tags[TAG_OWNER] == "ana" and tags[TAG_REVIEW_STATE] == "pending"
    assert run.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(record.id)} == {
        "report.html",
        "summary.json",
        "report.ipynb",
    }
    assert store.html(record.id).read_text() == PAGE.format(family=family, kind="drift")
    notebook = store.notebook(record.id)
    assert notebook is not None and '"nbformat": 4' in notebook.read_text()
    downloaded = Path(client.download_artifacts(record.id, "summary.json", str(tmp_path)))
    assert ReportSummary.from_json(downloaded.read_text()) == result.summary


def test_owner_given_wins_and_an_unknown_family_saves_without_one(
    store: ReportStore, make_result: Make
) -> None:
    stranger = store.save(make_result(unique_family("unknown")))
    assert stranger.owner is None
    assert store.notebook(stranger.id) is None  # saved without an executed notebook
    chosen = store.save(make_result(unique_family("given")), owner="bo")
    assert store.get(chosen.id).owner == "bo"


def test_list_is_newest_first_and_filters_on_tags(store: ReportStore, make_result: Make) -> None:
    family, other = unique_family(), unique_family()
    first = store.save(make_result(family, "drift", Status.OK))
    second = store.save(make_result(family, "skew", Status.ALERT))
    third = store.save(make_result(family, "drift", Status.ALERT))
    store.save(make_result(other, "drift", Status.ALERT))

    assert [r.id for r in store.list(family=family)] == [third.id, second.id, first.id]
    assert [r.id for r in store.list(family=family, kind="drift")] == [third.id, first.id]
    assert [r.id for r in store.list(family=family, status="alert")] == [third.id, second.id]
    assert [r.id for r in store.list(family=family, kind="drift", status=Status.OK)] == [first.id]
    assert [r.id for r in store.list(family=family, limit=2)] == [third.id, second.id]
    assert store.list(family=unique_family("never")) == []
    assert store.list(family="Not A Family") == []
    with pytest.raises(ConfigError, match="'trend' is not one of drift, skew, freshness"):
        store.list(kind="trend")
    with pytest.raises(ConfigError, match="'bad' is not one of ok, warn, alert"):
        store.list(status="bad")


def test_latest_gives_the_newest_report_of_each_kind(store: ReportStore, make_result: Make) -> None:
    family = unique_family()
    store.save(make_result(family, "drift", Status.ALERT))
    newest_drift = store.save(make_result(family, "drift", Status.OK))
    freshness = store.save(make_result(family, "freshness", Status.WARN))
    latest = store.latest(family)
    assert set(latest) == {"drift", "freshness"}
    assert latest["drift"].id == newest_drift.id and latest["freshness"].id == freshness.id


def test_review_records_who_when_and_what_in_mlflow(store: ReportStore, make_result: Make) -> None:
    family = unique_family()
    reviewed = store.save(make_result(family, "skew", Status.ALERT))
    pending = store.save(make_result(family, "drift", Status.OK))

    record = store.review(reviewed.id, " ana ", "stale values after the stopped refresh")

    assert record.review is not None
    assert record.review.reviewer == "ana"
    assert record.review.comment == "stale values after the stopped refresh"
    assert record.created_at <= record.review.at <= dt.datetime.now(dt.UTC)
    assert store._connection.client.get_run(reviewed.id).data.tags[TAG_REVIEW_BY] == "ana"
    assert [r.id for r in store.list(family=family, reviewed=True)] == [reviewed.id]
    assert [r.id for r in store.list(family=family, reviewed=False)] == [pending.id]
    again = store.review(reviewed.id, "bo")
    assert again.review is not None and (again.review.reviewer, again.review.comment) == ("bo", "")


def test_a_review_without_a_name_is_refused_and_records_nothing(
    store: ReportStore, make_result: Make
) -> None:
    record = store.save(make_result(unique_family()))
    for name in ("", "   "):
        with pytest.raises(ReviewRefused, match="reviewer's name is empty"):
            store.review(record.id, name, "looked fine")
    assert store.get(record.id).review is None
    with pytest.raises(ReportNotFound):
        store.review("0" * 32, "ana")


def test_unknown_ids_are_report_not_found(
    store: ReportStore, report_workspace: Settings, make_result: Make
) -> None:
    store.save(make_result(unique_family()))  # the experiment exists
    for bad in ("0" * 32, "not-an-id", ""):
        with pytest.raises(ReportNotFound) as raised:
            store.get(bad)
        assert raised.value.report_id == bad
        assert "nbfeatures reports list" in str(raised.value)
    with pytest.raises(ReportNotFound):
        store.html("0" * 32)
    # A run of another experiment (a catalog registration) is not a report.
    catalog_run = Catalog.from_settings(report_workspace).get(_registered(report_workspace)).run_id
    with pytest.raises(ReportNotFound):
        store.get(catalog_run)


def _registered(settings: Settings) -> str:
    name = unique_family("cat")
    _register(settings, name, owner="ana")
    return name


def test_a_store_without_the_experiment_lists_nothing_and_creates_nothing(
    report_workspace: Settings,
) -> None:
    fresh = dataclasses.replace(
        report_workspace, monitoring={"experiment": f"never-{unique_family()}"}
    )
    store = ReportStore.from_settings(fresh)
    assert store.list() == []
    assert store.latest("anything") == {}
    with pytest.raises(ReportNotFound):
        store.get("0" * 32)
    assert store._connection.client.get_experiment_by_name(store.experiment_name) is None


def test_a_missing_page_fails_before_anything_is_written(
    store: ReportStore, tmp_path: Path
) -> None:
    family = unique_family()
    result = ReportResult(make_summary(family), tmp_path / "never-written.html")
    with pytest.raises(ReportFailed, match=r"never-written\.html does not exist") as raised:
        store.save(result)
    assert (raised.value.family, raised.value.kind) == (family, "drift")
    assert store.list(family=family) == []


def test_a_summary_too_large_for_a_tag_is_read_from_its_artifact(
    store: ReportStore, report_workspace: Settings, make_result: Make
) -> None:
    family = unique_family()
    notes = tuple(f"note {i}: " + "x" * 200 for i in range(60))  # ~13 kB of JSON
    record = store.save(make_result(family, notes=notes))
    assert "nbf.report.summary" not in store._connection.client.get_run(record.id).data.tags
    fresh = ReportStore.from_settings(report_workspace)  # nothing downloaded yet
    assert fresh.get(record.id).summary.notes == notes
    assert [r.summary.notes for r in fresh.list(family=family)] == [notes]


def test_to_dict_is_json_ready_with_the_summary(store: ReportStore, make_result: Make) -> None:
    import json

    record = store.review(store.save(make_result(unique_family())).id, "ana", "ok")
    data = json.loads(json.dumps(record.to_dict()))
    assert data["id"] == record.id and data["status"] == "ok"
    assert data["review"]["reviewer"] == "ana" and data["review"]["comment"] == "ok"
    assert ReportSummary.from_dict(data["summary"]) == record.summary


def test_a_report_without_a_version_saves_and_lists(store: ReportStore, make_result: Make) -> None:
    family = unique_family()
    record = store.save(make_result(family, "freshness", Status.WARN, version=None))
    assert record.version is None
    assert TAG_VERSION not in store._connection.client.get_run(record.id).data.tags
    assert [r.version for r in store.list(family=family)] == [None]


def test_artifacts_mlflow_cannot_write_fail_the_save_and_leave_no_report(
    report_workspace: Settings, make_result: Make, tmp_path: Path
) -> None:
    blocker = tmp_path / "artifacts-here"
    blocker.write_text("a file where the experiment's artifact folder should be")
    store = ReportStore(report_workspace.catalog, blocker.as_uri(), f"broken-{unique_family()}")
    family = unique_family()
    with pytest.raises(ReportFailed, match="saving it in MLflow failed") as raised:
        store.save(make_result(family, "skew", Status.ALERT), owner="ana")
    assert (raised.value.family, raised.value.kind) == (family, "skew")
    assert store.list(family=family) == []  # the half-written run was removed
    from mlflow.entities import ViewType

    client = store._connection.client
    experiment = client.get_experiment_by_name(store.experiment_name)
    deleted = client.search_runs([experiment.experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert [run.data.tags["nbf.report.family"] for run in deleted] == [family]
