"""Fixtures of the runner, CLI and scheduler tests: a workspace with real promoted families.

``promoted_workspace`` (once per test run) builds, with real parts only:
- a SQLite MLflow catalog and this run's own redis-server;
- ``fresh_spend``: demo transactions up to now, promoted (compute on the session Spark,
  materialize, verify, flip: the promotion notebook's own steps, run in this process), then
  read through a real feature server logging every vector, and the log flushed to Parquet;
- ``old_spend``: the same SQL over transactions that stopped 20 days ago with a 1 hour
  freshness SLA, promoted likewise: its freshness report alerts.
"""

from __future__ import annotations

import datetime as dt
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import RedisServer

from nbfeatures.config import Settings, load_settings
from nbfeatures.definitions import (
    Entity,
    Feature,
    FeatureFamily,
    FeatureType,
    Source,
    Transformation,
)

FRESH = "fresh_spend"
OLD = "old_spend"
SQL = (
    "SELECT user_id, date_trunc('DAY', ts) AS ts, count(*) AS txn_count, "
    "sum(amount) AS spend FROM {table} GROUP BY user_id, date_trunc('DAY', ts)"
)
USERS = [f"u{i:04d}" for i in range(1, 21)]


@dataclass(frozen=True)
class PromotedWorkspace:
    settings: Settings
    metrics_text: str  # the Python server's /metrics after it served requests


def family(name: str, table: str, data: Path, freshness: str) -> FeatureFamily:
    return FeatureFamily(
        name=name,
        entity=Entity("user", "user_id"),
        timestamp="ts",
        features=(Feature("txn_count", FeatureType.INT64), Feature("spend", FeatureType.FLOAT64)),
        transformation=Transformation("sql", SQL.format(table=table)),
        sources=(Source.infer(table, str(data), "ts"),),
        owner="payments-team",
        ttl="60d",
        freshness=freshness,
    )


def promote_in_process(settings: Settings, name: str) -> None:
    """The promotion notebook's steps, in this process (on the session's Spark)."""
    from nbfeatures.promotion.steps import PromotionRun
    from nbfeatures.promotion.tracking import finish_run, start_run

    run_id = start_run(settings, name, None, "promotion")
    run = PromotionRun(settings, name, None, run_id)
    run.load()
    run.compute()
    run.materialize()
    run.verify(10, allow_expired=True)
    run.flip()
    run.record()
    finish_run(settings, run_id, notebook=None, tags={"outcome": "succeeded"}, failed=False)


def serve_and_log(settings: Settings) -> str:
    """Read every user of ``FRESH`` through a logging server; flush the log; return /metrics."""
    from nbfeatures.client import FeatureClient
    from nbfeatures.online.store import OnlineStore
    from nbfeatures.serving.config import ServerConfig
    from nbfeatures.serving.factory import create_server
    from nbfeatures.serving.vector_log import flush_served_log

    config = ServerConfig(port=0, metrics_port=0, log_sample_rate=1.0)
    store = OnlineStore.from_settings(settings)
    server, port = create_server(config, store)
    server.start()
    try:
        with FeatureClient(f"127.0.0.1:{port}") as client:
            for start in range(0, len(USERS), 5):
                batch = USERS[start : start + 5]
                client.get_online_features({"user_id": batch}, [f"{FRESH}:*", f"{OLD}:*"])
        metrics_port = server.metrics_port
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as answer:
            metrics = answer.read().decode()
    finally:
        server.stop(grace=1.0)
    moved, _ = flush_served_log(store.client, config.log_stream, settings.offline)
    assert moved == len(USERS) // 5  # one log entry per request
    return metrics


@pytest.fixture(scope="session")
def promoted_workspace(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, spark: object
) -> PromotedWorkspace:
    from nbfeatures.catalog import Catalog
    from nbfeatures.demo_data import write_transactions

    root = tmp_path_factory.mktemp("runner-ws")
    # The session Spark's memory and connector, so the steps reuse it instead of a new one.
    (root / "nbfeatures.yaml").write_text(
        f"owner: tests\nredis_url: {redis_server.url}\nspark_memory: 2g\ngcs_connector: true\n"
    )
    settings = load_settings(root, environ={})
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    fresh = write_transactions(root / "data" / "fresh.parquet", rows=600, users=20, days=10,
                               end=now)  # fmt: skip
    old = write_transactions(root / "data" / "old.parquet", rows=300, users=20, days=10,
                             end=now - dt.timedelta(days=20))  # fmt: skip
    catalog = Catalog.from_settings(settings)
    catalog.register(family(FRESH, "fresh_txns", fresh, "1d"))
    catalog.register(family(OLD, "old_txns", old, "1h"))
    for name in (FRESH, OLD):
        promote_in_process(settings, name)
    return PromotedWorkspace(settings, serve_and_log(settings))
