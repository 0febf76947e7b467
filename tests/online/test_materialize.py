"""Spark materialization into each real Redis backend: full, as-of, incremental, batches."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from nbfeatures.materialization import materialize
from nbfeatures.online import FamilyLayout, OnlineStore

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
    store.delete_entity("txn_stats", 1, 20)

    stats = materialize(frame(spark, first + changed), LAYOUT, store, incremental=True)

    assert (stats.rows, stats.entities, stats.source_rows) == (3, 3, 3)
    assert stats.watermark == newer
    got = store.read(LAYOUT, [4, 8, 15, 5, 20])
    assert got.columns["total"].to_pylist() == [-1.0, -1.0, -1.0, 501.0, None]

    again = materialize(frame(spark, first + changed), LAYOUT, store, incremental=True)
    assert (again.rows, again.watermark) == (0, newer)


def test_rows_past_ttl_plus_retention_are_not_written(spark: Any, store: OnlineStore) -> None:
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(days=3)  # ttl 1 d + retention (1 d by default): gone
    retained = now - dt.timedelta(hours=30)  # past the ttl, inside the retention: kept
    data = [(1, old, 1.0, 1, "a"), (2, BASE, 2.0, 2, "b"), (3, retained, 3.0, 3, "c")]
    stats = materialize(frame(spark, data), LAYOUT, store)
    assert (stats.rows, stats.entities) == (2, 3)
    got = store.read(LAYOUT, [1, 2, 3])
    assert got.present.tolist() == [False, True, True]
    assert got.stale(now).tolist() == [False, False, True]
    assert got.columns["total"].to_pylist() == [None, 2.0, 3.0]


def test_ties_on_event_time_still_write_one_whole_row(spark: Any, store: OnlineStore) -> None:
    fixed = replace(PACKED, hash="h2", ttl_seconds=None)
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


# -- the Arrow writer (no JVM) and its equivalence with the executor path ----------------------

Row = tuple[int, dt.datetime, float | None, int, str | None]


def write_parquet_dataset(root: Any, rows: list[Row], name: str = "part") -> str:
    """``rows`` as hive-partitioned Parquet (``event_date=YYYY-MM-DD``), as the offline store."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    by_day: dict[str, list[Row]] = {}
    for row in rows:
        by_day.setdefault(row[1].astimezone(dt.UTC).date().isoformat(), []).append(row)
    for day, chunk in by_day.items():
        folder = root / f"event_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.table(
            {
                "user_id": pa.array([r[0] for r in chunk], pa.int64()),
                "ts": pa.array([r[1] for r in chunk], pa.timestamp("us", tz="UTC")),
                "total": pa.array([r[2] for r in chunk], pa.float64()),
                "count": pa.array([r[3] for r in chunk], pa.int64()),
                "city": pa.array([r[4] for r in chunk], pa.string()),
            }
        )
        # Small row groups, so the second pass streams several per file.
        pq.write_table(table, folder / f"{name}.parquet", row_group_size=37)
    (root / "_manifest.json").write_text("{}")  # not Parquet: the writers must skip it
    return str(root)


def dump(store: OnlineStore, layout: FamilyLayout) -> dict[str, tuple[bytes, int]]:
    """Every entity of ``layout``'s version (its key as text): its record and its expiry.

    For a packed version the record is put together from its chunks in the entity's bucket,
    and the expiry is the bucket's.
    """
    key_id = store.key_id(layout.family, layout.version)
    assert key_id is not None
    tag = store.keys.value_tag(key_id)
    packing = store.packing(layout.family, layout.version, fresh=True)
    found = {}
    for key in store.client.scan_iter(match=f"{tag}*", count=1000):
        expiry = int(store.client.execute_command("PEXPIRETIME", key))
        if packing is None:
            value = store.client.get(key)
            assert value is not None
            found[key.decode()[len(tag) :]] = (value, expiry)
            continue
        chunks: dict[bytes, dict[int, bytes]] = {}
        for field, part in store.client.hgetall(key).items():
            chunks.setdefault(field[:-1], {})[field[-1]] = part
        for entity, parts in chunks.items():
            assert sorted(parts) == list(range(packing.chunks)), "a record lost a chunk"
            record = b"".join(parts[c] for c in range(packing.chunks))
            found[entity.decode()] = (record, expiry)
    return found


def test_arrow_and_spark_write_the_same_bytes(
    spark: Any, local_redis_url: str, tmp_path: Any
) -> None:
    """Full, as-of, incremental, ttl, nulls and strings: same keys, values and expiries."""
    import uuid

    stores = {
        engine: OnlineStore.from_url(local_redis_url, prefix=f"nbftest-{uuid.uuid4().hex[:12]}:")
        for engine in ("arrow", "spark")
    }
    old = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=3)
    rows = [*history(120, 4), (500, old, 5.0, 5, "gone"), (501, old, None, 1, None)]
    root = tmp_path / "offline"
    path = write_parquet_dataset(root, rows)
    as_of = BASE + dt.timedelta(hours=1, minutes=30)
    try:
        stats = {}
        for engine, store in stores.items():
            source = path if engine == "arrow" else spark.read.parquet(path)
            stats[engine] = [
                materialize(source, LAYOUT, store, engine=engine, batch_rows=50),
                materialize(source, LAYOUT_V2, store, engine=engine, as_of=as_of),
                materialize(source, PACKED, store, engine=engine, batch_rows=50),
            ]
        for a, s in zip(stats["arrow"], stats["spark"], strict=True):
            assert (a.engine, s.engine) == ("arrow", "spark")
            assert (a.rows, a.entities, a.source_rows, a.watermark) == (
                s.rows,
                s.entities,
                s.source_rows,
                s.watermark,
            )
        assert stats["arrow"][0].rows == 120  # the two rows past the ttl are not written
        full = dump(stores["arrow"], LAYOUT)
        assert len(full) == 120 and full == dump(stores["spark"], LAYOUT)
        assert all(expiry > 0 for _, expiry in full.values())  # PXAT set on every key
        assert dump(stores["arrow"], LAYOUT_V2) == dump(stores["spark"], LAYOUT_V2)
        assert stores["arrow"].read(LAYOUT_V2, [3]).columns["total"].to_pylist() == [301.0]
        packed = dump(stores["arrow"], PACKED)
        assert len(packed) == 120 and packed == dump(stores["spark"], PACKED)
        assert all(expiry > 0 for _, expiry in packed.values())
        for store in stores.values():
            assert store.packing("txn_pairs", 1) is not None
            assert store.packing("txn_stats", 1) is None  # strings: one key per entity

        newer = BASE + dt.timedelta(hours=30)  # a new day's partition
        changed: list[Row] = [(4, newer, None, 9, "new"), (8, newer, -1.0, 9, None)]
        changed += [(900, newer, 9.0, 1, "fresh")]
        write_parquet_dataset(root, changed, name="later")
        for engine, store in stores.items():
            source = path if engine == "arrow" else spark.read.parquet(path)
            for layout in (LAYOUT, PACKED):
                assert store.delete_entity(layout.family, 1, 20)
                again = materialize(source, layout, store, engine=engine, incremental=True)
                assert (again.rows, again.entities, again.watermark) == (3, 3, newer)
        for layout in (LAYOUT, PACKED):
            after = dump(stores["arrow"], layout)
            assert after == dump(stores["spark"], layout)
            assert "20" not in after and "900" in after  # only changed entities rewritten
        newest_expiry = int((newer + dt.timedelta(days=1)).timestamp() * 1000)
        assert dump(stores["arrow"], PACKED)["4"][1] >= newest_expiry  # its bucket's expiry
        assert stores["spark"].read(PACKED, [8, 900]).columns["total"].to_pylist() == [-1.0, 9.0]
        got = stores["arrow"].read(LAYOUT, [4, 8, 900])
        assert got.columns["total"].to_pylist() == [None, -1.0, 9.0]
        assert got.columns["city"].to_pylist() == ["new", None, "fresh"]
    finally:
        for store in stores.values():
            for key in store.client.scan_iter(match=f"{store.prefix}*", count=1000):
                store.client.delete(key)
            store.close()


# No string feature: stored packed, several entities to a bucket.
PACKED = replace(LAYOUT, family="txn_pairs", hash="h3", features=LAYOUT.features[:2])
LAYOUT_V2 = replace(LAYOUT, version=2, ttl_seconds=None)


def test_arrow_engine_writes_on_each_backend(store: OnlineStore, tmp_path: Any) -> None:
    """The Arrow writer, with no Spark at all, on Redis, the embedded server and a cluster."""
    path = write_parquet_dataset(tmp_path / "offline", history(250, 3))
    stats = materialize(path, LAYOUT, store, batch_rows=64)

    assert stats.engine == "arrow"
    assert (stats.rows, stats.entities, stats.source_rows) == (250, 250, 750)
    assert stats.watermark == BASE + dt.timedelta(hours=2)
    assert store.watermark("txn_stats", 1) == stats.watermark
    assert store.count_keys("txn_stats", 1) == 250
    got = store.read(LAYOUT, [0, 7, 249, 250])
    assert got.present.tolist() == [True, True, True, False]
    assert got.columns["total"].to_pylist() == [2.0, 702.0, 24902.0, None]
    assert got.columns["city"].to_pylist() == [None, "c3", "c1", None]
    again = materialize(path, LAYOUT, store, incremental=True)
    assert (again.rows, again.watermark) == (0, stats.watermark)


def test_arrow_engine_keeps_one_whole_row_on_event_time_ties(
    local_redis_url: str, tmp_path: Any
) -> None:
    """On a tie the later row in file order wins, and every column comes from that row."""
    rows: list[Row] = [(u, BASE, float(k), k, f"k{k}") for k in range(4) for u in range(30)]
    path = write_parquet_dataset(tmp_path / "offline", rows)
    store = OnlineStore.from_url(local_redis_url, prefix="nbftest-ties:")
    try:
        stats = materialize(path, LAYOUT, store)
        assert (stats.rows, stats.source_rows) == (30, 120)
        got = store.read(LAYOUT, list(range(30)))
        assert set(got.columns["total"].to_pylist()) == {3.0}
        assert set(got.columns["city"].to_pylist()) == {"k3"}
    finally:
        for key in store.client.scan_iter(match="nbftest-ties:*", count=1000):
            store.client.delete(key)
        store.close()


def test_engine_choice() -> None:
    from nbfeatures.engine.factory import engine_name
    from nbfeatures.errors import ConfigError

    def choose_engine(engine: str, source: Any, master: str | None) -> str:
        return engine_name(engine, "materialize", master=master, source=source)

    assert choose_engine("auto", "/data/offline/f/v1", "local[2]") == "arrow"
    assert choose_engine("auto", "gs://bucket/offline/f/v1", None) == "arrow"
    assert choose_engine("auto", "/data/offline/f/v1", "sc://localhost:15002") == "spark"
    assert choose_engine("auto", "/data/offline/f/v1", "spark://master:7077") == "spark"
    assert choose_engine("auto", "s3a://bucket/f/v1", "local[2]") == "spark"
    assert choose_engine("spark", "/data/offline/f/v1", "local[2]") == "spark"
    frame = object()  # anything but a path is a DataFrame to this choice
    assert choose_engine("auto", frame, "local[2]") == "spark"  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        choose_engine("arrow", frame, "local[2]")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        choose_engine("jvm", "/data", "local[2]")
