"""``read_served``: the served-vector log of a family, wide and typed, as reports read it.

Every log here goes through the server's ``encode_entry``, a real Redis stream and the real
``flush_served_log``, so the reader is tested against exactly what ``logs flush`` writes.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from served_log import Served, entry, log_requests

from nbfeatures.definitions import Entity, Feature, FeatureFamily, FeatureType, Transformation
from nbfeatures.monitoring.served import VECTOR_COLUMNS, read_served
from nbfeatures.serving.lookup import Status

T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
FAMILY = FeatureFamily(
    name="served_mix",
    entity=Entity("user", "user_id"),
    timestamp="ts",
    features=(
        Feature("clicks", FeatureType.INT64),
        Feature("small", FeatureType.INT32),
        Feature("score", FeatureType.FLOAT64),
        Feature("tier", FeatureType.STRING),
        Feature("active", FeatureType.BOOL),
        Feature("seen", FeatureType.TIMESTAMP),
    ),
    transformation=Transformation("sql", "SELECT * FROM t"),
    owner="tests",
)
ALL = {
    "clicks": 7,
    "small": -3,
    "score": 0.25,
    "tier": "gold",
    "active": True,
    "seen": T0 - dt.timedelta(hours=1),
}


def test_every_type_comes_back_typed_and_equal(workspace, redis_client):
    tricky = 'say "hi" \\ back\nslash, café ✓'
    rows = [
        Served("u1", ALL, T0 - dt.timedelta(minutes=5)),
        Served("u2", {**ALL, "tier": tricky, "active": False, "clicks": 2**53 + 1},
               T0 - dt.timedelta(minutes=6)),
        Served("u3", {k: None for k in ALL}, T0 - dt.timedelta(minutes=7)),
    ]  # fmt: skip
    log_requests(redis_client, workspace.offline, [entry(FAMILY, 1, T0, rows)])

    window = read_served(workspace, FAMILY, T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=1))

    frame = window.frame.set_index("entity")
    assert list(window.frame.columns) == [*VECTOR_COLUMNS, *FAMILY.feature_names]
    assert (window.rows, window.rows_total, window.sampled) == (3, 3, False)
    assert frame.loc["u1", "clicks"] == 7 and frame.loc["u1", "small"] == -3
    assert frame.loc["u2", "clicks"] == 2**53 + 1  # an int64 never passes through a float
    assert frame.loc["u1", "score"] == 0.25
    assert frame.loc["u2", "tier"] == tricky and frame.loc["u1", "tier"] == "gold"
    assert frame.loc["u1", "active"] is True or frame.loc["u1", "active"] == True  # noqa: E712
    assert frame.loc["u2", "active"] == False  # noqa: E712
    assert frame.loc["u1", "seen"] == pd.Timestamp(T0 - dt.timedelta(hours=1))
    assert frame.loc["u1", "request_time"] == pd.Timestamp(T0)
    assert frame.loc["u1", "event_time"] == pd.Timestamp(T0 - dt.timedelta(minutes=5))
    assert frame.loc["u1", "version"] == 1 and frame.loc["u1", "status"] == "PRESENT"
    for name in FAMILY.feature_names:  # a null is a null, not "null", 0 or False
        assert pd.isna(frame.loc["u3", name]), name


def test_string_without_escapes_only_is_unquoted(workspace, redis_client):
    rows = [Served(f"u{i}", {**ALL, "tier": t}, T0) for i, t in enumerate(["a", "", "b c"])]
    log_requests(redis_client, workspace.offline, [entry(FAMILY, 1, T0, rows)])
    frame = read_served(workspace, FAMILY, T0, T0 + dt.timedelta(seconds=1)).frame
    assert frame.sort_values("entity")["tier"].tolist() == ["a", "", "b c"]


def test_mixed_versions_and_a_feature_a_version_lacks(workspace, redis_client):
    old = entry(FAMILY, 1, T0, [Served("u1", ALL, T0)], features=["clicks", "tier"])
    new = entry(FAMILY, 2, T0 + dt.timedelta(seconds=1), [Served("u2", ALL, T0),
                                                          Served("u3", ALL, T0)])  # fmt: skip
    log_requests(redis_client, workspace.offline, [old, new])
    start, end = T0, T0 + dt.timedelta(minutes=1)

    both = read_served(workspace, FAMILY, start, end)
    frame = both.frame.set_index("entity")
    assert sorted(both.frame["version"].tolist()) == [1, 2, 2]
    assert frame.loc["u1", "clicks"] == 7 and frame.loc["u1", "tier"] == "gold"
    assert pd.isna(frame.loc["u1", "score"]) and pd.isna(frame.loc["u1", "seen"])
    assert frame.loc["u2", "score"] == 0.25

    only_v1 = read_served(workspace, FAMILY, start, end, version=1).frame
    assert only_v1["entity"].tolist() == ["u1"]
    # A feature no served version has is still a typed column, all null.
    assert only_v1["score"].dtype.kind == "f" and only_v1["score"].isna().all()
    assert read_served(workspace, FAMILY, start, end, version=3).rows == 0


def test_not_found_and_stale_statuses(workspace, redis_client):
    rows = [
        Served("u1", ALL, T0, Status.PRESENT),
        Served("u2", ALL, T0 - dt.timedelta(days=3), Status.STALE),
        Served("u3", {k: None for k in ALL}, None, Status.NOT_FOUND),
    ]
    log_requests(redis_client, workspace.offline, [entry(FAMILY, 1, T0, rows)])
    frame = read_served(workspace, FAMILY, T0, T0 + dt.timedelta(seconds=1)).frame
    by = frame.set_index("entity")
    assert by["status"].to_dict() == {"u1": "PRESENT", "u2": "STALE", "u3": "NOT_FOUND"}
    assert pd.isna(by.loc["u3", "event_time"])
    assert by.loc["u2", "event_time"] == pd.Timestamp(T0 - dt.timedelta(days=3))


def test_window_is_start_inclusive_end_exclusive_across_days(workspace, redis_client):
    # Requests on both sides of midnight, logged (and so flushed) in one batch: the batch's
    # folder is named after its first entry's day, which must not hide the later ones.
    midnight = dt.datetime(2026, 3, 11, tzinfo=dt.UTC)
    times = [midnight - dt.timedelta(minutes=1), midnight, midnight + dt.timedelta(minutes=1),
             midnight + dt.timedelta(minutes=2)]  # fmt: skip
    payloads = [entry(FAMILY, 1, t, [Served(f"u{i}", ALL, t)]) for i, t in enumerate(times)]
    log_requests(redis_client, workspace.offline, payloads)

    after = read_served(workspace, FAMILY, midnight, midnight + dt.timedelta(minutes=2))
    assert sorted(after.frame["entity"]) == ["u1", "u2"]
    before = read_served(workspace, FAMILY, midnight - dt.timedelta(hours=1), midnight)
    assert before.frame["entity"].tolist() == ["u0"]
    naive = read_served(workspace, FAMILY, midnight.replace(tzinfo=None),
                        (midnight + dt.timedelta(hours=1)).replace(tzinfo=None))  # fmt: skip
    assert naive.rows == 3  # naive bounds are UTC, as everywhere


def test_other_families_are_not_read(workspace, redis_client):
    other = FeatureFamily(
        name="other_family",
        entity=Entity("user", "user_id"),
        timestamp="ts",
        features=(Feature("clicks", FeatureType.INT64),),
        transformation=Transformation("sql", "SELECT * FROM t"),
        owner="tests",
    )
    payloads = [entry(FAMILY, 1, T0, [Served("u1", ALL, T0)]),
                entry(other, 1, T0, [Served("x1", {"clicks": 1}, T0)])]  # fmt: skip
    log_requests(redis_client, workspace.offline, payloads)
    window = read_served(workspace, FAMILY, T0, T0 + dt.timedelta(seconds=1))
    assert window.frame["entity"].tolist() == ["u1"]


def test_limit_samples_uniformly_and_says_so(workspace, redis_client):
    payloads = [
        entry(FAMILY, 1, T0 + dt.timedelta(seconds=i),
              [Served(f"u{i}-{j}", {**ALL, "clicks": i * 10 + j}, T0) for j in range(10)])
        for i in range(20)
    ]  # fmt: skip
    log_requests(redis_client, workspace.offline, payloads)
    end = T0 + dt.timedelta(minutes=1)

    full = read_served(workspace, FAMILY, T0, end)
    sample = read_served(workspace, FAMILY, T0, end, limit=50)
    again = read_served(workspace, FAMILY, T0, end, limit=50)
    assert (full.rows, full.rows_total) == (200, 200)
    assert (sample.rows, sample.rows_total, sample.sampled) == (50, 200, True)
    assert sample.frame["entity"].tolist() == again.frame["entity"].tolist()  # fixed seed
    assert sample.frame["entity"].nunique() == 50
    # Each sampled vector keeps its own values (rows were not shuffled apart).
    for _, row in sample.frame.iterrows():
        i, j = (int(p) for p in row["entity"][1:].split("-"))
        assert row["clicks"] == i * 10 + j
    # Uniform, not the first 50: entities from late requests are in the sample too.
    assert sample.frame["clicks"].max() >= 100


@pytest.mark.parametrize("what", ["no folder", "other window"])
def test_empty_window_is_an_empty_typed_frame(workspace, redis_client, what):
    if what == "other window":
        log_requests(
            redis_client, workspace.offline, [entry(FAMILY, 1, T0, [Served("u1", ALL, T0)])]
        )
    start = T0 + dt.timedelta(days=30)
    window = read_served(workspace, FAMILY, start, start + dt.timedelta(days=1))
    assert (window.rows, window.rows_total) == (0, 0)
    assert list(window.frame.columns) == [*VECTOR_COLUMNS, *FAMILY.feature_names]
    assert window.frame["score"].dtype.kind == "f"
