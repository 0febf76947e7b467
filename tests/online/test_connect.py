"""Connecting by URL: AUTH against a real password-protected server, refusals, bad URLs."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest
from servers import RedisServer, free_port

from nbfeatures.errors import OnlineStoreError, OnlineStoreUnavailable
from nbfeatures.online import FamilyLayout, OnlineStore
from nbfeatures.online.connect import client_from_url, is_cluster_url, redacted

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-pw"


@pytest.fixture(scope="module")
def auth_port() -> Iterator[int]:
    """A private redis-server with ``requirepass`` (also free to reconfigure, unlike 6379)."""
    server = RedisServer(password=PASSWORD)
    server.start()
    yield server.port
    server.stop()


def test_right_password_connects(auth_port: int) -> None:
    store = OnlineStore.from_url(f"redis://:{PASSWORD}@127.0.0.1:{auth_port}/0")
    assert store.live_version("anything") is None
    store.close()


def test_wrong_or_missing_password_is_a_clear_error(auth_port: int) -> None:
    with pytest.raises(OnlineStoreUnavailable, match="authentication failed") as raised:
        client_from_url(f"redis://:wrong@127.0.0.1:{auth_port}/0")
    assert "wrong" not in str(raised.value) and "***" in str(raised.value)
    with pytest.raises(OnlineStoreUnavailable, match="authentication failed"):
        client_from_url(f"redis://127.0.0.1:{auth_port}/0")


def test_unreachable_server_names_the_target() -> None:
    port = free_port()
    with pytest.raises(OnlineStoreUnavailable, match=f"127.0.0.1:{port}.*cannot connect"):
        client_from_url(f"redis://127.0.0.1:{port}/0")


def test_a_write_redis_refuses_is_reported_and_the_connection_recovers(auth_port: int) -> None:
    store = OnlineStore.from_url(f"redis://:{PASSWORD}@127.0.0.1:{auth_port}/0")
    layout = FamilyLayout("f", 1, "h", "id", "ts", (("x", "float64"),))
    batch = pa.RecordBatch.from_pydict(
        {
            "id": np.arange(500),
            "ts": pa.array(np.full(500, 1_700_000_000_000_000), pa.timestamp("us", "UTC")),
            "x": np.ones(500),
        }
    )
    store.write_layout(layout)  # as materialization does: the version's key id exists
    store.client.config_set("maxmemory", "1")
    try:
        with pytest.raises(OnlineStoreError, match="refused a write: OOM"):
            store.write_rows(layout, batch)
    finally:
        store.client.config_set("maxmemory", "0")
    assert store.write_rows(layout, batch) == 500
    assert store.read(layout, [499]).columns["x"].to_pylist() == [1.0]
    store.close()


def test_url_helpers() -> None:
    assert is_cluster_url("redis+cluster://h:7000") and is_cluster_url("rediss+cluster://h:1")
    assert not is_cluster_url("rediss://h:6380")
    assert redacted("rediss://user:pw@h:6380/0") == "rediss://user:***@h:6380/0"
    assert redacted("redis://h:6379") == "redis://h:6379"
