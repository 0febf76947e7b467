"""Serving a packed family (fixed-width records, several entities to a Redis hash)."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pytest
import redis.asyncio
from serving_fixtures import NOW, layout, running_server

from nbfeatures.client import FeatureClient
from nbfeatures.definitions import FeatureRef
from nbfeatures.online import FamilyLayout, OnlineStore
from nbfeatures.serving.lookup import AsyncFeatureLookup, FeatureLookup, OnlineQuery
from nbfeatures.serving.redis_pipe import RedisPipe

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("data_plane")]

# Past the 1 h ttl, inside its retention (another hour by default): read STALE.
OLD = NOW - dt.timedelta(minutes=65)  # past the 1 h ttl, well inside the retention
USERS = 150


def numbers_layout(version: int, ttl: int | None = 3600) -> FamilyLayout:
    base = layout("scores", version, ttl=ttl)
    return replace(base, features=tuple(f for f in base.features if f[1] != "string"))


def put_numbers(store: OnlineStore, family: FamilyLayout, offset: int) -> None:
    """Users 0..149: user u has clicks u + offset; users >= 100 are 90 minutes old (stale)."""
    ids = list(range(USERS))
    batch = pa.RecordBatch.from_pydict(
        {
            "user_id": pa.array(ids, pa.int64()),
            "ts": pa.array([OLD if u >= 100 else NOW for u in ids], pa.timestamp("us", "UTC")),
            "clicks": pa.array([u + offset for u in ids], pa.int64()),
            "score": pa.array([u / 2 if u % 3 else None for u in ids], pa.float64()),
            "active": pa.array([u % 2 == 0 for u in ids], pa.bool_()),
            "seen": pa.array([NOW] * USERS, pa.timestamp("us", "UTC")),
        }
    )
    target = store.write_layout(family, entities=USERS)
    assert target.packing is not None  # really packed
    store.write_rows(replace(family, ttl_seconds=None), batch, target=target)


@pytest.fixture
def scores(store: OnlineStore) -> OnlineStore:
    put_numbers(store, numbers_layout(1), offset=1000)
    put_numbers(store, numbers_layout(2), offset=0)
    store.flip("scores", 2, None)
    return store


def test_one_and_many_entities_through_the_server(scores: OnlineStore) -> None:
    wanted = [3, 0, 120, 149, 150, 10**6]
    with running_server(scores) as server, FeatureClient(f"127.0.0.1:{server.port}") as client:
        one = client.get_online_features({"user_id": [7]}, ["scores:clicks"])
        many = client.get_online_features({"user_id": wanted}, ["scores:*", "scores@v1:clicks"])
        hundred = client.get_online_features({"user_id": list(range(100))}, ["scores:clicks"])
    assert one["scores:clicks"] == [7] and one.statuses["scores:clicks"] == ["PRESENT"]
    assert many["scores:clicks"] == [3, 0, 120, 149, None, None]
    assert many["scores@v1:clicks"] == [1003, 1000, 1120, 1149, None, None]
    assert many["scores:score"] == [None, None, None, 74.5, None, None]
    assert many["scores:active"] == [False, True, True, False, None, None]
    assert many.statuses["scores:clicks"] == [
        "PRESENT", "PRESENT", "STALE", "STALE", "NOT_FOUND", "NOT_FOUND",
    ]  # fmt: skip
    assert hundred["scores:clicks"] == list(range(100))


def test_the_pipelined_and_the_redis_py_paths_read_the_same(
    scores: OnlineStore, redis_server: Any
) -> None:
    """Both async paths (pipe: plain TCP; redis.asyncio: TLS, Cluster) and the sync lookup."""
    keys = [str(u) for u in (5, 149, 77, 151, 0, 5)]
    query = OnlineQuery(
        entities={"user_id": keys},
        refs=(FeatureRef.parse("scores:clicks"), FeatureRef.parse("scores@v1:score")),
    )
    now = dt.datetime.now(dt.UTC)
    now_us = int(now.timestamp() * 1_000_000)

    def values(results: list[Any]) -> list[list[Any]]:
        return [
            [column.python_values() for column in result.columns.values()] for result in results
        ]

    expected = values(FeatureLookup(scores).read(query, now))
    assert expected[0] == [[5, 149, 77, None, 0, 5]]

    async def read(use_pipe: bool) -> list[list[Any]]:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        pipe = RedisPipe(port=int(redis_server.url.rsplit(":", 1)[1].split("/")[0]))
        lookup = AsyncFeatureLookup(scores, client, pipe=pipe if use_pipe else None)
        try:
            plans = await lookup.resolve(query.refs)
            return values([await lookup.read_one(query, plan, now_us) for plan in plans])
        finally:
            pipe.close()
            await client.aclose()

    assert asyncio.run(read(True)) == expected
    assert asyncio.run(read(False)) == expected
