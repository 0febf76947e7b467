"""Benchmark data: N entities x 10 float64 features, one row per entity, as Parquet.

Written in chunks so generating 3M rows needs little memory. Event times are within the last
hour so a 7-day ttl keeps every row (both systems write every entity).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FEATURES = tuple(f"f{i}" for i in range(10))
DATA_ROOT = Path(__file__).resolve().parents[1] / ".data" / "materialize"
_CHUNK = 250_000


def data_path(entities: int) -> Path:
    return DATA_ROOT / f"entities_{entities}.parquet"


def generate(entities: int) -> Path:
    """Write (once) and return the Parquet file for ``entities`` entities."""
    path = data_path(entities)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)
    schema = pa.schema(
        [("entity_id", pa.int64()), ("event_timestamp", pa.timestamp("us", tz="UTC"))]
        + [(f, pa.float64()) for f in FEATURES]
    )
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, entities, _CHUNK):
            n = min(_CHUNK, entities - start)
            columns = {
                "entity_id": np.arange(start, start + n, dtype=np.int64),
                "event_timestamp": pa.array(
                    now - rng.integers(0, 3_600_000_000, n), pa.timestamp("us", tz="UTC")
                ),
                **{f: rng.random(n) for f in FEATURES},
            }
            writer.write_table(pa.table(columns, schema=schema))
    tmp.rename(path)
    return path
