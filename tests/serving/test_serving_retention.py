"""ttl and retention on both data planes: STALE past the ttl, NOT_FOUND past ttl + retention."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pyarrow as pa
import pytest
from serving_fixtures import NOW, layout, running_server

from nbfeatures.client import FeatureClient
from nbfeatures.online import FamilyLayout, OnlineStore

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("data_plane")]

TTL, RETENTION = 3600, 1800
FRESH = NOW - dt.timedelta(seconds=10)
JUST_STALE = NOW - dt.timedelta(seconds=TTL + 60)  # past the ttl, inside the retention
GONE = NOW - dt.timedelta(seconds=TTL + RETENTION + 60)  # past both


def rows(ts: list[dt.datetime], clicks: list[int]) -> pa.RecordBatch:
    n = len(ts)
    return pa.RecordBatch.from_pydict(
        {
            "user_id": pa.array(range(1, n + 1), pa.int64()),
            "ts": pa.array(ts, pa.timestamp("us", "UTC")),
            "clicks": pa.array(clicks, pa.int64()),
            "score": pa.array([0.5] * n, pa.float64()),
            "tier": pa.array(["gold"] * n, pa.string()),
            "active": pa.array([True] * n, pa.bool_()),
            "seen": pa.array([NOW] * n, pa.timestamp("us", "UTC")),
        }
    )


def numbers(base: FamilyLayout) -> FamilyLayout:
    return replace(base, features=tuple(f for f in base.features if f[1] != "string"))


def test_stale_inside_retention_and_not_found_past_it(store: OnlineStore) -> None:
    keyed = replace(layout("users", 1, ttl=TTL), retention_seconds=RETENTION)
    batch = rows([FRESH, JUST_STALE, GONE], [1, 2, 3])
    # Written as materialization writes: the third row is past ttl + retention, so skipped.
    assert store.write_rows(keyed, batch) == 2
    store.write_layout(keyed)
    store.flip("users", 1, None)
    remaining = store.client.pttl(store.value_key("users", 1, 2) or "")
    assert 0 < remaining <= (RETENTION - 60) * 1000  # kept until ttl + retention

    # A packed family whose bucket a fresh member keeps alive: the old member is still in
    # Redis, and readers must still answer NOT_FOUND for it.
    packed = replace(numbers(layout("scores", 1, ttl=TTL)), retention_seconds=RETENTION)
    target = store.write_layout(packed, entities=1)
    assert target.packing is not None and target.packing.buckets == 1
    store.write_rows(replace(packed, ttl_seconds=None), batch.drop_columns(["tier"]), target=target)
    store.flip("scores", 1, None)

    with running_server(store) as server, FeatureClient(f"127.0.0.1:{server.port}") as client:
        got = client.get_online_features({"user_id": [1, 2, 3]}, ["users:clicks", "scores:clicks"])
    for ref in ("users:clicks", "scores:clicks"):
        assert got.statuses[ref] == ["PRESENT", "STALE", "NOT_FOUND"], ref
        assert got[ref] == [1, 2, None], ref
        assert got.event_times[ref][1] == JUST_STALE, ref
        assert got.event_times[ref][2] is None, ref
