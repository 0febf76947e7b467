"""Workspaces and a steadily distributed family for the drift, freshness and runner tests.

Kept out of conftest.py so test modules can import the helpers by a name no other test
folder uses (several folders have a conftest module).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from workspaces import write_workspace

from nbfeatures.config import Settings
from nbfeatures.definitions import (
    Entity,
    Feature,
    FeatureFamily,
    FeatureType,
    Source,
    Transformation,
)


def make_workspace(root: Path, redis_url: str | None = None, monitoring: str = "") -> Settings:
    """A workspace of its own with a Redis and monitoring settings."""
    return write_workspace(root, redis_url, monitoring)


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
