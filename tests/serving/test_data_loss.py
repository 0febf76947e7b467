"""Running servers after Redis loses its data or a layout is rewritten (both data planes).

After a data loss the key id counter starts again at 1, so re-writing the versions in another
order hands one family's old key id to another family's values. A server must never serve
those values under the first family's name; it re-checks what it caches, so it serves each
version's own values again once they are back, and applies a rewritten layout (a new ttl).
Each test uses its own redis-server: it flushes or restarts it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
from servers import RedisServer
from serving_fixtures import NOW, layout, open_store, put_family, running_server

from nbfeatures.client import FeatureClient
from nbfeatures.errors import FeatureNotFound, ServingUnavailable
from nbfeatures.online import FamilyLayout, OnlineStore

pytestmark = pytest.mark.integration

ALPHA = [{"user_id": 1, "clicks": 111, "tier": "alpha"}, {"user_id": 2, "clicks": 112}]
BETA = [{"user_id": 1, "clicks": 222, "tier": "beta"}, {"user_id": 2, "clicks": 223}]
REFS = ["alpha:clicks", "alpha:tier", "alpha@v1:clicks", "beta:clicks"]
POLLS = 400  # at 0.05 s: a bound of 20 s on what a live cache of 0.2 s does at once


@pytest.fixture
def own_redis() -> Iterator[tuple[RedisServer, OnlineStore]]:
    server = RedisServer()
    server.start()
    store = open_store(server.url)
    try:
        yield server, store
    finally:
        store.close()
        server.stop()


def poll(client: FeatureClient, refs: list[str], done: Callable[[Any], bool]) -> list[Any]:
    """Read ``refs`` for users 1 and 2 until ``done(answer)``; every answer seen (or error)."""
    seen: list[Any] = []
    for _ in range(POLLS):
        try:
            got: Any = client.get_online_features({"user_id": [1, 2]}, refs)
        except (FeatureNotFound, ServingUnavailable) as exc:
            got = exc
        seen.append(got)
        if done(got):
            return seen
        time.sleep(0.05)  # polling: the server re-checks Redis on its own schedule
    raise AssertionError(f"not reached in {POLLS} reads; last answer: {seen[-1]!r}")


def served_as_present(answer: Any, ref: str) -> list[Any]:
    """The values ``answer`` serves as PRESENT for ``ref`` (none for an error)."""
    if isinstance(answer, Exception):
        return []
    statuses = answer.statuses[ref]
    return [v for v, s in zip(answer[ref], statuses, strict=True) if s == "PRESENT"]


def lose_data(server: RedisServer, how: str) -> None:
    if how == "flushall":
        redis.Redis(port=server.port).flushall()
    else:  # a restart without persistence: the data is gone
        server.restart()


@pytest.mark.usefixtures("data_plane")
@pytest.mark.parametrize("how", ["flushall", "restart"])
def test_a_lost_key_id_handed_to_another_family_is_never_served_under_the_old_name(own_redis, how):
    server, store = own_redis
    put_family(store, layout("alpha", 1), ALPHA)  # key id 1
    put_family(store, layout("beta", 1), BETA)  # key id 2
    with running_server(store) as serving, FeatureClient(f"127.0.0.1:{serving.port}") as client:
        before = client.get_online_features({"user_id": [1, 2]}, REFS)
        assert before["alpha:clicks"] == [111, 112] and before["beta:clicks"] == [222, 223]

        lose_data(server, how)
        # The server sees the live pointers gone (its caches are re-checked then).
        poll(client, ["alpha:clicks"], lambda got: isinstance(got, FeatureNotFound))
        poll(client, ["beta:clicks"], lambda got: isinstance(got, FeatureNotFound))
        # Written again in the other order, the counter (restarted at 1) gives beta key id 1,
        # alpha's old one, and alpha key id 2.
        put_family(store, layout("beta", 1), BETA)
        put_family(store, layout("alpha", 1), ALPHA)
        assert store.key_id("beta", 1, fresh=True) == "1"

        def restored(got: Any) -> bool:
            # Checked as each answer comes: never beta's values as alpha's.
            assert served_as_present(got, "alpha:clicks") in ([], [111, 112]), got
            assert served_as_present(got, "alpha@v1:clicks") in ([], [111, 112]), got
            assert "beta" not in served_as_present(got, "alpha:tier"), got
            return not isinstance(got, Exception) and got["alpha:clicks"] == [111, 112]

        answers = poll(client, REFS, restored)
    last = answers[-1]
    assert last["alpha:tier"] == ["alpha", None]
    assert last["alpha@v1:clicks"] == [111, 112]
    assert last["beta:clicks"] == [222, 223]
    assert last.statuses["alpha:clicks"] == ["PRESENT", "PRESENT"]


@pytest.mark.usefixtures("data_plane")
def test_a_version_whose_data_vanished_reads_not_found_not_another_versions(own_redis):
    """Pinned reads of a version whose records vanished: not servable, then its own values."""
    server, store = own_redis
    put_family(store, layout("alpha", 1), ALPHA)
    put_family(store, layout("beta", 1), BETA)
    refs = ["alpha@v1:clicks"]
    with running_server(store) as serving, FeatureClient(f"127.0.0.1:{serving.port}") as client:
        assert client.get_online_features({"user_id": [1, 2]}, refs)["alpha@v1:clicks"] == [
            111,
            112,
        ]
        lose_data(server, "flushall")
        poll(client, refs, lambda got: isinstance(got, FeatureNotFound))
        put_family(store, layout("beta", 1), BETA, live=False)
        put_family(store, layout("alpha", 1), ALPHA, live=False)

        def restored(got: Any) -> bool:
            assert served_as_present(got, refs[0]) in ([], [111, 112]), got
            return not isinstance(got, Exception) and got[refs[0]] == [111, 112]

        answers = poll(client, refs, restored)
    assert answers[-1].statuses[refs[0]] == ["PRESENT", "PRESENT"]


@pytest.mark.usefixtures("data_plane")
def test_a_layout_rewritten_with_another_ttl_is_applied_by_running_servers(own_redis):
    _, store = own_redis
    two_hours_old = NOW - dt.timedelta(hours=2)
    day = layout("gamma", 1, ttl=86400)
    put_family(store, day, [{"user_id": 1, "clicks": 5, "ts": two_hours_old}])
    refs = ["gamma:clicks", "gamma@v1:clicks"]
    with running_server(store) as serving, FeatureClient(f"127.0.0.1:{serving.port}") as client:
        got = client.get_online_features({"user_id": 1}, refs)
        assert got.statuses["gamma:clicks"] == ["PRESENT"]
        # The ttl set to one hour (values kept a day more), as changing a family's ttl
        # rewrites the layout's JSON.
        hour = replace(day, ttl_seconds=3600, retention_seconds=86400)
        store.client.set(store.keys.layout("gamma", 1), hour.to_json())

        def stale(answer: Any) -> bool:
            statuses = answer.statuses
            return statuses["gamma:clicks"][0] == statuses["gamma@v1:clicks"][0] == "STALE"

        answers = poll(client, refs, stale)
    assert answers[-1]["gamma:clicks"] == [5, None]
    assert answers[-1].event_times["gamma:clicks"][0] is not None


def numbers(family: str) -> FamilyLayout:
    """A layout without strings: packed, several entities to a Redis hash."""
    base = layout(family, 1)
    return replace(base, features=tuple(f for f in base.features if f[1] != "string"))


@pytest.mark.usefixtures("data_plane")
@pytest.mark.parametrize("kind", ["keyed", "packed"])
def test_values_rewritten_at_once_are_not_served_under_a_name_cached_for_a_minute(own_redis, kind):
    """The server does not re-check its caches in this test (a minute's live cache): the
    owner record read with the values is what keeps beta's values from alpha's name."""
    server, store = own_redis
    shape = layout if kind == "keyed" else lambda family, version: numbers(family)
    put_family(store, shape("alpha", 1), ALPHA)  # key id 1
    put_family(store, shape("beta", 1), BETA)  # key id 2
    refs = ["alpha:clicks", "alpha@v1:clicks"]
    with (
        running_server(store, live_cache_seconds=60) as serving,
        FeatureClient(f"127.0.0.1:{serving.port}") as client,
    ):
        assert client.get_online_features({"user_id": [1, 2]}, refs)["alpha:clicks"] == [111, 112]
        lose_data(server, "flushall")
        put_family(store, shape("beta", 1), BETA)  # key id 1, alpha's old one
        put_family(store, shape("alpha", 1), ALPHA)
        assert store.key_id("beta", 1, fresh=True) == "1"

        def restored(got: Any) -> bool:
            assert served_as_present(got, "alpha:clicks") in ([], [111, 112]), got
            assert served_as_present(got, "alpha@v1:clicks") in ([], [111, 112]), got
            return not isinstance(got, Exception) and got["alpha@v1:clicks"] == [111, 112]

        answers = poll(client, refs, restored)
    assert answers[-1].statuses["alpha:clicks"] == ["PRESENT", "PRESENT"]


def test_a_store_read_never_returns_values_of_the_version_that_drew_its_cached_key_id(
    own_redis,
):
    """``OnlineStore.read`` (verification, notebooks, on-demand inputs) caches key ids too."""
    server, store = own_redis
    alpha, beta = layout("alpha", 1), layout("beta", 1)
    put_family(store, alpha, ALPHA)
    put_family(store, beta, BETA)
    assert store.read(alpha, [1, 2]).present.tolist() == [True, True]  # key id 1 cached
    lose_data(server, "flushall")
    put_family(store, beta, BETA)  # draws key id 1 again
    assert store.read(alpha, [1, 2]).present.tolist() == [False, False]
    put_family(store, alpha, ALPHA)
    for _ in range(POLLS):  # the cached key id is trusted for half a second
        got = store.read(alpha, [1, 2])
        assert got.columns["clicks"].to_pylist() in ([None, None], [111, 112])
        if got.present.all():
            break
        time.sleep(0.05)  # polling: waiting for the store's cache to be re-read
    assert got.columns["clicks"].to_pylist() == [111, 112]
