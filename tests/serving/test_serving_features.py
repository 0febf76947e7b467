"""Serving a family from real Redis through the real server and FeatureClient."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from serving_fixtures import NOW, layout, put_family, running_server

from nbfeatures.client import AsyncFeatureClient, FeatureClient
from nbfeatures.errors import FeatureNotFound, InvalidRequest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("data_plane")]

# Past the 1 h ttl, inside its retention (another hour by default): read STALE.
OLD = NOW - dt.timedelta(minutes=65)  # past the 1 h ttl, well inside the retention
SEEN = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def users(store):
    put_family(store, layout("users", 1), [{"user_id": 1, "clicks": 100, "tier": "old"}])
    put_family(
        store,
        layout("users", 2, ttl=3600),
        [
            {"user_id": 1, "clicks": 7, "score": 0.5, "tier": "gold", "active": True, "seen": SEEN},
            {"user_id": 2, "clicks": 3, "score": 1.5, "tier": "blue", "ts": OLD},
            {"user_id": 3},  # present, every feature null
        ],
    )
    return store


def test_statuses_values_and_event_times(users):
    with running_server(users) as server, FeatureClient(f"127.0.0.1:{server.port}") as client:
        got = client.get_online_features({"user_id": [1, 2, 3, 4]}, ["users:*"])
    assert got["user_id"] == [1, 2, 3, 4]
    assert got["users:clicks"] == [7, 3, None, None]
    assert got["users:score"] == [0.5, 1.5, None, None]
    assert got["users:tier"] == ["gold", "blue", None, None]
    assert got["users:active"] == [True, None, None, None]
    assert got["users:seen"] == [SEEN, None, None, None]
    assert got.statuses["users:clicks"] == ["PRESENT", "STALE", "PRESENT", "NOT_FOUND"]
    assert got.event_times["users:tier"][1] == OLD.replace(microsecond=OLD.microsecond)
    assert got.event_times["users:tier"][3] is None
    assert got.versions == {"users": 2}
    frame = got.to_pandas()
    assert list(frame.columns)[:2] == ["user_id", "users:clicks"]
    assert len(frame) == 4


def test_pinned_and_production_side_by_side(users):
    with running_server(users) as server, FeatureClient(f"127.0.0.1:{server.port}") as client:
        got = client.get_online_features([{"user_id": 1}], ["users:tier", "users@v1:tier"])
    assert got["users:tier"] == ["gold"]
    assert got["users@v1:tier"] == ["old"]
    assert got.versions == {"users": 2, "users@v1": 1}


def test_flip_is_served_within_a_second(users):
    with running_server(users) as server, FeatureClient(f"127.0.0.1:{server.port}") as client:
        assert client.get_online_features({"user_id": 1}, ["users:tier"])["users:tier"] == ["gold"]
        users.flip("users", 1, 2)
        flipped = time.monotonic()
        seen = None
        while time.monotonic() - flipped < 1.0:
            seen = client.get_online_features({"user_id": 1}, ["users:tier"])
            if seen.versions["users"] == 1:
                break
        assert seen is not None
        assert seen.versions == {"users": 1}
        assert seen["users:tier"] == ["old"]


def test_unknown_family_and_feature_are_named(users):
    with running_server(users) as server, FeatureClient(f"127.0.0.1:{server.port}") as client:
        with pytest.raises(FeatureNotFound, match=r"users@v2:nope.*|.*ghost.*"):
            client.get_online_features({"user_id": 1}, ["users:nope", "ghost:x"])
        with pytest.raises(FeatureNotFound) as caught:
            client.get_online_features({"user_id": 1}, ["users:nope", "ghost:x"])
        assert "users@v2:nope" in str(caught.value)
        assert "ghost" in str(caught.value)
        with pytest.raises(FeatureNotFound, match="users@v9"):
            client.get_online_features({"user_id": 1}, ["users@v9:clicks"])


def test_not_found_texts_say_once_what_is_missing_and_where(users):
    with running_server(users) as server, FeatureClient(f"127.0.0.1:{server.port}") as client:
        with pytest.raises(FeatureNotFound) as feature:
            client.get_online_features({"user_id": 1}, ["users:nope"])
        with pytest.raises(FeatureNotFound) as both:
            client.get_online_features({"user_id": 1}, ["users:nope", "ghost:x"])
        with pytest.raises(FeatureNotFound) as version:
            client.get_online_features({"user_id": 1}, ["users@v9:clicks"])
    assert str(feature.value) == (
        "feature users@v2:nope not found (family users v2 has: clicks, score, tier, active, seen)"
    )
    assert feature.value.name == "users"
    assert str(both.value) == (
        "feature users@v2:nope not found (family users v2 has: clicks, score, tier, active, "
        "seen); family ghost has no live version"
    )
    assert str(version.value) == "family users@v9 is not in the online store"
    for caught in (feature, both, version):
        assert str(caught.value).count("not found") <= 1
        assert "feature family feature family" not in str(caught.value)


def test_refused_requests_name_the_server_once(users):
    with running_server(users, max_entities=1) as server:
        target = f"127.0.0.1:{server.port}"
        with FeatureClient(target) as client, pytest.raises(InvalidRequest) as caught:
            client.get_online_features({"user_id": [1, 2]}, ["users:clicks"])
    assert str(caught.value) == f"feature server {target}: 2 entity rows is over the limit of 1"
    assert caught.value.target == target


def test_limits_and_bad_requests(users):
    limits = {"max_entities": 3, "max_features": 2, "max_request_bytes": 2000}
    with running_server(users, **limits) as server:
        client = FeatureClient(f"127.0.0.1:{server.port}")
        with client:
            with pytest.raises(InvalidRequest, match="4 entity rows is over the limit of 3"):
                client.get_online_features({"user_id": [1, 2, 3, 4]}, ["users:clicks"])
            with pytest.raises(InvalidRequest, match="3 features is over the limit of 2"):
                client.get_online_features(
                    {"user_id": 1}, ["users:clicks", "users:tier", "users:score"]
                )
            with pytest.raises(InvalidRequest, match=r"wildcards expanded\) is over 2"):
                client.get_online_features({"user_id": 1}, ["users:*"])
            with pytest.raises(InvalidRequest, match="bytes is over the limit of 2000"):
                client.get_online_features({"user_id": ["x" * 3000]}, ["users:clicks"])
            with pytest.raises(InvalidRequest, match="not a feature reference"):
                client.get_online_features({"user_id": 1}, ["Users"])
            with pytest.raises(InvalidRequest, match="keyed by 'user_id'"):
                client.get_online_features({"account": 1}, ["users:clicks"])


def test_list_and_describe(users):
    with running_server(users) as server, FeatureClient(f"127.0.0.1:{server.port}") as client:
        listed = client.list_features()
        described = client.describe_family("users", 1)
        with pytest.raises(FeatureNotFound):
            client.describe_family("ghost")
    assert [f["family"] for f in listed] == ["users"]
    assert listed[0]["live_version"] == 2
    assert listed[0]["versions"] == [1, 2]
    assert listed[0]["ttl_seconds"] == 3600
    assert listed[0]["features"]["seen"] == "timestamp"
    assert described["version"] == 1 and described["live_version"] == 2


def test_async_client(users):
    async def fetch(port: int):
        async with AsyncFeatureClient(f"127.0.0.1:{port}") as client:
            return await asyncio.gather(
                client.get_online_features({"user_id": [1]}, ["users:clicks"]),
                client.get_online_features({"user_id": [2]}, ["users@v1:clicks"]),
            )

    with running_server(users) as server:
        first, second = asyncio.run(fetch(server.port))
    assert first["users:clicks"] == [7]
    assert second["users@v1:clicks"] == [None]
    assert second.statuses["users@v1:clicks"] == ["NOT_FOUND"]
