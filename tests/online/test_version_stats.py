"""Per-version numbers for ``nbfeatures status``, and packed bucket sizing from real counts."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nbfeatures.materialization import materialize
from nbfeatures.online import FamilyLayout, OnlineStore
from nbfeatures.online.version_stats import version_stats

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)  # for values without a ttl only


def now() -> dt.datetime:
    """Ages are taken from the test's own now: a long session ages import-time values."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def numbers_layout(ttl: int | None = 3600, strings: bool = False) -> FamilyLayout:
    features = (("total", "float64"), ("count", "int64"))
    return FamilyLayout(
        family="stats_fam",
        version=1,
        hash="h1",
        entity_key="user_id",
        timestamp="ts",
        features=(*features, ("city", "string")) if strings else features,
        ttl_seconds=ttl,
    )


def batch(at: dt.datetime, ages_s: list[int], strings: bool = False) -> pa.RecordBatch:
    n = len(ages_s)
    columns = {
        "user_id": pa.array(range(n), pa.int64()),
        "ts": pa.array([at - dt.timedelta(seconds=a) for a in ages_s], pa.timestamp("us", "UTC")),
        "total": pa.array([1.5] * n, pa.float64()),
        "count": pa.array([3] * n, pa.int64()),
    }
    if strings:
        columns["city"] = pa.array(["x"] * n, pa.string())
    return pa.RecordBatch.from_pydict(columns)


@pytest.mark.parametrize("strings", [False, True], ids=["packed", "keyed"])
def test_entities_newest_event_time_and_expired_share(store: OnlineStore, strings: bool) -> None:
    layout = numbers_layout(strings=strings)
    target = store.write_layout(layout, entities=8)
    assert (target.packing is None) == strings
    # Four fresh values, six past the 1 h ttl (kept: the retention is another hour).
    at = now()
    store.write_rows(
        layout, batch(at, [10, 20, 30, 40, 4000, 4000, 4000, 5000, 6000, 7000], strings)
    )
    stats = version_stats(store, "stats_fam", 1)
    assert stats is not None
    assert (stats.entities, stats.sampled) == (10, 10)
    assert stats.newest == at - dt.timedelta(seconds=10)
    assert stats.expired_share == pytest.approx(0.6)
    assert "entities 10" in stats.line() and "expired 60% (ttl 1h)" in stats.line()
    assert "sample" not in stats.line()

    few = version_stats(store, "stats_fam", 1, sample=3)
    assert few is not None and few.sampled == 3 and "from a sample of 3" in few.line()
    assert version_stats(store, "stats_fam", 2) is None  # no layout


def write_numbers(path: Path, users: int) -> str:
    table = pa.table(
        {
            "user_id": pa.array(np.arange(users, dtype=np.int64)),
            "ts": pa.array(np.full(users, np.datetime64(NOW.replace(tzinfo=None), "us"))).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "total": pa.array(np.arange(users, dtype=np.float64)),
            "count": pa.array(np.ones(users, dtype=np.int64)),
        }
    )
    pq.write_table(table, path / "part.parquet")
    return str(path)


def fields_per_bucket(store: OnlineStore, layout: FamilyLayout) -> list[int]:
    key_id = store.key_id(layout.family, layout.version)
    assert key_id is not None
    buckets = list(store.client.scan_iter(match=store.keys.values_pattern(key_id), count=5000))
    pipe = store.client.pipeline(transaction=False)
    for bucket in buckets:
        pipe.hlen(bucket)
    return [int(n) for n in pipe.execute()]


@pytest.mark.parametrize("users", [3, 600_000], ids=["small", "large"])
def test_buckets_are_sized_from_the_real_entity_count(
    local_redis_url: str, tmp_path: Path, users: int
) -> None:
    """The Arrow writer sizes a packed version from the entities it picks (the promotion from
    the offline manifest): few buckets for 3 entities, <= 128 fields a bucket for 600k."""
    import uuid

    store = OnlineStore.from_url(local_redis_url, prefix=f"nbftest-{uuid.uuid4().hex[:12]}:")
    layout = replace(numbers_layout(ttl=None), family=f"size_{users}")
    try:
        done = materialize(write_numbers(tmp_path, users), layout, store, engine="arrow")
        assert done.rows == users
        packing = store.packing(layout.family, 1, fresh=True)
        assert packing is not None
        counts = fields_per_bucket(store, layout)
        if users == 3:
            assert packing.buckets == 1 and counts == [3]
        else:
            assert packing.buckets >= users // 12
            assert max(counts) <= 128  # Redis's listpack limit: buckets stay compact
            assert sum(counts) == users * packing.chunks
    finally:
        for key in store.client.scan_iter(match=f"{store.prefix}*", count=5000):
            store.client.unlink(key)
        store.close()
