"""Regroup picked rows so that each batch holds whole buckets of a packed version.

A packed version's values are written with one script call per bucket of a batch
(``nbfeatures.online.packing``). Rows in file order spread every batch over nearly every
bucket, so a bucket of ~10 entities would take ~10 calls, one per batch it appears in; each
call costs Redis a few microseconds more than a plain command. Sorted by bucket, a batch
holds whole buckets and each bucket is one call.

Sorting needs the rows of a bucket together, so the rows are split into parts by bucket
(``bucket % parts``), each part small enough to sort in memory (``PART_ROWS``). One part is
kept in memory; several are spilled to temporary Arrow IPC files as they stream in (written
once, read once, with the spill directory removed at the end), so memory stays bounded by a
part, not by the table.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures.arrow_arrays import arrow_of
from nbfeatures.online.packing import Packing, buckets_of

if TYPE_CHECKING:
    import pyarrow as pa

# Rows sorted at a time: ~30 MB for a key, a time and ten float64 features (twice during the
# sort's copy), so a writer's memory does not grow with the table.
PART_ROWS = 250_000


def _bucket_ids(batch: pa.RecordBatch | pa.Table, entity_key: str, bits: int) -> np.ndarray:
    import pyarrow as pa

    return buckets_of(batch.column(entity_key).cast(pa.string()), bits)


def by_bucket(
    batches: Iterator[pa.RecordBatch],
    entity_key: str,
    packing: Packing,
    rows: int,
    batch_rows: int,
    part_rows: int = PART_ROWS,
) -> Iterator[pa.RecordBatch]:
    """``batches`` (``rows`` rows in all) again, sorted by bucket, cut between buckets.

    Each yielded batch has about ``batch_rows`` rows (more when one bucket is larger) and no
    bucket is split between two batches. Rows of one bucket keep their order.
    """
    import pyarrow as pa

    batches = _one_schema(batches)
    parts = max(1, math.ceil(rows / part_rows))
    if parts == 1:
        kept = list(batches)
        if kept:
            yield from _sorted(pa.Table.from_batches(kept), entity_key, packing, batch_rows)
        return
    with tempfile.TemporaryDirectory(prefix="nbf-buckets-") as spill:
        paths = _spill(batches, entity_key, packing, parts, Path(spill))
        for path in paths:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
            yield from _sorted(table, entity_key, packing, batch_rows)
            del table
            path.unlink()


def _one_schema(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Every batch in the first one's schema (files may store a column in another type)."""
    schema = None
    for batch in batches:
        if schema is None:
            schema = batch.schema
        yield batch if batch.schema == schema else batch.cast(schema)


def _spill(
    batches: Iterator[pa.RecordBatch], entity_key: str, packing: Packing, parts: int, into: Path
) -> list[Path]:
    """Write each batch's rows to the file of their part (``bucket % parts``)."""
    import pyarrow as pa

    writers: dict[int, Any] = {}
    paths = [into / f"part-{i}.arrow" for i in range(parts)]
    try:
        for batch in batches:
            part = _bucket_ids(batch, entity_key, packing.bits) % parts
            for index in np.unique(part).tolist():
                rows = batch.filter(arrow_of(part == index))
                writer = writers.get(index)
                if writer is None:
                    writer = writers[index] = pa.ipc.new_file(str(paths[index]), batch.schema)
                writer.write_batch(rows)
    finally:
        for writer in writers.values():
            writer.close()
    return [paths[i] for i in sorted(writers)]


def _sorted(
    table: pa.Table, entity_key: str, packing: Packing, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    bucket = _bucket_ids(table, entity_key, packing.bits)
    order = np.argsort(bucket, kind="stable")
    table = table.take(arrow_of(order)).combine_chunks()
    bucket = bucket[order]
    n = len(bucket)
    # Where each bucket starts; a batch ends at the first bucket start at or past its size.
    starts = np.flatnonzero(np.diff(bucket, prepend=-1))
    start = 0
    while start < n:
        at = int(np.searchsorted(starts, start + batch_rows))
        end = int(starts[at]) if at < len(starts) else n
        yield from table.slice(start, end - start).to_batches()
        start = end
