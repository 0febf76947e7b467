"""The Arrow writer split into slices by a hash of the entity key writes what one slice does.

Each test writes the same Parquet with ``slice_rows`` forcing several slices and with the
default (one slice for these small tables) into two prefixes of a real Redis and compares every
value key, value and expiry, and checks the values against a plain-Python pick of each entity's
newest row (on equal event times the later row in file order wins).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from test_materialize import BASE, LAYOUT, dump

from nbfeatures.engine.arrow.slices import int_keys, slice_count, slice_of
from nbfeatures.materialization import ArrowWriteResult, write_parquet
from nbfeatures.online import FamilyLayout, OnlineStore

pytestmark = pytest.mark.integration

# (entity, event time, total, count); entity and event time may be missing.
Key = int | str | bytes | None
Row = tuple[Key, dt.datetime | None, float | None, int]

SMALL = 7  # rows per slice: several slices even for the few dozen rows of these tests


def write_files(root: Any, files: dict[str, list[Row]], key_type: Any = None) -> str:
    """Each list of ``files`` as ``root/<name>.parquet``, in row groups of 5 rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        table = pa.table(
            {
                "user_id": pa.array([r[0] for r in rows], key_type or pa.int64()),
                "ts": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
                "total": pa.array([r[2] for r in rows], pa.float64()),
                "count": pa.array([r[3] for r in rows], pa.int64()),
                "city": pa.array([f"c{r[3]}" for r in rows], pa.string()),
            }
        )
        pq.write_table(table, root / f"{name}.parquet", row_group_size=5)
    return str(root)


def newest(
    files: dict[str, list[Row]], since: dt.datetime | None = None
) -> dict[Key, tuple[float | None, int]]:
    """Each entity's newest row after ``since`` (total, count), files read in name order."""
    found: dict[Key, tuple[dt.datetime, float | None, int]] = {}
    for name in sorted(files):
        for key, ts, total, count in files[name]:
            if key is None or ts is None or (since is not None and ts <= since):
                continue
            if key not in found or ts >= found[key][0]:  # >=: the later row wins a tie
                found[key] = (ts, total, count)
    return {key: (total, count) for key, (_, total, count) in found.items()}


@pytest.fixture
def stores(local_redis_url: str) -> Iterator[dict[str, OnlineStore]]:
    """Two stores on the same Redis, one per slicing, each with its own prefix."""
    made = {
        name: OnlineStore.from_url(local_redis_url, prefix=f"nbftest-{uuid.uuid4().hex[:12]}:")
        for name in ("sliced", "whole")
    }
    yield made
    for store in made.values():
        for key in store.client.scan_iter(match=f"{store.prefix}*", count=1000):
            store.client.delete(key)
        store.close()


def write_both(
    stores: dict[str, OnlineStore], path: str, layout: FamilyLayout, **options: Any
) -> dict[str, ArrowWriteResult]:
    """``write_parquet`` of ``path`` in several slices and in one, into their own stores."""
    done = {}
    for name, store in stores.items():
        if name == "sliced":
            options["slice_rows"] = SMALL
        done[name] = write_parquet(
            path, layout, store, lambda n, s=store: s.write_layout(layout, n), batch_rows=4,
            **options,
        )  # fmt: skip
    return done


def totals(store: OnlineStore, layout: FamilyLayout, keys: list[Any]) -> list[Any]:
    got = store.read(layout, keys)
    return list(
        zip(got.columns["total"].to_pylist(), got.columns["count"].to_pylist(), strict=True)
    )


def tied_files() -> dict[str, list[Row]]:
    """40 entities over two files: rows at one newest time in both files, and older rows.

    Entity u has three rows at ``BASE`` (count 1 and 2 in file ``a``, count 3 in file ``b``) and
    one an hour before in each file (count 9), so only file order decides the winner: count 3.
    Entities 40-44 are only in ``a``, with two tied rows each (count 1, then 2).
    """
    older = BASE - dt.timedelta(hours=1)
    first: list[Row] = []
    second: list[Row] = []
    for u in range(40):
        first += [(u, BASE, u + 0.1, 1), (u, older, -1.0, 9), (u, BASE, u + 0.2, 2)]
        second += [(u, older, -2.0, 9), (u, BASE, u + 0.3, 3)]
    first += [(u, BASE, u + 0.1, 1) for u in range(40, 45)]
    first += [(u, BASE, u + 0.2, 2) for u in range(40, 45)]
    return {"a": first, "b": second}


# Without the string feature: written packed, several entities to a Redis hash.
PACKED_LAYOUT = dataclasses.replace(
    LAYOUT, family="txn_packed", features=(("total", "float64"), ("count", "int64"))
)


@pytest.mark.parametrize("layout", [LAYOUT, PACKED_LAYOUT], ids=["keyed", "packed"])
def test_ties_across_files_and_slices_write_what_one_slice_writes(
    stores: dict[str, OnlineStore], tmp_path: Any, layout: FamilyLayout
) -> None:
    files = tied_files()
    path = write_files(tmp_path / "offline", files)
    source_rows = sum(len(rows) for rows in files.values())
    assert slice_count(source_rows, SMALL) >= 20  # really several slices

    done = write_both(stores, path, layout)

    assert done["sliced"] == done["whole"]
    assert done["sliced"] == ArrowWriteResult(45, 45, source_rows, done["sliced"].latest_us)
    assert done["sliced"].latest_us == int(BASE.timestamp() * 1_000_000)
    sliced = dump(stores["sliced"], layout)
    assert len(sliced) == 45 and sliced == dump(stores["whole"], layout)
    assert (stores["sliced"].packing(layout.family, 1) is None) == (layout is LAYOUT)
    expected = newest(files)
    assert {expected[u][1] for u in range(40)} == {3} and expected[42][1] == 2
    keys = list(range(45))
    assert totals(stores["sliced"], layout, keys) == [expected[u] for u in keys]


def test_incremental_since_watermark_in_slices(
    stores: dict[str, OnlineStore], tmp_path: Any
) -> None:
    base_rows: list[Row] = [
        (u, BASE - dt.timedelta(hours=h), float(u * 10 + h), h) for u in range(30) for h in range(3)
    ]
    root = tmp_path / "offline"
    write_files(root, {"a": base_rows})
    first = write_both(stores, str(root), LAYOUT)
    assert first["sliced"] == first["whole"] and first["sliced"].written == 30

    since = BASE
    newer = BASE + dt.timedelta(minutes=30)
    later: list[Row] = [(u, newer, -float(u), 7) for u in (3, 11, 17, 29)]
    later += [(11, newer, 111.0, 8), (31, newer, 31.0, 1), (5, since, 55.0, 5)]  # 5: not newer
    files = {"a": base_rows, "b": later}
    write_files(root, {"b": later})
    for store in stores.values():  # an incremental run must not rewrite unchanged entities
        assert store.delete_entity(LAYOUT.family, LAYOUT.version, 20)

    again = write_both(stores, str(root), LAYOUT, since=since)

    assert again["sliced"] == again["whole"]
    newer_us = int(newer.timestamp() * 1_000_000)
    assert again["sliced"] == ArrowWriteResult(5, 5, 6, newer_us)
    after = dump(stores["sliced"], LAYOUT)
    assert after == dump(stores["whole"], LAYOUT)
    assert "20" not in after and "31" in after
    expected = newest(files, since)
    assert set(expected) == {3, 11, 17, 29, 31} and expected[11] == (111.0, 8)
    keys = [3, 11, 17, 29, 31, 5]
    assert totals(stores["sliced"], LAYOUT, keys) == [
        *(expected[u] for u in keys[:-1]),
        (50.0, 0),  # entity 5 keeps its first run's value
    ]


def test_null_keys_and_times_are_skipped_in_slices(
    stores: dict[str, OnlineStore], tmp_path: Any
) -> None:
    rows: list[Row] = [(u, BASE, float(u), 1) for u in range(25)]
    rows += [(None, BASE + dt.timedelta(minutes=5), 999.0, 2) for _ in range(6)]
    # A newer row without an event time never wins; one with a null feature does.
    rows += [(u, None, -1.0, 3) for u in range(0, 25, 2)]
    rows += [(u, BASE + dt.timedelta(minutes=1), None, 4) for u in range(0, 25, 5)]
    files = {"a": rows}
    path = write_files(tmp_path / "offline", files)

    done = write_both(stores, path, LAYOUT)

    assert done["sliced"] == done["whole"]
    assert (done["sliced"].written, done["sliced"].entities, done["sliced"].source_rows) == (
        25,
        25,
        30,
    )
    sliced = dump(stores["sliced"], LAYOUT)
    assert len(sliced) == 25 and sliced == dump(stores["whole"], LAYOUT)
    expected = newest(files)
    assert expected[5] == (None, 4) and expected[2] == (2.0, 1)
    keys = list(range(25))
    assert totals(stores["sliced"], LAYOUT, keys) == [expected[u] for u in keys]


STRING_LAYOUT = dataclasses.replace(LAYOUT, family="txn_by_name", hash="h3")


@pytest.mark.parametrize("key_type", ["string", "large_string", "binary"])
def test_string_keys_in_slices(
    stores: dict[str, OnlineStore], tmp_path: Any, key_type: str
) -> None:
    import pyarrow as pa

    names = [f"user-{u:03d}" for u in range(30)] + ["", "é", "a b"]
    older, as_of = BASE - dt.timedelta(hours=2), BASE + dt.timedelta(hours=1)
    first: list[Row] = [(n, older, float(i), 1) for i, n in enumerate(names)]
    first += [(n, BASE, float(i) + 0.5, 2) for i, n in enumerate(names) if i % 3 == 0]
    second: list[Row] = [(n, BASE, float(i) + 0.7, 3) for i, n in enumerate(names) if i % 2 == 0]
    second += [(n, as_of + dt.timedelta(hours=1), -1.0, 4) for n in names[:5]]  # past as_of
    second += [(None, BASE, 0.0, 5)]
    files = {"a": first, "b": second}
    typed = getattr(pa, key_type)()
    data = {
        name: [
            (r[0].encode() if isinstance(r[0], str) and key_type == "binary" else r[0], *r[1:])
            for r in rows
        ]
        for name, rows in files.items()
    }
    path = write_files(tmp_path / "offline", data, typed)

    done = write_both(stores, path, STRING_LAYOUT, as_of=as_of)

    assert done["sliced"] == done["whole"]
    assert (done["sliced"].written, done["sliced"].source_rows) == (33, 33 + 11 + 17)
    sliced = dump(stores["sliced"], STRING_LAYOUT)
    assert len(sliced) == 33 and sliced == dump(stores["whole"], STRING_LAYOUT)
    expected = newest(
        {k: [r for r in v if r[1] is None or r[1] <= as_of] for k, v in files.items()}
    )
    assert expected["user-006"] == (6.7, 3) and expected["user-003"] == (3.5, 2)
    assert totals(stores["sliced"], STRING_LAYOUT, names) == [expected[n] for n in names]


def slices_of(keys: Any, slices: int) -> list[int]:
    """``slice_of`` as pass one calls it: integer keys with their int64 values."""
    import pyarrow as pa

    ints = int_keys(keys) if pa.types.is_integer(keys.type) else None
    return [int(s) for s in slice_of(keys, ints, slices)]


@pytest.mark.parametrize("typed", ["int64", "int32", "uint16", "string", "binary", "date32"])
def test_equal_keys_fall_in_one_slice_and_every_slice_is_used(typed: str) -> None:
    """A key's slice depends on the key only, not on its batch or its place in a batch."""
    import pyarrow as pa

    ints = list(range(0, 4000, 4))
    keys: list[Any] = ints
    if typed in ("string", "binary"):
        keys = [f"customer-{i}" for i in ints]
    elif typed == "date32":
        keys = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in ints]
    kind = getattr(pa, typed)()
    slices = slices_of(pa.array(keys, kind), 8)

    counts = [slices.count(s) for s in range(8)]
    assert min(counts) > len(keys) / 16 and max(counts) < 2 * len(keys) / 8  # roughly even
    # The same keys again, reversed, after a null and an offset (another batch, other places).
    shifted = pa.array([keys[0], None, *keys[::-1]], kind).slice(2)
    assert slices_of(shifted, 8) == slices[::-1]
    assert slices_of(pa.array(keys[:7], kind), 8) == slices[:7]
