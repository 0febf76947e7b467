"""The server's pipelined Redis connection with AUTH and a database chosen by the URL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
from servers import RedisServer
from serving_fixtures import layout, open_store, put_family, running_server

from nbfeatures.client import FeatureClient
from nbfeatures.serving.redis_pipe import RedisPipe, open_pipe

pytestmark = pytest.mark.integration
PASSWORD = "pipe-s3cret"


@pytest.fixture(scope="module")
def locked_redis() -> Iterator[int]:
    """A redis-server of this module's own that demands a password."""
    server = RedisServer(password=PASSWORD)
    server.start()
    yield server.port
    server.stop()


def test_server_reads_through_the_pipe_with_auth_and_a_database(locked_redis: int) -> None:
    # Database 3, so a pipe that skipped SELECT would read database 0 and find nothing.
    url = f"redis://:{PASSWORD}@127.0.0.1:{locked_redis}/3"
    store = open_store(url)
    try:
        put_family(store, layout("users", 1), [{"user_id": 5, "clicks": 11, "tier": "gold"}])
        with running_server(store) as server:
            assert isinstance(server.pipe, RedisPipe)  # the pipelined path, not redis.asyncio
            with FeatureClient(f"127.0.0.1:{server.port}") as client:
                got = client.get_online_features({"user_id": [5, 6]}, ["users:clicks"])
        assert got["users:clicks"] == [11, None]
        with redis.Redis(port=locked_redis, password=PASSWORD, db=0) as db0:
            assert db0.dbsize() == 0
    finally:
        store.close()


def test_a_wrong_password_is_a_connection_error_naming_the_refusal(locked_redis: int) -> None:
    pipe = open_pipe(f"redis://:wrong@127.0.0.1:{locked_redis}/0", timeout=2.0)
    assert pipe is not None
    with pytest.raises(redis.ConnectionError, match="Redis refused the connection"):
        asyncio.run(pipe.mget([b"any"]))


def test_commands_sent_together_answer_in_order_and_an_error_fails_them_all(
    locked_redis: int,
) -> None:
    """``many``: one write, one future; the next call on the connection is still in step."""
    pipe = open_pipe(f"redis://:{PASSWORD}@127.0.0.1:{locked_redis}/5", timeout=2.0)
    assert pipe is not None
    with redis.Redis(port=locked_redis, password=PASSWORD, db=5) as db:
        db.hset("h", mapping={"a": "1", "b": "2"})
        db.set("s", "plain")

    def hmget(key: bytes, *fields: bytes) -> bytes:
        parts = [b"HMGET", key, *fields]
        return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%b\r\n" % (len(p), p) for p in parts)

    async def run() -> tuple[list[object], list[bytes | None]]:
        good = await pipe.many(hmget(b"h", b"a", b"b") + hmget(b"h", b"zz") + hmget(b"h", b"b"), 3)
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            await pipe.many(hmget(b"h", b"a") + hmget(b"s", b"a"), 2)
        after = await pipe.mget([b"s"])
        pipe.close()  # on the loop that owns the connection
        return good, after

    try:
        good, after = asyncio.run(run())
        assert good == [[b"1", b"2"], [None], [b"2"]]
        assert after == [b"plain"]
    finally:
        with redis.Redis(port=locked_redis, password=PASSWORD, db=5) as db:
            db.flushdb()
