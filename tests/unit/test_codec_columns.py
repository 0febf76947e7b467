"""Decoding only some features gives the same columns as decoding all (no Redis needed)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from nbfeatures.online.codec import decode, encode
from nbfeatures.online.layout import FamilyLayout

LAYOUT = FamilyLayout(
    family="mixed",
    version=1,
    hash="h",
    entity_key="user_id",
    timestamp="ts",
    features=(("a", "string"), ("b", "float64"), ("c", "string"), ("d", "int64")),
    ttl_seconds=None,
)


def test_decoding_a_subset_skips_columns_and_keeps_later_strings_aligned() -> None:
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    batch = pa.record_batch(
        {
            "user_id": ["u1", "u2", "u3"],
            "ts": pa.array([when] * 3, pa.timestamp("us", tz="UTC")),
            "a": ["first", None, "xyz"],
            "b": [1.5, 2.5, None],
            "c": ["c1", "c22", None],
            "d": [1, None, 3],
        }
    )
    payloads = [bytes(v) for v in encode(LAYOUT, batch).to_pylist()]
    payloads.insert(1, None)  # an absent entity between present ones
    everything = decode(LAYOUT, payloads)
    subset = decode(LAYOUT, payloads, only={"c", "d"})
    assert set(everything.columns) == {"a", "b", "c", "d"}
    assert set(subset.columns) == {"c", "d"}
    # "c" follows the skipped string "a": its bytes must still be found.
    assert subset.columns["c"].to_pylist() == ["c1", None, "c22", None]
    assert subset.columns["d"].to_pylist() == everything.columns["d"].to_pylist()
    assert subset.columns["d"].to_pylist() == [1, None, None, 3]
