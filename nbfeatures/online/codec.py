"""The binary value stored per (family version, entity), encoded and decoded a batch at a time.

Format version 1 (little endian, packed, no padding)::

    offset 0        u8      format version (1); a reader refuses any other
    offset 1        i64     event time, microseconds since the Unix epoch, UTC
    offset 9        bitmap  ceil(F / 8) bytes; bit i (LSB first) set = feature i is null
    then, for each of the F features in layout order, a fixed-width slot:
        int32 -> i32, int64 -> i64, float32 -> f32, float64 -> f64, bool -> u8,
        timestamp -> i64 (microseconds, UTC), string -> u32 (byte length of its UTF-8 text)
    then the UTF-8 bytes of every string feature, in layout order, back to back

Ten float64 features take 1 + 8 + 2 + 80 = 91 bytes. Every record of a layout without strings
has the same width, so a batch of values is one numpy structured array (one ``tobytes``), and a
batch read back is one ``frombuffer``: no Python object per feature value either way. Strings
are copied with ragged index arithmetic over the whole batch, also without per-value objects.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures.definitions import FeatureType
from nbfeatures.errors import OnlineStoreError, SchemaError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa

    from nbfeatures.online.layout import FamilyLayout

FORMAT_VERSION = 1
_HEADER = [("format", "u1"), ("event_us", "<i8")]
_SLOT: dict[FeatureType, str] = {
    FeatureType.INT32: "<i4",
    FeatureType.INT64: "<i8",
    FeatureType.FLOAT32: "<f4",
    FeatureType.FLOAT64: "<f8",
    FeatureType.BOOL: "u1",
    FeatureType.TIMESTAMP: "<i8",
    FeatureType.STRING: "<u4",
}


def _arrow_type(kind: FeatureType) -> pa.DataType:
    import pyarrow as pa

    return {
        FeatureType.INT32: pa.int32(),
        FeatureType.INT64: pa.int64(),
        FeatureType.FLOAT32: pa.float32(),
        FeatureType.FLOAT64: pa.float64(),
        FeatureType.BOOL: pa.bool_(),
        FeatureType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
        FeatureType.STRING: pa.string(),
    }[kind]


@dataclass(frozen=True)
class RecordShape:
    """The fixed-width part of a layout's records as a numpy structured dtype."""

    dtype: np.dtype[Any]
    names: tuple[str, ...]
    kinds: tuple[FeatureType, ...]

    @classmethod
    def of(cls, layout: FamilyLayout) -> RecordShape:
        kinds = layout.feature_types
        bitmap = ("nulls", "u1", ((len(kinds) + 7) // 8,))
        # Field names are positional (f0, f1...) so a feature called "format" cannot collide.
        slots = [(f"f{i}", _SLOT[kind]) for i, kind in enumerate(kinds)]
        dtype = np.dtype([*_HEADER, bitmap, *slots])
        return cls(dtype=dtype, names=layout.feature_names, kinds=kinds)

    @property
    def width(self) -> int:
        return int(self.dtype.itemsize)

    @property
    def string_positions(self) -> tuple[int, ...]:
        return tuple(i for i, k in enumerate(self.kinds) if k is FeatureType.STRING)


def event_micros(column: pa.Array | pa.ChunkedArray, family: str, name: str) -> np.ndarray:
    """A timestamp column as int64 microseconds since the epoch (naive values count as UTC)."""
    import pyarrow as pa

    if not pa.types.is_timestamp(column.type):
        raise SchemaError(family, name, f"the event time must be a timestamp, not {column.type}")
    if column.null_count:
        raise SchemaError(family, name, "the event time is null in some rows")
    micros = column.cast(pa.timestamp("us", tz=column.type.tz)).cast(pa.int64())
    return np.asarray(micros.to_numpy(zero_copy_only=False), dtype=np.int64)


def _ragged_indices(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ranges ``starts[i] .. starts[i] + lengths[i]`` as one index array."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    first = np.cumsum(lengths) - lengths
    return np.repeat(starts - first, lengths) + np.arange(total, dtype=np.int64)


def encode(layout: FamilyLayout, batch: pa.RecordBatch) -> pa.Array:
    """Encode every row of ``batch`` (feature and timestamp columns by name) as one value each.

    Returns a ``pyarrow.binary()`` array of ``batch.num_rows`` payloads in row order.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    shape = RecordShape.of(layout)
    n = batch.num_rows
    records = np.zeros(n, dtype=shape.dtype)
    records["format"] = FORMAT_VERSION
    records["event_us"] = event_micros(
        batch.column(layout.timestamp), layout.family, layout.timestamp
    )
    nulls = np.zeros((n, len(shape.kinds)), dtype=bool)
    strings: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for i, (name, kind) in enumerate(zip(shape.names, shape.kinds, strict=True)):
        try:
            column = batch.column(name).cast(_arrow_type(kind))
        except KeyError:
            raise SchemaError(layout.family, name, "missing from the rows to write") from None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaError(layout.family, name, f"cannot be stored as {kind}: {exc}") from None
        nulls[:, i] = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if kind is FeatureType.STRING:
            offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
            offsets = offsets[column.offset : column.offset + n + 1].astype(np.int64)
            data = np.frombuffer(column.buffers()[2] or b"", dtype=np.uint8)
            lengths = np.diff(offsets)
            records[f"f{i}"] = lengths
            strings.append((data, offsets[:-1], lengths))
            continue
        if kind is FeatureType.TIMESTAMP:
            column = column.cast(pa.int64())
        filled = pc.fill_null(column, False if kind is FeatureType.BOOL else 0)
        records[f"f{i}"] = filled.to_numpy(zero_copy_only=False)
    records["nulls"] = np.packbits(nulls, axis=1, bitorder="little")
    fixed = records.view(np.uint8).reshape(n, shape.width)

    if not strings:
        out = fixed.reshape(-1)
        value_offsets = np.arange(n + 1, dtype=np.int64) * shape.width
    else:
        string_lengths = np.stack([lengths for _, _, lengths in strings], axis=1)
        totals = shape.width + string_lengths.sum(axis=1)
        value_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(totals, out=value_offsets[1:])
        out = np.empty(int(value_offsets[-1]), dtype=np.uint8)
        starts = value_offsets[:-1]
        out[(starts[:, None] + np.arange(shape.width)).reshape(-1)] = fixed.reshape(-1)
        cursor = starts + shape.width
        for data, source_starts, lengths in strings:
            out[_ragged_indices(cursor, lengths)] = data[_ragged_indices(source_starts, lengths)]
            cursor = cursor + lengths
    if value_offsets[-1] >= 2**31:
        raise OnlineStoreError(layout.family, "a batch over 2 GiB of values; lower batch_rows")
    return pa.Array.from_buffers(
        pa.binary(),
        n,
        [None, pa.py_buffer(value_offsets.astype(np.int32)), pa.py_buffer(out)],
    )


@dataclass(frozen=True)
class Decoded:
    """Payloads decoded column-wise: ``present`` per requested key, the rest aligned to it."""

    present: np.ndarray
    event_us: np.ndarray
    columns: dict[str, pa.Array]


def decode(
    layout: FamilyLayout,
    payloads: Sequence[bytes | None],
    only: Collection[str] | None = None,
) -> Decoded:
    """Decode ``MGET`` results (``None`` = absent key) into Arrow columns with nulls.

    ``only`` names the features to build columns for (default: all). A request for 10 of
    a family's 50 features then pays for 10 columns: building columns is most of a read.
    """
    import pyarrow as pa

    shape = RecordShape.of(layout)
    n = len(payloads)
    present = np.fromiter((p is not None for p in payloads), dtype=bool, count=n)
    found = [p for p in payloads if p is not None]
    m = len(found)
    lengths = np.fromiter(map(len, found), dtype=np.int64, count=m)
    buffer = np.frombuffer(b"".join(found), dtype=np.uint8)
    width = shape.width
    if m and int(lengths.min()) < width:
        raise OnlineStoreError(
            f"{layout.family} v{layout.version}", "a stored value is shorter than its layout"
        )
    starts = np.zeros(m, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    if m and bool((lengths == width).all()):
        fixed_bytes = buffer.reshape(m, width)
    else:
        fixed_bytes = buffer[starts[:, None] + np.arange(width)]
    records = np.ascontiguousarray(fixed_bytes).view(shape.dtype).reshape(m)
    if m and bool((records["format"] != FORMAT_VERSION).any()):
        bad = int(records["format"][records["format"] != FORMAT_VERSION][0])
        raise OnlineStoreError(
            f"{layout.family} v{layout.version}",
            f"value format {bad} is not {FORMAT_VERSION}; upgrade nbfeatures to read it",
        )
    event_us = np.zeros(n, dtype=np.int64)
    event_us[present] = records["event_us"]
    null_bits = np.unpackbits(records["nulls"], axis=1, bitorder="little", count=len(shape.kinds))
    null_bits = null_bits.astype(bool).reshape(m, len(shape.kinds))

    columns: dict[str, pa.Array] = {}
    cursor = starts + width
    for i, (name, kind) in enumerate(zip(shape.names, shape.kinds, strict=True)):
        slot = records[f"f{i}"]
        wanted = only is None or name in only
        if kind is FeatureType.STRING and not wanted:
            cursor = cursor + slot.astype(np.int64)  # skipped, but later strings follow it
            continue
        if not wanted:
            continue
        valid = present.copy()
        valid[present] = ~null_bits[:, i]
        if kind is FeatureType.STRING:
            string_lengths = slot.astype(np.int64)
            data = buffer[_ragged_indices(cursor, string_lengths)]
            cursor = cursor + string_lengths
            all_lengths = np.zeros(n, dtype=np.int64)
            all_lengths[present] = string_lengths
            offsets = np.zeros(n + 1, dtype=np.int32)
            np.cumsum(all_lengths, out=offsets[1:])
            validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
            columns[name] = pa.Array.from_buffers(
                pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(data.tobytes())]
            )
            continue
        values = np.zeros(n, dtype=slot.dtype)
        values[present] = slot
        if kind is FeatureType.TIMESTAMP:
            array = pa.array(values.astype(np.int64), mask=~valid, type=pa.int64())
            columns[name] = array.cast(_arrow_type(kind))
        elif kind is FeatureType.BOOL:
            columns[name] = pa.array(values.astype(bool), mask=~valid, type=pa.bool_())
        else:
            columns[name] = pa.array(values, mask=~valid, type=_arrow_type(kind))
    return Decoded(present=present, event_us=event_us, columns=columns)
