"""Workspaces and the spend family that several test folders build the same way.

- ``write_workspace(root, redis_url, extra)``: a workspace folder whose ``nbfeatures.yaml``
  names an owner, a small Spark memory and (optionally) a Redis; ``extra`` is more YAML.
- ``SPEND_SQL``, ``SPEND_FEATURES``, ``spend_family(name, sql, data)``: one family over the
  demo transactions with a feature of each stored kind (float64, float32, string, int64).
"""

from __future__ import annotations

from pathlib import Path

from nbfeatures.config import Settings, load_settings
from nbfeatures.definitions import (
    Entity,
    Feature,
    FeatureFamily,
    FeatureType,
    Source,
    Transformation,
)

SPEND_SQL = (
    "SELECT user_id, ts, amount, CAST(amount AS FLOAT) AS amount32, merchant, "
    "CAST(amount * 100 AS BIGINT) AS cents FROM transactions"
)
SPEND_FEATURES = (
    Feature("amount", FeatureType.FLOAT64),
    Feature("amount32", FeatureType.FLOAT32),
    Feature("merchant", FeatureType.STRING),
    Feature("cents", FeatureType.INT64),
)


def write_workspace(root: Path, redis_url: str | None = None, extra: str = "") -> Settings:
    """A workspace of its own, read without the environment (the kernel reads the file too)."""
    root.mkdir(parents=True, exist_ok=True)
    text = "owner: tests\nspark_memory: 1g\n"
    if redis_url:
        text += f"redis_url: {redis_url}\n"
    (root / "nbfeatures.yaml").write_text(text + extra)
    return load_settings(root, environ={})


def spend_family(name: str, sql: str, data: Path) -> FeatureFamily:
    """The spend family named ``name``, computed by ``sql`` over the transactions at ``data``."""
    return FeatureFamily(
        name=name,
        entity=Entity("user", "user_id"),
        timestamp="ts",
        features=SPEND_FEATURES,
        transformation=Transformation("sql", sql),
        sources=(Source.infer("transactions", str(data), "ts"),),
        owner="tests",
    )
