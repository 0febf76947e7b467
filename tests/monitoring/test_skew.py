"""Training/serving skew through real parts: a promoted family, a real server logging every
request, the served log flushed to Parquet, and the offline recomputation by the point-in-time
join. Each injected problem is asserted on the JSON summary, and the page is rendered."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from skew_fixtures import (
    SPEND_SQL,
    SPEND_SQL_CHANGED,
    promote,
    ratio_family,
    serve_and_log,
    spend_family,
    write_source,
)

from nbfeatures.errors import ConfigError
from nbfeatures.monitoring.kinds import report_function
from nbfeatures.monitoring.skew import skew_report
from nbfeatures.monitoring.summary import ReportSummary
from nbfeatures.on_demand import publish_on_demand

pytestmark = pytest.mark.integration


def summary_of(result) -> dict:
    """The JSON form of the summary, as the store and the CLI read it."""
    data = json.loads(result.summary.to_json())
    assert ReportSummary.from_dict(data).status == result.summary.status
    assert result.html.name == "skew.html" and result.html.stat().st_size > 10_000
    return data


def check(data: dict, feature: str) -> dict:
    return next(c for c in data["checks"] if c["feature"] == feature)


def test_no_skew_through_a_real_server_is_ok(skew_world, tmp_path: Path):
    publish_on_demand(skew_world.store, ratio_family("skew_ratio", "skew_spend"), 1)
    users = [*skew_world.users[:6], "nobody"]
    start, end, answers = serve_and_log(
        skew_world,
        [({"user_id": users[:4]}, ["skew_spend:*", "skew_ratio:*"]),
         ({"user_id": users[3:]}, ["skew_spend:*", "skew_ratio:*"])],
    )  # fmt: skip
    assert answers[1].statuses["skew_spend:amount"][-1] == "NOT_FOUND"
    report = report_function("skew")
    result = report(skew_world.settings, "skew_spend", output_dir=tmp_path, start=start, end=end)
    data = summary_of(result)
    assert data["status"] == "ok", data
    assert data["rows"] == data["rows_total"] == 8
    assert data["detail"]["mismatched_values"] == 0
    assert data["detail"]["compared_values"] == 8 * 4
    assert data["detail"]["served_versions"] == {"1": 8}
    assert data["detail"]["examples"] == {}
    assert data["detail"]["tolerance"] == {"rel": 1e-6, "abs": 1e-9}
    assert check(data, "amount")["detail"]["smape"] == 0.0
    assert {c["status"] for c in data["checks"]} == {"ok"}
    page = result.html.read_text()
    assert "Training/serving skew: skew_spend v1" in page
    assert "drift not detected" in page  # Evidently's own part of the page
    on_demand = summary_of(
        skew_report(skew_world.settings, "skew_ratio", output_dir=tmp_path / "od",
                    start=start, end=end)
    )  # fmt: skip
    assert on_demand["status"] == "ok", on_demand
    assert on_demand["detail"]["compared_values"] == 8 * 2
    assert on_demand["detail"]["mismatched_values"] == 0


@pytest.fixture(scope="module")
def version_window(skew_world, spark):
    """v1 served (live) while a changed transformation is registered and computed as v2."""
    from nbfeatures import compute

    changed = spend_family("skew_spend", SPEND_SQL_CHANGED, skew_world.transactions)
    registered = skew_world.catalog.register(changed)
    assert registered.created and registered.version.version == 2
    compute("skew_spend", 2, settings=skew_world.settings, catalog=skew_world.catalog,
            spark=spark, progress=False)  # fmt: skip
    users = [*skew_world.users[:5], "nobody"]
    start, end, _ = serve_and_log(skew_world, [({"user_id": users}, ["skew_spend:*"])])
    return start, end


def test_changed_transformation_shows_version_skew(skew_world, version_window, tmp_path):
    start, end = version_window
    result = skew_report(skew_world.settings, "skew_spend", output_dir=tmp_path, start=start,
                         end=end, version=2, engine="arrow")  # fmt: skip
    data = summary_of(result)
    assert data["version"] == 2 and data["detail"]["reference_version"] == 2
    assert data["detail"]["served_versions"] == {"1": 6}
    cents = check(data, "cents")
    # Five users found; "nobody" is absent on both sides, which is no mismatch.
    assert cents["detail"]["mismatches"] == 5
    assert cents["detail"]["by_cause"]["version"] == 5
    assert cents["detail"]["by_cause"]["value"] == 0
    assert cents["status"] == "warn"  # not a bug of the version served: no alert of its own
    for same in ("amount", "amount32", "merchant"):
        assert check(data, same)["detail"]["mismatches"] == 0, same
    # One feature of four wholly mismatched: the overall rate alerts.
    assert data["status"] == "alert"
    assert data["detail"]["mismatch_rate"] == pytest.approx(5 / 24)
    examples = data["detail"]["examples"]
    assert set(examples) == {"version"}
    first = examples["version"][0]
    assert first["feature"] == "cents" and first["served_version"] == 1
    assert first["offline_value"] == first["served_value"] * 10
    assert first["entity"] in skew_world.users
    assert "Examples: version" in result.html.read_text()


@pytest.mark.parametrize("session", ["spark", "connect_spark"])
def test_spark_and_arrow_joins_give_the_same_summary(skew_world, version_window, tmp_path,
                                                     request, session):  # fmt: skip
    start, end = version_window
    summaries = []
    for engine, spark in (("arrow", None), ("spark", request.getfixturevalue(session))):
        result = skew_report(skew_world.settings, "skew_spend", output_dir=tmp_path / engine,
                             start=start, end=end, version=2, engine=engine,
                             spark=spark)  # fmt: skip
        data = summary_of(result)
        assert data["detail"].pop("engine") == engine
        data.pop("created_at")
        summaries.append(data)
    assert summaries[0] == summaries[1]
    assert summaries[0]["detail"]["by_cause"]["version"] == 5


def test_a_sample_smaller_than_the_window_is_stated(skew_world, version_window, tmp_path):
    start, end = version_window
    result = skew_report(skew_world.settings, "skew_spend", output_dir=tmp_path, start=start,
                         end=end, version=2, engine="arrow", sample=3)  # fmt: skip
    data = summary_of(result)
    assert data["rows"] == 3 and data["rows_total"] == 6
    assert any("sampled 3 of 6" in note for note in data["notes"])
    assert check(data, "cents")["detail"]["compared"] == 3


def test_bug_in_the_served_on_demand_function_shows_value_skew(skew_world, tmp_path):
    # The catalog's v1 doubles the amount; the server is given a v1 that triples it.
    buggy = ratio_family("skew_ratio", "skew_spend", factor="3.0")
    publish_on_demand(skew_world.store, buggy, 1)
    try:
        users = [*skew_world.users[:4], "nobody"]
        start, end, answers = serve_and_log(skew_world, [({"user_id": users}, ["skew_ratio:*"])])
    finally:
        publish_on_demand(skew_world.store, ratio_family("skew_ratio", "skew_spend"), 1)
    assert answers[0].statuses["skew_ratio:double_amount"] == ["PRESENT"] * 5
    data = summary_of(
        skew_report(skew_world.settings, "skew_ratio", output_dir=tmp_path, start=start, end=end)
    )
    assert data["status"] == "alert"
    doubled = check(data, "double_amount")
    assert doubled["status"] == "alert"
    assert doubled["detail"]["by_cause"]["value"] == 4  # "nobody": null on both sides
    assert doubled["detail"]["by_cause"]["version"] == 0
    assert doubled["detail"]["smape"] == pytest.approx(40.0)  # |3a - 2a| / 2.5a
    assert check(data, "big")["detail"]["mismatches"] == 0
    example = data["detail"]["examples"]["value"][0]
    assert example["served_value"] == pytest.approx(example["offline_value"] * 1.5)
    assert example["served_version"] == example["offline_version"] == 1
    assert example["served_event_time"] == example["offline_event_time"]


def test_online_store_not_refreshed_shows_stale(skew_world, spark, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nbfeatures import compute

    folder = tmp_path / "fresh-source"
    write_source(folder / "part-0.parquet", dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    version = promote(skew_world, spend_family("skew_fresh", SPEND_SQL, folder), spark)
    # The source advances for two users and offline is recomputed; Redis is not refreshed.
    moved = skew_world.users[:2]
    later = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    pq.write_table(
        pa.table({
            "user_id": moved,
            "ts": pa.array([later] * 2, pa.timestamp("us", tz="UTC")),
            "amount": [999.5, 998.5],
            "merchant": ["grocer", "fuel"],
            "country": ["DE", "FR"],
        }),
        folder / "part-1.parquet",
    )  # fmt: skip
    compute("skew_fresh", version, settings=skew_world.settings, catalog=skew_world.catalog,
            spark=spark, progress=False)  # fmt: skip
    users = skew_world.users[:6]
    start, end, _ = serve_and_log(skew_world, [({"user_id": users}, ["skew_fresh:*"])])
    data = summary_of(
        skew_report(skew_world.settings, "skew_fresh", output_dir=tmp_path, start=start, end=end)
    )
    amount = check(data, "amount")
    assert amount["detail"]["mismatches"] == 2
    assert amount["detail"]["by_cause"]["stale"] == 2
    assert data["detail"]["by_cause"]["value"] == 0
    assert data["detail"]["by_cause"]["version"] == 0
    assert data["status"] == "alert"  # a third of the values served were not what offline had
    stale = data["detail"]["examples"]["stale"]
    assert {e["entity"] for e in stale} == set(moved)
    for example in stale:
        assert example["served_event_time"] < example["offline_event_time"]
        assert dt.datetime.fromisoformat(example["offline_event_time"]) == later


def test_a_window_without_served_vectors_warns_and_says_why(skew_world, tmp_path):
    long_ago = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    result = skew_report(skew_world.settings, "skew_spend", output_dir=tmp_path,
                         start=long_ago, end=long_ago + dt.timedelta(days=1))  # fmt: skip
    data = json.loads(result.summary.to_json())
    assert data["status"] == "warn" and data["rows"] == 0 and data["checks"] == []
    assert any("no served vectors" in note for note in data["notes"])
    assert "no served vectors" in result.html.read_text()
    with pytest.raises(ConfigError, match=r"skew\.sample.*is 0"):
        skew_report(skew_world.settings, "skew_spend", output_dir=tmp_path, sample=0)
