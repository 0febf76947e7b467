"""Entities split into slices by a hash of their key, so picking the latest row per entity
sorts one slice at a time (``arrow.latest``'s pass one), never the whole table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from nbfeatures.arrow_arrays import dense_numpy, null_mask

if TYPE_CHECKING:
    import pyarrow as pa

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on uint64 values: every input bit reaches the high output bits."""
    z = values ^ (values >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z = z * np.uint64(0x94D049BB133111EB)
    return np.asarray(z ^ (z >> np.uint64(31)), dtype=np.uint64)


def _byte_hashes(keys: pa.Array) -> np.ndarray:
    """A 64-bit hash of each key's bytes, equal for equal keys, computed in numpy kernels.

    Each byte is weighted by a pseudo-random number of its place in the key, one key's
    weighted bytes are summed (modulo 2**64, as a difference of running sums) and the sum is
    mixed with the key's length. Keys that are neither text nor bytes are hashed as their
    text: the form ``OnlineStore`` writes them in, so equal keys give equal text.
    """
    import pyarrow as pa

    types = pa.types
    textual = (types.is_string, types.is_large_string, types.is_binary, types.is_large_binary)
    if not any(test(keys.type) for test in textual):
        keys = keys.cast(pa.string())
    keys = keys.cast(pa.large_binary())
    _, offsets_buffer, data_buffer = keys.buffers()
    if offsets_buffer is None:  # an empty array may come without one
        return np.zeros(len(keys), dtype=np.uint64)
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[keys.offset :][: len(keys) + 1]
    first = int(offsets[0])
    starts = offsets[:-1] - first
    lengths = np.diff(offsets)
    size = int(offsets[-1]) - first
    if data_buffer is None or size == 0:
        return _mix(lengths.astype(np.uint64))
    data = np.frombuffer(data_buffer, dtype=np.uint8)[first : first + size].astype(np.uint64)
    place = np.arange(size, dtype=np.int64) - np.repeat(starts, lengths)
    weighted = (data + np.uint64(1)) * _mix(place.astype(np.uint64) + np.uint64(1))
    running = np.zeros(size + 1, dtype=np.uint64)
    np.cumsum(weighted, out=running[1:])
    sums = running[starts + lengths] - running[starts]
    return _mix(sums ^ (lengths.astype(np.uint64) * _GOLDEN))


def int_keys(keys: pa.Array) -> np.ndarray:
    """Integer keys as int64 (a null as 0: those rows are dropped by their validity)."""
    import pyarrow as pa

    values = dense_numpy(keys.cast(pa.int64()))
    if keys.null_count:
        values = np.where(null_mask(keys), 0, values)
    return np.asarray(values, dtype=np.int64)


def slice_of(keys: pa.Array, values: np.ndarray | None, slices: int) -> np.ndarray:
    """The slice (``0 .. slices - 1``) of each key: equal keys are always in the same slice.

    Integer keys (``values``, their int64 form) by a multiplicative hash, whose high bits
    spread consecutive ids evenly; other keys by a hash of their bytes.
    """
    if values is None:
        hashed = _byte_hashes(keys)
    else:
        hashed = (values.view(np.uint64) * _GOLDEN) >> np.uint64(32)
    return np.asarray(hashed % np.uint64(slices), dtype=np.int64)


def slice_count(source_rows: int, slice_rows: int) -> int:
    """How many slices pass one splits ``source_rows`` rows into: at most ``slice_rows`` each
    on average, so its memory is bounded by ``slice_rows``, not by the table."""
    return max(1, -(-source_rows // slice_rows))


def entity_codes(column: pa.ChunkedArray) -> np.ndarray:
    """Integer codes equal exactly where entity keys are equal."""
    import pyarrow as pa
    import pyarrow.compute as pc

    combined = column.combine_chunks()
    if pa.types.is_integer(combined.type):
        return np.asarray(dense_numpy(combined.cast(pa.int64())), dtype=np.int64)
    encoded = pc.dictionary_encode(combined)
    return np.asarray(dense_numpy(encoded.indices), dtype=np.int64)
