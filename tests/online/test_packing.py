"""Packed values without Redis: the bucket hash, bucket sizing and the record format."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbfeatures.errors import OnlineStoreError
from nbfeatures.online.packing import (
    CHUNK,
    KEYED,
    Packing,
    bits_for,
    bucket_of,
    buckets_of,
    joined,
    read_commands,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=60), st.integers(min_value=0, max_value=20))
def test_the_vectorized_hash_equals_the_scalar_one(keys: list[str], bits: int) -> None:
    encoded = [k.encode() for k in keys]
    expected = [bucket_of(k, bits) for k in encoded]
    assert buckets_of(pa.array(keys, pa.string()), bits).tolist() == expected
    # A slice of a larger array (non-zero offset) hashes the same.
    padded = pa.array(["pad", *keys], pa.string())[1:]
    assert buckets_of(padded, bits).tolist() == expected
    assert all(0 <= b < (1 << bits) for b in expected)


def test_consecutive_ids_spread_evenly_over_the_buckets() -> None:
    bits = bits_for(300_000)
    ids = pa.array([str(i) for i in range(1_000_000, 1_300_000)], pa.string())
    counts = [0] * (1 << bits)
    for bucket in buckets_of(ids, bits).tolist():
        counts[bucket] += 1
    mean = 300_000 / len(counts)
    assert 6 <= mean <= 12
    # Far below Redis's 128-field compact-encoding limit (two fields per entity here), and
    # as even as chance allows: 99% of buckets within twice the mean.
    assert max(counts) * 2 < 128
    assert sorted(counts)[int(len(counts) * 0.99)] <= 2 * mean


@pytest.mark.parametrize(
    ("entities", "bits"), [(None, 12), (0, 0), (1, 0), (12, 0), (13, 1), (300_000, 15)]
)
def test_bucket_bits_follow_the_entity_count(entities: int | None, bits: int) -> None:
    assert bits_for(entities) == bits


def test_a_packing_round_trips_and_keyed_reads_as_none() -> None:
    packing = Packing.for_width(91, 300_000)
    assert (packing.bits, packing.chunks, packing.chunk) == (15, 2, CHUNK)
    assert Packing.from_json(packing.to_json()) == packing
    assert Packing.from_json(KEYED) is None
    with pytest.raises(ValueError, match="not a valid packing"):
        Packing(bits=3, chunks=0)
    with pytest.raises(OnlineStoreError, match=r"users v2: the packing record '\{\"bits\": 3\}'"):
        Packing.from_json('{"bits": 3}', "users v2")
    with pytest.raises(OnlineStoreError, match="not readable"):
        Packing.from_json(b"garbage", "users v2")


def test_records_are_put_back_together_and_missing_chunks_mean_absent() -> None:
    assert joined([[b"ab", b"c"], [None, None], [b"x", None], [b"solo"]]) == [
        b"abc",
        None,
        None,
        b"solo",
    ]


def test_read_commands_are_one_hmget_per_entity_on_its_bucket() -> None:
    packing = Packing(bits=4, chunks=2)
    wire = read_commands(packing, b"nbf:{7}", [b"42", b"a"])
    bucket = bucket_of(b"42", 4)
    first = b"*4\r\n$5\r\nHMGET\r\n$%d\r\nnbf:{7}%d\r\n$3\r\n42\x00\r\n$3\r\n42\x01\r\n" % (
        len(b"nbf:{7}%d" % bucket),
        bucket,
    )
    assert wire.startswith(first)
    assert wire.count(b"HMGET") == 2 and wire.endswith(b"$2\r\na\x01\r\n")


@pytest.mark.parametrize("part_rows", [10_000, 97], ids=["in-memory", "spilled"])
def test_rows_regrouped_by_bucket_lose_nothing_and_never_split_a_bucket(part_rows: int) -> None:
    from nbfeatures.online.bucket_order import by_bucket

    packing = Packing(bits=5, chunks=2)
    ids = list(range(1000, 1600))
    source = [
        pa.RecordBatch.from_pydict(
            {
                "id": pa.array(ids[i : i + 70], pa.int64()),
                "n": pa.array(range(i, min(i + 70, 600)), pa.int64()),
            }
        )
        for i in range(0, 600, 70)
    ]
    # A later file storing the key in another integer type is cast to the first's.
    source[-1] = source[-1].cast(pa.schema([("id", pa.int32()), ("n", pa.int64())]))
    out = list(by_bucket(iter(source), "id", packing, 600, batch_rows=50, part_rows=part_rows))

    rows = [
        (i, n) for b in out for i, n in zip(b["id"].to_pylist(), b["n"].to_pylist(), strict=True)
    ]
    assert sorted(rows) == [(i, i - 1000) for i in ids]
    per_batch = [{bucket_of(str(i).encode(), 5) for i in b["id"].to_pylist()} for b in out]
    seen: set[int] = set()
    for buckets in per_batch:
        assert not buckets & seen, "a bucket was split between batches"
        seen |= buckets
    assert seen == {bucket_of(str(i).encode(), 5) for i in ids}
    assert all(len(b) < 50 + 60 for b in out)
