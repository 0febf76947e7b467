"""Fixtures of the monitoring tests: a redis-server of their own for the session, and
workspaces (SQLite MLflow catalog, Parquet offline store) per test."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from servers import RedisServer, redis_server  # noqa: F401  (the session fixture)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from nbfeatures.config import Settings, load_settings
from nbfeatures.definitions import (
    Entity,
    Feature,
    FeatureFamily,
    FeatureType,
    Source,
    Transformation,
)


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:  # noqa: F811
    with redis_server.client() as client:
        yield client


def make_workspace(root: Path, redis_url: str | None = None, monitoring: str = "") -> Settings:
    """A workspace of its own: nbfeatures.yaml with an owner, a Redis and monitoring settings."""
    root.mkdir(parents=True, exist_ok=True)
    text = "owner: tests\nspark_memory: 1g\n"
    if redis_url:
        text += f"redis_url: {redis_url}\n"
    (root / "nbfeatures.yaml").write_text(text + monitoring)
    return load_settings(root, environ={})


@pytest.fixture
def workspace(tmp_path: Path) -> Settings:
    return make_workspace(tmp_path / "ws")


# ---------------------------------------------------------------------- a family with data

REFERENCE_START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
REFERENCE_END = dt.datetime(2026, 3, 21, tzinfo=dt.UTC)
TIERS = ("gold", "silver", "bronze")
TIER_SHARES = (0.2, 0.3, 0.5)
DRIFT_FEATURES = (
    Feature("amount", FeatureType.FLOAT64),
    Feature("clicks", FeatureType.INT64),
    Feature("tier", FeatureType.STRING),
    Feature("active", FeatureType.BOOL),
    Feature("seen", FeatureType.TIMESTAMP),
)


def steady_values(rng: np.random.Generator, n: int, **shift: Any) -> dict[str, list[Any]]:
    """Values of the family's features as the offline set holds them; ``shift`` changes one
    distribution: ``amount_mean``, ``tier_shares``, ``amount_nulls``."""
    amount = rng.normal(shift.get("amount_mean", 100.0), 10.0, n).round(4).tolist()
    nulls = rng.random(n) < shift.get("amount_nulls", 0.05)
    seen = REFERENCE_START + pd.to_timedelta(rng.integers(0, 86400 * 20, n), unit="s")
    return {
        "amount": [None if z else a for a, z in zip(amount, nulls, strict=True)],
        "clicks": rng.poisson(5, n).tolist(),
        "tier": rng.choice(TIERS, n, p=shift.get("tier_shares", TIER_SHARES)).tolist(),
        "active": (rng.random(n) < 0.7).tolist(),
        "seen": [t.to_pydatetime() for t in seen],
    }


@pytest.fixture(scope="session")
def drift_workspace(tmp_path_factory: pytest.TempPathFactory, spark: Any) -> Settings:
    """A workspace with ``steady`` registered (production v1) and computed over March 1-21:
    every day the same distributions, so any window's reference is alike."""
    from nbfeatures import compute
    from nbfeatures.catalog import Catalog

    settings = make_workspace(tmp_path_factory.mktemp("drift-ws"))
    rng = np.random.default_rng(7)
    n = 20 * 200
    values = steady_values(rng, n)
    times = REFERENCE_START + pd.to_timedelta(rng.integers(0, 86400 * 20, n), unit="s")
    source = pd.DataFrame({"user_id": [f"u{i % 500}" for i in range(n)], "ts": times, **values})
    path = settings.workspace / "data" / "steady.parquet"
    path.parent.mkdir(parents=True)
    source.to_parquet(path, coerce_timestamps="us", allow_truncated_timestamps=True)
    family = FeatureFamily(
        name="steady",
        entity=Entity("user", "user_id"),
        timestamp="ts",
        features=DRIFT_FEATURES,
        transformation=Transformation(
            "sql", "SELECT user_id, ts, amount, clicks, tier, active, seen FROM src"
        ),
        sources=(Source.infer("src", str(path), "ts"),),
        owner="tests",
        freshness="1h",
    )
    catalog = Catalog.from_settings(settings)
    catalog.register(family)
    catalog.set_alias("steady", "production", 1)
    compute("steady", 1, start=REFERENCE_START, end=REFERENCE_END, settings=settings,
            catalog=catalog, spark=spark, progress=False)  # fmt: skip
    return settings


from skew_fixtures import skew_world  # noqa: E402, F401  (the skew tests' promoted family)

# The Spark Connect server of the engine tests, reused (one per test run whichever folder
# starts it): its module is imported under the same name as tests/engine's conftest does.
sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from offline_fixtures import connect_spark  # noqa: E402, F401
