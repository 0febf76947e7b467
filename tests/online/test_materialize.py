"""Spark materialization into each real Redis backend: full, as-of, incremental, batches."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from nbfeatures.online import FamilyLayout, OnlineStore
from nbfeatures.online.materialize import materialize

pytestmark = pytest.mark.integration

BASE = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=5)
LAYOUT = FamilyLayout(
    family="txn_stats",
    version=1,
    hash="h1",
    entity_key="user_id",
    timestamp="ts",
    features=(("total", "float64"), ("count", "int64"), ("city", "string")),
    ttl_seconds=24 * 3600,
)


def frame(spark: Any, data: list[tuple[int, dt.datetime, float | None, int, str | None]]) -> Any:
    return spark.createDataFrame(
        data, "user_id long, ts timestamp, total double, count long, city string"
    ).repartition(3)


def history(users: int, hours: int) -> list[tuple[int, dt.datetime, float | None, int, str | None]]:
    """``hours`` rows per user; user u at hour h has total u*100+h."""
    return [
        (u, BASE + dt.timedelta(hours=h), float(u * 100 + h), h, f"c{u % 4}" if u % 5 else None)
        for u in range(users)
        for h in range(hours)
    ]


def test_full_writes_the_latest_row_per_entity(spark: Any, store: OnlineStore) -> None:
    stats = materialize(frame(spark, history(250, 3)), LAYOUT, store, batch_rows=64)

    assert (stats.rows, stats.entities, stats.source_rows) == (250, 250, 750)
    assert stats.watermark == BASE + dt.timedelta(hours=2)
    assert store.watermark("txn_stats", 1) == stats.watermark
    assert store.layout("txn_stats", 1) == LAYOUT
    assert store.count_keys("txn_stats", 1) == 250
    got = store.read(LAYOUT, [0, 7, 249, 250])
    assert got.present.tolist() == [True, True, True, False]
    assert got.columns["total"].to_pylist() == [2.0, 702.0, 24902.0, None]
    assert got.columns["count"].to_pylist() == [2, 2, 2, None]
    assert got.columns["city"].to_pylist() == [None, "c3", "c1", None]


def test_as_of_ignores_later_rows(spark: Any, store: OnlineStore) -> None:
    as_of = BASE + dt.timedelta(hours=1)
    stats = materialize(frame(spark, history(20, 3)), LAYOUT, store, as_of=as_of)
    assert stats.watermark == as_of and stats.source_rows == 40
    assert store.read(LAYOUT, [3]).columns["total"].to_pylist() == [301.0]


def test_incremental_writes_only_entities_changed_since_the_watermark(
    spark: Any, store: OnlineStore
) -> None:
    first = history(50, 2)
    materialize(frame(spark, first), LAYOUT, store)
    newer = BASE + dt.timedelta(hours=3)
    changed = [(u, newer, -1.0, 99, "new") for u in (4, 8, 15)]
    # Remove an old value by hand: an incremental run must not rewrite unchanged entities.
    store.client.delete(store.value_key("txn_stats", 1, 20) or "")

    stats = materialize(frame(spark, first + changed), LAYOUT, store, incremental=True)

    assert (stats.rows, stats.entities, stats.source_rows) == (3, 3, 3)
    assert stats.watermark == newer
    got = store.read(LAYOUT, [4, 8, 15, 5, 20])
    assert got.columns["total"].to_pylist() == [-1.0, -1.0, -1.0, 501.0, None]

    again = materialize(frame(spark, first + changed), LAYOUT, store, incremental=True)
    assert (again.rows, again.watermark) == (0, newer)


def test_rows_past_the_ttl_are_not_written(spark: Any, store: OnlineStore) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    data = [(1, old, 1.0, 1, "a"), (2, BASE, 2.0, 2, "b")]
    stats = materialize(frame(spark, data), LAYOUT, store)
    assert (stats.rows, stats.entities) == (1, 2)
    assert store.read(LAYOUT, [1, 2]).present.tolist() == [False, True]


def test_ties_on_event_time_still_write_one_whole_row(spark: Any, store: OnlineStore) -> None:
    fixed = FamilyLayout(
        family="txn_pairs",
        version=1,
        hash="h2",
        entity_key="user_id",
        timestamp="ts",
        features=(("total", "float64"), ("count", "int64")),
    )
    # Per entity: four rows at the same newest time (total == count in each) and an older one.
    data = [(u, BASE, float(k), k, None) for u in range(40) for k in range(4)]
    data += [(u, BASE - dt.timedelta(hours=1), -5.0, 7, None) for u in range(40)]
    stats = materialize(frame(spark, data), fixed, store)

    assert (stats.rows, stats.source_rows) == (40, 200)
    got = store.read(fixed, list(range(40)))
    totals, counts = got.columns["total"].to_pylist(), got.columns["count"].to_pylist()
    assert all(
        t is not None and int(t) == c and c in range(4) for t, c in zip(totals, counts, strict=True)
    )
