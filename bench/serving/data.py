"""The serving benchmark's data and request entity sets (numpy + pyarrow, fixed seeds).

One Parquet file, ``bench/.data/serving/features.parquet``: ``ENTITIES`` distinct int64 entity
ids, an event time within the last day (so a 7-day ttl never expires a value) and ``FEATURES``
float64 features ``f0`` ... ``f49``. Both systems are loaded from this file.

``entity_sets(n, count, seed)`` draws the entity ids of ``count`` requests of ``n`` entities
each from the populated ids; both systems get the same sets for a case.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "bench" / ".data" / "serving"
PARQUET = DATA_DIR / "features.parquet"
ENTITIES = 100_000
FEATURES = tuple(f"f{i}" for i in range(50))
FAMILY = "bench_features"
ENTITY_KEY = "entity_id"
TIMESTAMP = "event_timestamp"


def generate(path: Path = PARQUET, entities: int = ENTITIES) -> Path:
    """Write the feature table once (kept if it exists with the right row count)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists() and pq.read_metadata(path).num_rows == entities:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240601)
    ids = rng.choice(10**12, size=entities, replace=False).astype(np.int64)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    now_us = np.datetime64(now, "us")
    ages = rng.integers(60_000_000, 86_400_000_000, size=entities).astype("timedelta64[us]")
    columns: dict[str, pa.Array] = {
        ENTITY_KEY: pa.array(ids, pa.int64()),
        TIMESTAMP: pa.array(now_us - ages, pa.timestamp("us", tz="UTC")),
    }
    for name in FEATURES:
        columns[name] = pa.array(rng.standard_normal(entities), pa.float64())
    pq.write_table(pa.table(columns), path)
    return path


def entity_ids(path: Path = PARQUET) -> np.ndarray:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=[ENTITY_KEY]).column(0).to_numpy()


def entity_sets(ids: np.ndarray, n: int, count: int, seed: int) -> list[list[int]]:
    """``count`` requests of ``n`` distinct populated ids each."""
    rng = np.random.default_rng(seed)
    return [[int(x) for x in rng.choice(ids, size=n, replace=False)] for _ in range(count)]
