"""A promoted family served by a real feature server, for the skew tests.

``skew_world`` (one per module) is a workspace with a SQLite MLflow catalog on the monitoring
tests' redis-server; in it ``skew_spend`` is registered, computed on the session Spark into
the offline store, materialized into Redis and flipped live with its ``production`` alias:
what a promotion does, by the library calls the promotion notebook makes.
``serve_and_log`` asks a real server (``log_sample_rate=1.0``) for features with the
``FeatureClient`` and flushes the served-vector log to Parquet with ``flush_served_log``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from servers import RedisServer
from workspaces import SPEND_SQL, spend_family

from nbfeatures.config import Settings, load_settings
from nbfeatures.definitions import (
    FeatureFamily,
)
from nbfeatures.online import FamilyLayout, OnlineStore

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog

# The "deliberately changed transformation": cents computed with another factor.
SPEND_SQL_CHANGED = SPEND_SQL.replace("amount * 100", "amount * 1000")
RATIO_BODY = """
def skew_ratio(df):
    return pd.DataFrame({"double_amount": df["{family}__amount"] * 2.0,
                         "big": df["{family}__cents"] > 5000})
"""


@dataclass
class SkewWorld:
    settings: Settings
    catalog: Catalog
    store: OnlineStore
    transactions: Path
    users: list[str]


def ratio_family(name: str, inputs_of: str, factor: str = "2.0") -> FeatureFamily:
    from nbfeatures.on_demand import define_on_demand

    body = RATIO_BODY.replace("{family}", inputs_of).replace("* 2.0", f"* {factor}")
    return define_on_demand(
        name,
        body,
        entity_key="user_id",
        inputs={f"{inputs_of}:amount": "float64", f"{inputs_of}:cents": "int64"},
        request={},
        owner="tests",
    )


def promote(world: SkewWorld, family: FeatureFamily, spark: Any) -> int:
    """Register, compute, materialize and flip ``family`` live; returns its version."""
    from nbfeatures import compute
    from nbfeatures.materialization import materialize_version
    from nbfeatures.promotion.switch import flip_together

    version = world.catalog.register(family).version.version
    compute(family.name, version, settings=world.settings, catalog=world.catalog, spark=spark,
            progress=False)  # fmt: skip
    layout = FamilyLayout.of(family, version)
    world.store.write_layout(layout)
    materialize_version(world.settings, layout, engine="arrow")
    flip_together(world.store, world.catalog, family.name, version,
                  world.store.live_version(family.name))  # fmt: skip
    return version


def promote_on_demand(world: SkewWorld, family: FeatureFamily) -> int:
    """Register an on-demand family, publish it for the server, make it production."""
    from nbfeatures.on_demand import publish_on_demand

    version = world.catalog.register(family).version.version
    publish_on_demand(world.store, family, version)
    world.catalog.set_alias(family.name, "production", version)
    return version


def write_source(path: Path, end: dt.datetime) -> Path:
    from nbfeatures.demo_data import write_transactions

    return write_transactions(path, rows=300, users=12, days=5, end=end)


@pytest.fixture(scope="module")
def skew_world(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, spark: Any
) -> Iterator[SkewWorld]:
    root = tmp_path_factory.mktemp("skew-ws")
    (root / "nbfeatures.yaml").write_text(
        f"owner: tests\nredis_url: {redis_server.url}\nspark_memory: 1g\n"
    )
    settings = load_settings(root, environ={})
    source = write_source(root / "data" / "transactions.parquet",
                          dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))  # fmt: skip
    import pyarrow.parquet as pq

    from nbfeatures.catalog import Catalog

    users = sorted(set(pq.read_table(source, columns=["user_id"])["user_id"].to_pylist()))
    store = OnlineStore.from_settings(settings)
    world = SkewWorld(settings, Catalog.from_settings(settings), store, source, users)
    promote(world, spend_family("skew_spend", SPEND_SQL, source), spark)
    promote_on_demand(world, ratio_family("skew_ratio", "skew_spend"))
    yield world
    for key in store.client.scan_iter(match="*skew_*", count=1000):
        store.client.delete(key)
    store.close()


@contextmanager
def feature_server(store: OnlineStore, stream: str) -> Iterator[Any]:
    """A real feature server on a free port, logging every request to ``stream``."""
    from nbfeatures.serving.config import ServerConfig
    from nbfeatures.serving.factory import create_server

    config = ServerConfig(
        port=0,
        metrics_port=0,
        health_interval_seconds=0.1,
        live_cache_seconds=0.2,
        log_sample_rate=1.0,
        log_stream=stream,
    )
    server, _ = create_server(config, store)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)  # writes what the log queue holds before the thread ends


def serve_and_log(
    world: SkewWorld,
    requests: Sequence[tuple[Mapping[str, Sequence[Any]], Sequence[str]]],
) -> tuple[dt.datetime, dt.datetime, list[Any]]:
    """Send each (entities, features) request to a real server; flush its log to Parquet.

    Returns the window holding exactly these requests and the answers.
    """
    from nbfeatures.client import FeatureClient
    from nbfeatures.serving.vector_log import flush_served_log

    stream = f"skew-log:{uuid.uuid4().hex[:8]}"
    start = dt.datetime.now(dt.UTC)
    answers = []
    with (
        feature_server(world.store, stream) as server,
        FeatureClient(f"127.0.0.1:{server.port}") as client,
    ):
        for entities, features in requests:
            answers.append(client.get_online_features(dict(entities), list(features)))
    end = dt.datetime.now(dt.UTC) + dt.timedelta(microseconds=1)
    moved, _ = flush_served_log(world.store.client, stream, world.settings.offline)
    assert moved == len(requests)
    world.store.client.delete(stream)
    return start, end, answers
