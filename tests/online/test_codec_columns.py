"""Decoding only some features gives the same columns as decoding all (no Redis needed)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

from nbfeatures.arrow_arrays import null_mask
from nbfeatures.errors import OnlineStoreError
from nbfeatures.online.codec import (
    SMALL_BATCH,
    RecordShape,
    decode,
    decode_columns,
    encode,
)
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


def _payloads(count: int) -> list[bytes]:
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    batch = pa.record_batch(
        {
            "user_id": [f"u{i}" for i in range(count)],
            "ts": pa.array([when] * count, pa.timestamp("us", tz="UTC")),
            "a": ["first"] * count,
            "b": [1.5] * count,
            "c": ["last text"] * count,
            "d": [7] * count,
        }
    )
    return [bytes(v) for v in encode(LAYOUT, batch).to_pylist()]


@pytest.mark.parametrize("count", [1, SMALL_BATCH + 4], ids=["few", "many"])
def test_a_record_cut_inside_its_texts_is_an_error_not_a_shorter_text(count: int) -> None:
    payloads = _payloads(count)
    assert decode_columns(RecordShape.of(LAYOUT), payloads).values["c"][-1] == "last text"
    payloads[-1] = payloads[-1][:-3]  # still longer than the fixed part
    with pytest.raises(
        OnlineStoreError, match="mixed@v1: a stored value is shorter than its texts"
    ):
        decode_columns(RecordShape.of(LAYOUT), payloads, where="mixed@v1")


@pytest.mark.parametrize("count", [1, SMALL_BATCH + 4], ids=["few", "many"])
def test_a_text_that_is_not_utf8_is_an_error(count: int) -> None:
    payloads = _payloads(count)
    payloads[-1] = payloads[-1][:-1] + b"\xff"  # the last byte of "last text"
    with pytest.raises(OnlineStoreError, match="mixed@v1: a stored text is not UTF-8"):
        decode_columns(RecordShape.of(LAYOUT), payloads, where="mixed@v1")


def test_null_mask_reads_the_validity_bitmap_of_slices_chunks_and_the_null_type() -> None:
    values = pa.array([1.0, None, 3.0, None, 5.0, 6.0, None, 8.0, 9.0, None])
    assert null_mask(values).tolist() == [v is None for v in values.to_pylist()]
    part = values.slice(3, 5)  # an offset that is not a multiple of 8
    assert null_mask(part).tolist() == [True, False, False, True, False]
    assert null_mask(pa.array([1, 2])).tolist() == [False, False]
    assert null_mask(pa.nulls(3)).tolist() == [True, True, True]
    chunked = pa.chunked_array([values.slice(0, 2), values.slice(6, 3)])
    assert null_mask(chunked).tolist() == [False, True, True, False, False]
    assert null_mask(pa.chunked_array([], pa.float64())).tolist() == []


def test_encoding_booleans_and_nulls_does_not_load_pandas(tmp_path) -> None:
    # A writer process should not pay for pandas (~50 MiB) to encode what it read. The batch
    # is handed over as an Arrow file: building arrays from Python objects loads pandas itself.
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    batch = pa.record_batch(
        {
            "k": [1, 2, 3],
            "ts": pa.array([when] * 3, pa.timestamp("us", tz="UTC")),
            "on": [True, None, False],
            "x": [None, 2.0, 3.0],
        }
    )
    path = tmp_path / "batch.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)
    script = textwrap.dedent(
        f"""
        import sys
        import pyarrow as pa
        from nbfeatures.online.codec import decode, encode
        from nbfeatures.online.layout import FamilyLayout
        layout = FamilyLayout(family="f", version=1, hash="h", entity_key="k", timestamp="ts",
                              features=(("on", "bool"), ("x", "float64")), ttl_seconds=None)
        batch = pa.ipc.open_file(pa.memory_map({str(path)!r})).get_batch(0)
        encoded = encode(layout, batch)
        assert "pandas" not in sys.modules, "encode imported pandas"
        payloads = [bytes(v) for v in encoded.to_pylist()]
        columns = decode(layout, payloads).columns
        print(columns["on"].to_pylist(), columns["x"].to_pylist())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[True,", "None,", "False]", "[None,", "2.0,", "3.0]"]
