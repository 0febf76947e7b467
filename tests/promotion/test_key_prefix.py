"""The workspace's ``key_prefix``: promotion writes under it and the server reads under it.

One promotion (papermill, a kernel with its own Spark) into a workspace whose
``nbfeatures.yaml`` names its own prefix, on this run's real Redis; a gRPC server started
from that workspace then serves the values. The default prefix stays ``nbf:``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from servers import RedisServer

from nbfeatures.config import Settings, load_settings
from nbfeatures.errors import ConfigError
from nbfeatures.online.store import OnlineStore
from nbfeatures.serving.config import ServerConfig, key_prefix

from .conftest import SQL_V1, family, forget_family

NAME = "prefixed_spend"


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Settings:
    """A workspace of its own (its own MLflow database), keys under a prefix of its own."""
    root = tmp_path_factory.mktemp("prefix-ws")
    prefix = f"nbfkp-{uuid.uuid4().hex[:8]}:"
    (root / "nbfeatures.yaml").write_text(
        f'owner: tests\nredis_url: {redis_server.url}\nspark_memory: 1g\nkey_prefix: "{prefix}"\n'
    )
    return load_settings(root, environ={})


@pytest.fixture(scope="module")
def promoted(prefixed: Settings) -> Iterator[Path]:
    from nbfeatures.catalog import Catalog
    from nbfeatures.demo_data import write_transactions
    from nbfeatures.promotion import promote

    data = write_transactions(prefixed.workspace / "data" / "transactions.parquet",
                              rows=200, users=10, days=5)  # fmt: skip
    Catalog.from_settings(prefixed).register(family(NAME, SQL_V1, data))
    record = promote(prefixed, NAME, 1)
    assert record.results["verify"]["ok"]
    yield data
    forget_family(OnlineStore.from_settings(prefixed), NAME, [1])


@pytest.mark.integration
def test_promotion_writes_under_the_workspace_prefix_and_the_server_reads_there(
    prefixed: Settings, promoted: Path, redis_server: RedisServer
) -> None:
    from nbfeatures.client import FeatureClient
    from nbfeatures.serving.factory import create_server
    from nbfeatures.serving.main import open_store

    store = OnlineStore.from_settings(prefixed)
    assert store.prefix == prefixed.key_prefix != "nbf:"
    assert store.live_version(NAME) == 1
    assert OnlineStore.from_url(redis_server.url).live_version(NAME) is None  # nothing at nbf:
    assert not list(store.client.scan_iter(match=f"nbf:*{NAME}*"))

    rows = pd.read_parquet(promoted).sort_values("ts").groupby("user_id").last()
    users = [str(u) for u in rows.index]
    config = ServerConfig(port=0, metrics_port=None, health_interval_seconds=0.1)
    served_store = open_store(prefixed, config)
    assert served_store.prefix == prefixed.key_prefix
    server, port = create_server(config, served_store)
    server.start()
    try:
        with FeatureClient(f"127.0.0.1:{port}", timeout=10.0) as client:
            got = client.get_online_features({"user_id": users}, [f"{NAME}:amount"])
    finally:
        server.stop(grace=1.0)
        served_store.close()
    assert got[f"{NAME}:amount"] == [float(a) for a in rows["amount"]]


def test_a_server_prefix_that_differs_from_the_workspace_prefix_is_refused(
    tmp_path: Path,
) -> None:
    workspace = load_settings(tmp_path, environ={"NBF_KEY_PREFIX": "team-a:"})
    assert key_prefix(workspace, ServerConfig()) == "team-a:"
    assert key_prefix(workspace, ServerConfig(key_prefix="team-a:")) == "team-a:"
    with pytest.raises(ConfigError, match=r"'team-b:'.*'team-a:'") as refused:
        key_prefix(workspace, ServerConfig(key_prefix="team-b:"))
    assert refused.value.key == "serve.key_prefix"


def test_a_workspace_that_names_the_default_prefix_is_held_to_it(tmp_path: Path) -> None:
    (tmp_path / "nbfeatures.yaml").write_text('key_prefix: "nbf:"\n')
    named = load_settings(tmp_path, environ={})
    assert named.key_prefix == "nbf:" and "key_prefix" in named.given
    with pytest.raises(ConfigError, match=r"'edge:' differs from the workspace's key_prefix"):
        key_prefix(named, ServerConfig(key_prefix="edge:"))
    from_env = load_settings(tmp_path / "none", environ={"NBF_KEY_PREFIX": "nbf:"})
    with pytest.raises(ConfigError, match="'edge:'"):
        key_prefix(from_env, ServerConfig(key_prefix="edge:"))
    # Said nowhere: the server's prefix is taken (as before there was a workspace setting).
    unnamed = load_settings(tmp_path / "none", environ={})
    assert "key_prefix" not in unnamed.given
    assert key_prefix(unnamed, ServerConfig(key_prefix="edge:")) == "edge:"


def test_the_default_prefix_is_unchanged(tmp_path: Path, redis_server: RedisServer) -> None:
    default = load_settings(tmp_path, environ={}, redis_url=redis_server.url)
    assert default.key_prefix == "nbf:"
    assert OnlineStore.from_settings(default).prefix == "nbf:"
    assert key_prefix(default, ServerConfig()) == "nbf:"
    # A serving key_prefix still overrides a workspace that names none.
    assert key_prefix(default, ServerConfig(key_prefix="edge:")) == "edge:"
    from_file = tmp_path / "nbfeatures.yaml"
    from_file.write_text('key_prefix: "ws:"\n')
    assert load_settings(tmp_path, environ={}).key_prefix == "ws:"
    with pytest.raises(ConfigError, match="must not be empty"):
        Settings(workspace=tmp_path, key_prefix="")
