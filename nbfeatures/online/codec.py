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

import functools
import struct
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures.arrow_arrays import dense_numpy, event_micros, null_mask
from nbfeatures.definitions import FeatureType
from nbfeatures.errors import OnlineStoreError, SchemaError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa

    from nbfeatures.online.layout import FamilyLayout

FORMAT_VERSION = 1
_HEADER = [("format", "u1"), ("event_us", "<i8")]
_STRUCT_SLOT: dict[FeatureType, str] = {
    FeatureType.INT32: "i",
    FeatureType.INT64: "q",
    FeatureType.FLOAT32: "f",
    FeatureType.FLOAT64: "d",
    FeatureType.BOOL: "B",
    FeatureType.TIMESTAMP: "q",
    FeatureType.STRING: "I",
}
# Up to this many values are decoded with ``struct`` into Python lists: for a handful of
# records a numpy call costs more than the work it vectorizes.
SMALL_BATCH = 16
_SLOT: dict[FeatureType, str] = {
    FeatureType.INT32: "<i4",
    FeatureType.INT64: "<i8",
    FeatureType.FLOAT32: "<f4",
    FeatureType.FLOAT64: "<f8",
    FeatureType.BOOL: "u1",
    FeatureType.TIMESTAMP: "<i8",
    FeatureType.STRING: "<u4",
}


def arrow_type(kind: FeatureType) -> pa.DataType:
    """The Arrow type a feature of ``kind`` is stored and served as."""
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

    @functools.cached_property
    def string_positions(self) -> tuple[int, ...]:
        return tuple(i for i, k in enumerate(self.kinds) if k is FeatureType.STRING)

    @functools.cached_property
    def _walks(self) -> dict[frozenset[str] | None, tuple[int, ...]]:
        return {}

    def walk(self, only: Collection[str] | None) -> tuple[int, ...]:
        """The slot positions a decode of ``only`` visits, cached per set of names.

        Every position up to the last wanted one when the layout holds strings (their
        lengths place the strings that follow), else just the wanted positions: a request for
        10 of 50 features does not loop over the other 40.
        """
        key = None if only is None else frozenset(only)
        walk = self._walks.get(key)
        if walk is None:
            wanted = [i for i, name in enumerate(self.names) if key is None or name in key]
            if self.string_positions and wanted:
                wanted = list(range(wanted[-1] + 1))
            if len(self._walks) > 1024:
                self._walks.clear()  # bounded: callers choose the sets
            walk = self._walks[key] = tuple(wanted)
        return walk

    @functools.cached_property
    def record_struct(self) -> struct.Struct:
        """The fixed-width part as a ``struct`` format: format, event time, bitmap, slots."""
        bitmap = "B" * ((len(self.kinds) + 7) // 8)
        return struct.Struct("<Bq" + bitmap + "".join(_STRUCT_SLOT[k] for k in self.kinds))


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
            column = batch.column(name).cast(arrow_type(kind))
        except KeyError:
            raise SchemaError(layout.family, name, "missing from the rows to write") from None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaError(layout.family, name, f"cannot be stored as {kind}: {exc}") from None
        nulls[:, i] = null_mask(column)
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
        if kind is FeatureType.BOOL:
            column = column.cast(pa.uint8())  # a boolean to_numpy would import pandas
        values = dense_numpy(column)
        if column.null_count:  # a null's slot holds whatever was there: store 0
            values = np.where(nulls[:, i], 0, values)
        records[f"f{i}"] = values
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


@dataclass(slots=True)
class DecodedColumns:
    """Payloads decoded into numpy, aligned with the keys asked for.

    ``values[name]`` holds one value per key: a numpy array (int32/int64/float32/float64,
    bool, int64 microseconds for timestamps; a list of ``str`` for strings), or for a few
    keys a plain list of Python values, with 0, False or "" where the value is null.
    ``nulls[name]`` is True where it is null (absent key or null value); ``None`` when no
    value of the column is null, the usual case, which costs nothing.
    """

    present: np.ndarray
    event_us: np.ndarray
    values: dict[str, np.ndarray | list[Any]]
    nulls: dict[str, np.ndarray | None]
    # Whether every key was found (``present`` is then all True).
    all_present: bool


def decode_columns(
    shape: RecordShape,
    payloads: Sequence[bytes | None],
    only: Collection[str] | None = None,
    where: str = "",
) -> DecodedColumns:
    """Decode ``MGET`` results (``None`` = absent key) into numpy columns, no Arrow.

    ``only`` names the features to decode (default: all); ``where`` names the family version
    in errors. The cost is a handful of numpy calls per requested column whatever the number
    of keys, which is what a one-entity request pays for.
    """
    n = len(payloads)
    found = [p for p in payloads if p is not None]
    m = len(found)
    if m <= SMALL_BATCH:
        return _decode_small(shape, payloads, found, only, where)
    all_present = m == n
    present = (
        np.ones(n, dtype=bool)
        if all_present
        else np.fromiter((p is not None for p in payloads), dtype=bool, count=n)
    )
    width = shape.width
    joined = b"".join(found)
    strings = bool(shape.string_positions)
    if not strings and len(joined) == m * width and all(len(p) == width for p in found):
        # Fixed-width records back to back: one view, no copy and no index arithmetic.
        starts = np.arange(m, dtype=np.int64) * width
        records = np.frombuffer(joined, dtype=shape.dtype, count=m)
    else:
        lengths = np.fromiter(map(len, found), dtype=np.int64, count=m)
        if m and int(lengths.min()) < width:
            raise OnlineStoreError(where, "a stored value is shorter than its layout")
        starts = np.zeros(m, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        buffer = np.frombuffer(joined, dtype=np.uint8)
        fixed = buffer[starts[:, None] + np.arange(width)]
        records = np.ascontiguousarray(fixed).view(shape.dtype).reshape(m)
        if strings:
            needed = np.full(m, width, dtype=np.int64)
            for i in shape.string_positions:
                needed += records[f"f{i}"].astype(np.int64)
            if bool((needed > lengths).any()):
                # Slicing past the end would serve a cut text as if it were the stored one.
                raise OnlineStoreError(where, "a stored value is shorter than its texts say")
    formats = records["format"]
    if m and bool((formats != FORMAT_VERSION).any()):
        bad = int(formats[formats != FORMAT_VERSION][0])
        raise OnlineStoreError(
            where, f"value format {bad} is not {FORMAT_VERSION}; upgrade nbfeatures to read it"
        )
    if all_present:
        event_us = records["event_us"].astype(np.int64)
    else:
        event_us = np.zeros(n, dtype=np.int64)
        event_us[present] = records["event_us"]
    null_bytes = records["nulls"]
    null_bits: np.ndarray | None = None
    if m and bool(null_bytes.any()):
        null_bits = np.unpackbits(null_bytes, axis=1, bitorder="little", count=len(shape.kinds))
        null_bits = null_bits.astype(bool).reshape(m, len(shape.kinds))
    absent = None if all_present else ~present

    values: dict[str, np.ndarray | list[Any]] = {}
    nulls: dict[str, np.ndarray | None] = {}
    cursor = starts + width
    names, kinds = shape.names, shape.kinds
    for i in shape.walk(only):
        name, kind = names[i], kinds[i]
        wanted = only is None or name in only
        if kind is FeatureType.STRING:
            string_lengths = records[f"f{i}"].astype(np.int64)
            if wanted:
                texts = _texts(
                    joined, zip(cursor.tolist(), string_lengths.tolist(), strict=True), where
                )
                if not all_present:
                    rows = iter(texts)
                    texts = [next(rows) if here else "" for here in present.tolist()]
                values[name] = texts
            cursor = cursor + string_lengths  # later strings follow this one
        elif wanted:
            slot = records[f"f{i}"]
            if kind is FeatureType.BOOL:
                slot = slot.astype(bool)
            elif kind is FeatureType.TIMESTAMP:
                slot = slot.astype(np.int64)
            if all_present:
                values[name] = slot
            else:
                column = np.zeros(n, dtype=slot.dtype)
                column[present] = slot
                values[name] = column
        if not wanted:
            continue
        if null_bits is None or not bool(null_bits[:, i].any()):
            nulls[name] = absent
        else:
            column_nulls = np.ones(n, dtype=bool)
            column_nulls[present] = null_bits[:, i]
            nulls[name] = column_nulls
            if kind is not FeatureType.STRING:
                # A null's slot holds a filler; zero it so every reader sees the same value.
                filled = np.array(values[name], copy=True)
                filled[column_nulls] = 0
                values[name] = filled
            else:
                values[name] = [
                    "" if null else text
                    for text, null in zip(values[name], column_nulls.tolist(), strict=True)
                ]
    return DecodedColumns(present, event_us, values, nulls, all_present)


def _text(payload: bytes, start: int, length: int, where: str) -> str:
    try:
        return bytes(payload[start : start + length]).decode()
    except UnicodeDecodeError:
        raise OnlineStoreError(where, "a stored text is not UTF-8") from None


def _texts(joined: bytes, spans: Iterable[tuple[int, int]], where: str) -> list[str]:
    try:
        return [joined[s : s + k].decode() for s, k in spans]
    except UnicodeDecodeError:
        raise OnlineStoreError(where, "a stored text is not UTF-8") from None


def _decode_small(
    shape: RecordShape,
    payloads: Sequence[bytes | None],
    found: list[bytes],
    only: Collection[str] | None,
    where: str,
) -> DecodedColumns:
    """``decode_columns`` for a few values: one ``struct`` unpack per value, Python lists."""
    n = len(payloads)
    all_present = len(found) == n
    layout_struct = shape.record_struct
    width = layout_struct.size
    if any(len(p) < width for p in found):
        raise OnlineStoreError(where, "a stored value is shorter than its layout")
    records = [layout_struct.unpack_from(p) for p in found]
    kinds = shape.kinds
    first_slot = 2 + (len(kinds) + 7) // 8
    texts_at = [first_slot + i for i in shape.string_positions]
    for payload, record in zip(found, records, strict=True):
        if texts_at and width + sum(record[slot] for slot in texts_at) > len(payload):
            # Slicing past the end would serve a cut text as if it were the stored one.
            raise OnlineStoreError(where, "a stored value is shorter than its texts say")
    for record in records:
        if record[0] != FORMAT_VERSION:
            raise OnlineStoreError(
                where,
                f"value format {record[0]} is not {FORMAT_VERSION}; upgrade nbfeatures to read it",
            )
    any_null = any(any(record[2:first_slot]) for record in records)
    if not all_present:
        # Absent keys get a record of zeros (and every feature null) so columns stay aligned.
        filler = (0,) * len(records[0]) if records else (0,) * (first_slot + len(kinds))
        rows = iter(records)
        records = [next(rows) if p is not None else filler for p in payloads]
    if all_present:
        present = np.ones(n, dtype=bool)
    else:
        present = np.array([p is not None for p in payloads], dtype=bool)
    event_us = np.array([record[1] for record in records], dtype=np.int64)
    cursors = [width] * n
    values: dict[str, np.ndarray | list[Any]] = {}
    nulls: dict[str, np.ndarray | None] = {}
    absent = None if all_present else ~present
    names = shape.names
    for i in shape.walk(only):
        name, kind = names[i], kinds[i]
        slot = first_slot + i
        wanted = only is None or name in only
        if kind is FeatureType.STRING:
            lengths = [record[slot] for record in records]
            if wanted:
                values[name] = [
                    _text(p, c, k, where) if p is not None else ""
                    for p, c, k in zip(payloads, cursors, lengths, strict=True)
                ]
            cursors = [c + k for c, k in zip(cursors, lengths, strict=True)]
        elif wanted:
            column = [record[slot] for record in records]
            if kind is FeatureType.BOOL:
                column = [v != 0 for v in column]
            values[name] = column
        if not wanted:
            continue
        if not any_null:
            nulls[name] = absent
            continue
        byte, bit = 2 + i // 8, 1 << (i % 8)
        column_nulls = [
            p is None or bool(r[byte] & bit) for p, r in zip(payloads, records, strict=True)
        ]
        if any(column_nulls):
            nulls[name] = np.array(column_nulls, dtype=bool)
            filler_value: Any = "" if kind is FeatureType.STRING else 0
            if kind is FeatureType.BOOL:
                filler_value = False
            values[name] = [
                filler_value if null else v
                for v, null in zip(values[name], column_nulls, strict=True)
            ]
        else:
            nulls[name] = None
    return DecodedColumns(present, event_us, values, nulls, all_present)


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
    got = decode_columns(shape, payloads, only, f"{layout.family} v{layout.version}")
    kinds = dict(zip(shape.names, shape.kinds, strict=True))
    columns: dict[str, pa.Array] = {}
    for name, raw in got.values.items():
        kind = kinds[name]
        mask = got.nulls[name]
        if kind is FeatureType.STRING:
            texts: list[str | None] = list(raw)
            if mask is not None:
                texts = [None if null else t for t, null in zip(texts, mask.tolist(), strict=True)]
            columns[name] = pa.array(texts, type=pa.string())
        elif kind is FeatureType.TIMESTAMP:
            columns[name] = pa.array(raw, mask=mask, type=pa.int64()).cast(arrow_type(kind))
        else:
            columns[name] = pa.array(raw, mask=mask, type=arrow_type(kind))
    return Decoded(present=got.present, event_us=got.event_us, columns=columns)
