"""Arrow arrays as numpy and back without pandas: for the engine and the online store alike.

``to_numpy()`` and ``pa.array``/``pa.scalar`` look for pandas on the way and so load it
(~50 MiB) in writer processes that never need it; these read and build buffers directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from nbfeatures.errors import SchemaError

if TYPE_CHECKING:
    import pyarrow as pa


def event_micros(column: pa.Array | pa.ChunkedArray, family: str, name: str) -> np.ndarray:
    """A timestamp column as int64 microseconds since the epoch (naive values count as UTC)."""
    import pyarrow as pa

    if not pa.types.is_timestamp(column.type):
        raise SchemaError(family, name, f"the event time must be a timestamp, not {column.type}")
    if column.null_count:
        raise SchemaError(family, name, "the event time is null in some rows")
    micros = column.cast(pa.timestamp("us", tz=column.type.tz)).cast(pa.int64())
    return np.asarray(dense_numpy(micros), dtype=np.int64)


_NUMPY_TYPES = {
    "int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8",
    "uint8": "u1", "uint16": "u2", "uint32": "u4", "uint64": "u8",
    "float": "<f4", "double": "<f8",
}  # fmt: skip


def dense_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A fixed-width numeric column without nulls as numpy: a read-only view of its buffer.

    Not ``to_numpy()``, which looks for pandas on the way and so loads it (~50 MiB) in a
    writer process that never needs it.
    """
    if hasattr(column, "combine_chunks"):
        column = column.combine_chunks()
    dtype = np.dtype(_NUMPY_TYPES[str(column.type)]).newbyteorder("<")
    n = len(column)
    data = column.buffers()[1]
    if n == 0 or data is None:
        return np.zeros(n, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=n, offset=column.offset * dtype.itemsize)


def arrow_of(values: np.ndarray) -> pa.Array:
    """An int64 or bool numpy array as an Arrow array over the same memory (bools packed).

    Not ``pa.array(values)``, which looks for pandas on the way and so loads it.
    """
    import pyarrow as pa

    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)])


def binary_scalar(value: bytes) -> pa.Scalar:
    """``value`` as an Arrow binary scalar, built from buffers (``pa.scalar`` loads pandas)."""
    import pyarrow as pa

    offsets = pa.py_buffer(np.array([0, len(value)], dtype=np.int32))
    array = pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(value)])
    return array[0]


def null_mask(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``True`` where ``column`` is null, read from its validity bitmap.

    Not ``column.is_null().to_numpy()``: a boolean ``to_numpy`` converts through pandas and so
    loads it (~50 MiB) in a writer process that never needs it.
    """
    chunks = getattr(column, "chunks", None)
    if chunks is not None:
        return np.concatenate([null_mask(c) for c in chunks] or [np.zeros(0, dtype=bool)])
    n = len(column)
    if column.null_count == 0:
        return np.zeros(n, dtype=bool)
    validity = column.buffers()[0]
    if validity is None:  # the null type: every value is null
        return np.ones(n, dtype=bool)
    bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
    return np.asarray(bits[column.offset : column.offset + n] == 0, dtype=bool)
