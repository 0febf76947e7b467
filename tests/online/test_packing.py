"""Packed values without Redis: the bucket hash, bucket sizing and the record format."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
