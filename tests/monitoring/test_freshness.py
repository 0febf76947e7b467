"""Freshness reports against a real Redis (this folder's own server) and served logs written
through ``flush_served_log``: a stopped refresh alerts with its breaches listed, a healthy
family is ok, and the SLA falls back to the ttl, or to nothing, as documented."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from conftest import make_workspace
from served_log import Served, entry, log_requests

from nbfeatures.catalog import Catalog
from nbfeatures.definitions import Entity, Feature, FeatureFamily, FeatureType, Transformation
from nbfeatures.monitoring.freshness import BUCKETS, freshness_report
from nbfeatures.monitoring.summary import ReportSummary, Status
from nbfeatures.online import FamilyLayout, OnlineStore

HOUR = dt.timedelta(hours=1)


def family(name: str, **kwargs: Any) -> FeatureFamily:
    return FeatureFamily(
        name=name,
        entity=Entity("user", "user_id"),
        timestamp="ts",
        features=(Feature("amount", FeatureType.FLOAT64),),
        transformation=Transformation("sql", "SELECT user_id, ts, amount FROM t"),
        owner="tests",
        **kwargs,
    )


@pytest.fixture(scope="module")
def online(tmp_path_factory, redis_server):
    """One workspace (one MLflow database: creating one costs seconds) for the module's
    families, which have distinct names, on this folder's Redis."""
    settings = make_workspace(tmp_path_factory.mktemp("fresh-ws"), redis_server.url)
    store = OnlineStore.from_settings(settings)
    yield settings, Catalog.from_settings(settings), store
    store.close()


@pytest.fixture
def live(online, redis_client):
    """Register a family, write its values online with a given newest event time, make it
    live, and log served requests; deletes its keys afterwards."""
    settings, catalog, store = online
    names: list[str] = []

    def make(
        definition: FeatureFamily,
        newest: dt.datetime,
        served: list[tuple[dt.datetime, dt.datetime]],
    ):
        catalog.register(definition)
        catalog.set_alias(definition.name, "production", 1)
        layout = FamilyLayout.of(definition, 1)
        store.write_layout(layout)
        batch = pa.RecordBatch.from_pydict({
            "user_id": pa.array(["u1", "u2", "u3"]),
            "ts": pa.array([newest - 2 * HOUR, newest - HOUR, newest], pa.timestamp("us", "UTC")),
            "amount": pa.array([1.0, 2.0, 3.0]),
        })  # fmt: skip
        store.write_rows(layout, batch)
        store.flip(definition.name, 1, None)
        names.append(definition.name)
        payloads = [
            entry(definition, 1, request_time, [Served("u1", {"amount": 1.0}, event_time)])
            for request_time, event_time in served
        ]
        if payloads:
            log_requests(redis_client, settings.offline, payloads)
        return settings

    yield make
    for name in names:
        store.client.delete(store.keys.live(name))
        store.delete_version(name, 1)


def run(settings, name: str, end: dt.datetime, tmp_path) -> ReportSummary:
    result = freshness_report(settings, name, output_dir=tmp_path / "out", start=end - 6 * HOUR,
                              end=end)  # fmt: skip
    text = result.html.read_text()
    assert result.html.name == "freshness.html" and len(text) > 10_000 and name in text
    return ReportSummary.from_json(result.summary.to_json())


def test_stopped_refresh_alerts_and_lists_breaches(live, tmp_path):
    now = dt.datetime.now(dt.UTC)
    stopped = now - 4 * HOUR  # the last refresh wrote values of four hours ago
    # Every 10 minutes of the last 6 hours a request; what it got is the newest value then.
    served = []
    for minutes in range(0, 360, 10):
        when = now - 6 * HOUR + dt.timedelta(minutes=minutes)
        served.append((when, min(when - dt.timedelta(minutes=5), stopped)))
    settings = live(family("fresh_stopped", freshness="1h"), stopped, served)

    summary = run(settings, "fresh_stopped", now, tmp_path)

    assert summary.status is Status.ALERT
    assert summary.detail["sla_seconds"] == 3600 and summary.detail["sla_source"] == "freshness"
    assert summary.detail["materialized_age_seconds"] == pytest.approx(4 * 3600, abs=120)
    assert summary.check("newest_materialized").status is Status.ALERT
    assert any("refresh looks stopped" in note for note in summary.notes)
    found = summary.detail["breaches"]
    assert summary.detail["bucket_seconds"] == pytest.approx(6 * 3600 / BUCKETS)
    # Served values were fresh until an hour after the refresh stopped, then aged past the SLA.
    first = dt.datetime.fromisoformat(found[0]["start"])
    assert stopped + 0.5 * HOUR <= first <= stopped + 1.25 * HOUR, found[0]
    assert dt.datetime.fromisoformat(found[-1]["end"]) == pytest.approx(
        now, abs=dt.timedelta(seconds=1)
    )
    assert all(b["worst_age_seconds"] > 3600 for b in found)
    assert found[-1]["worst_age_seconds"] == pytest.approx(4 * 3600, abs=900)
    served_check = summary.check("served_values")
    assert served_check.status is Status.WARN and served_check.detail["share_over_sla"] > 0.3


def test_fresh_family_is_ok(live, tmp_path):
    now = dt.datetime.now(dt.UTC)
    served = [(now - dt.timedelta(minutes=m), now - dt.timedelta(minutes=m + 10))
              for m in range(5, 360, 10)]  # fmt: skip
    settings = live(family("fresh_ok", freshness="1h"), now - dt.timedelta(minutes=5), served)

    summary = run(settings, "fresh_ok", now, tmp_path)

    assert summary.status is Status.OK, summary.to_json()
    assert summary.detail["breaches"] == []
    assert summary.detail["served"]["p95_seconds"] == pytest.approx(600, abs=1)
    assert summary.detail["served"]["share_over_sla"] == 0.0
    assert summary.rows == len(served)


def test_ttl_stands_in_for_a_missing_sla(live, tmp_path):
    now = dt.datetime.now(dt.UTC)
    settings = live(family("fresh_ttl", ttl="2h"), now - 3 * HOUR, [])
    summary = run(settings, "fresh_ttl", now, tmp_path)
    assert summary.detail["sla_source"] == "ttl" and summary.detail["sla_seconds"] == 7200
    assert summary.status is Status.ALERT
    assert any("held to the ttl (2h)" in note for note in summary.notes)


def test_no_sla_is_ok_with_a_note(live, tmp_path):
    now = dt.datetime.now(dt.UTC)
    settings = live(family("fresh_none"), now - 30 * HOUR, [(now - HOUR, now - 30 * HOUR)])
    summary = run(settings, "fresh_none", now, tmp_path)
    assert summary.status is Status.OK
    assert summary.detail["sla_seconds"] is None and summary.detail["breaches"] == []
    assert "nothing to hold ages to" in summary.notes[0]
    assert summary.detail["served"]["max_seconds"] == pytest.approx(29 * 3600, abs=1)
