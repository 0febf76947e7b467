"""A small, deterministic card-transactions data set for the quickstart and for tests.

Columns: ``user_id`` (string), ``ts`` (UTC timestamp, microseconds), ``amount`` (float64),
``merchant`` (string), ``country`` (string). The same ``rows``/``users``/``seed`` always give
the same file, so outputs in a saved notebook and assertions in tests stay stable.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
from pathlib import Path

MERCHANTS = ("grocer", "fuel", "books", "travel", "cafe", "electronics")
COUNTRIES = ("DE", "FR", "NL", "US", "GB")
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def write_transactions(
    path: str | os.PathLike[str],
    *,
    rows: int = 2_000,
    users: int = 50,
    days: int = 30,
    seed: int = 7,
    end: dt.datetime | None = None,
) -> Path:
    """Write ``rows`` transactions of ``users`` users over ``days`` days to a Parquet file.

    The days start at ``START`` (fixed, so tests see the same data), or end at ``end``: a
    demo that promotes to the online store wants recent events, inside the families' ttl.
    Returns the file's path (parent folders are created).
    """
    import numpy as np

    # pyarrow ships no type information; as modules from importlib its names are typed Any.
    pa = importlib.import_module("pyarrow")
    pq = importlib.import_module("pyarrow.parquet")

    if rows <= 0 or users <= 0 or days <= 0:
        raise ValueError("rows, users and days must be positive")
    rng = np.random.default_rng(seed)
    user_index = rng.integers(0, users, size=rows)
    # Each user has a typical spend, so per-user features differ visibly in the preview.
    typical = rng.uniform(5.0, 120.0, size=users)
    amount = np.round(rng.gamma(2.0, typical[user_index] / 2.0), 2)
    offsets = np.sort(rng.integers(0, days * 86_400, size=rows))
    first = START if end is None else end - dt.timedelta(days=days)
    start_us = int(first.timestamp()) * 1_000_000
    table = pa.table(
        {
            "user_id": pa.array([f"u{i:04d}" for i in user_index], pa.string()),
            "ts": pa.array(start_us + offsets * 1_000_000, pa.timestamp("us", tz="UTC")),
            "amount": pa.array(amount, pa.float64()),
            "merchant": pa.array(rng.choice(MERCHANTS, size=rows).tolist(), pa.string()),
            "country": pa.array(rng.choice(COUNTRIES, size=rows).tolist(), pa.string()),
        }
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target)
    return target
