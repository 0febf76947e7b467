"""Offline folders for join-index tests: a table stored as ``compute_offline`` leaves it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nbfeatures.engine.arrow.join_index import JoinIndex, build_index, open_index
from nbfeatures.engine.arrow.rows import ParquetRows
from nbfeatures.engine.offline_store import Manifest, arrow_dataset

NOW = dt.datetime(2024, 4, 1, tzinfo=dt.UTC)


def offline_folder(
    table: pa.Table, root: Path, key: str = "user_id", timestamp: str = "ts", days: int = 2
) -> tuple[Manifest, str]:
    """``table`` stored as a version folder: its rows dealt over ``days`` date partitions."""
    path = root / "f" / "v1"
    partitions = {}
    for day in range(days):
        part = table.filter(pa.array(np.arange(table.num_rows) % days == day))
        date = f"2024-03-0{day + 1}"
        folder = path / f"event_date={date}"
        folder.mkdir(parents=True)
        pq.write_table(part, folder / "part-0.parquet", row_group_size=50)
        partitions[date] = {"rows": part.num_rows, "entities": 0}
    manifest = Manifest(
        family="f",
        version=1,
        hash="h" * 64,
        entity_key=key,
        timestamp=timestamp,
        spark_version="test",
        created_at=NOW,
        updated_at=NOW,
        partitions=partitions,
    )
    return manifest, str(path)


def indexed(
    table: pa.Table,
    root: Path,
    features: tuple[str, ...],
    key: str = "user_id",
    timestamp: str = "ts",
) -> JoinIndex:
    """The memory-mapped join index of ``table`` stored under ``root``."""
    manifest, path = offline_folder(table, root, key, timestamp)
    assert build_index(manifest, path, features) is not None
    index = open_index(manifest, path, lambda: ParquetRows.from_dataset(arrow_dataset(path)))
    assert index is not None
    return index
