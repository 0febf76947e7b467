"""Deterministic Parquet inputs for the point-in-time join benchmark (numpy + pyarrow).

Two files per size, read by both systems:

- ``features.parquet``: ``entity_id`` (int64), ``event_timestamp`` (UTC, microseconds, uniform
  over 30 days) and ten float64 features ``f0``..``f9``.
- ``spine.parquet``: ``spine_id`` (row number, to line the two outputs up), ``entity_id``,
  ``event_timestamp`` (uniform over the same 30 days) and an int ``label``.

Entity ids are drawn uniformly, so each entity has about ten feature rows over the month; with
a 7-day ttl most spine rows find a value and some (early in the month, or past the ttl) do not.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATA = Path(__file__).resolve().parent.parent / ".data" / "offline_pit"
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
SPAN = dt.timedelta(days=30)
FEATURES = tuple(f"f{i}" for i in range(10))
SEED = 20240101


@dataclass(frozen=True)
class Size:
    name: str
    feature_rows: int
    entities: int
    spine_rows: int


SIZES = {
    "small": Size("small", 1_000_000, 100_000, 100_000),
    "large": Size("large", 10_000_000, 1_000_000, 1_000_000),
}


def paths(size: Size) -> tuple[Path, Path]:
    """(features, spine) Parquet files of ``size``."""
    folder = DATA / size.name
    return folder / "features.parquet", folder / "spine.parquet"


def _times(rng: np.random.Generator, n: int) -> pa.Array:
    start_us = int(START.timestamp() * 1_000_000)
    span_us = SPAN // dt.timedelta(microseconds=1)
    micros = start_us + rng.integers(0, span_us, size=n, dtype=np.int64)
    return pa.array(micros, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def generate(size: Size) -> tuple[Path, Path]:
    """Write the two files of ``size`` unless they exist; return their paths."""
    features_path, spine_path = paths(size)
    if features_path.exists() and spine_path.exists():
        return features_path, spine_path
    features_path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED + size.feature_rows)
    columns: dict[str, pa.Array] = {
        "entity_id": pa.array(rng.integers(0, size.entities, size=size.feature_rows)),
        "event_timestamp": _times(rng, size.feature_rows),
    }
    for name in FEATURES:
        columns[name] = pa.array(rng.standard_normal(size.feature_rows))
    # Row groups of ~1M rows: both readers can split the file into tasks.
    pq.write_table(pa.table(columns), features_path, row_group_size=1_000_000)
    spine = pa.table(
        {
            "spine_id": pa.array(np.arange(size.spine_rows, dtype=np.int64)),
            "entity_id": pa.array(rng.integers(0, size.entities, size=size.spine_rows)),
            "event_timestamp": _times(rng, size.spine_rows),
            "label": pa.array(rng.integers(0, 2, size=size.spine_rows)),
        }
    )
    pq.write_table(spine, spine_path, row_group_size=1_000_000)
    return features_path, spine_path


if __name__ == "__main__":
    for each in SIZES.values():
        print(*generate(each))
