"""Materialization without Spark: pyarrow reads the offline Parquet, the driver writes Redis.

For Spark in local mode the executors are this machine's processes anyway, and a fresh
process pays ~10 s to start the JVM and another ~10 s for its first job before a single value
reaches Redis, while the write itself is bound by Redis. This writer does the same work in
the calling process, with no JVM:

1. Pass one reads only the entity and event-time columns of every file (in a fixed order, so
   a row's position is stable between passes), keeps rows with ``since < time <= as_of`` and
   picks, per entity, the position of its newest row (a stable sort, so on a tie the later
   row in file order wins, as ``OnlineStore.write_rows`` does within a batch).
2. Pass two streams the files again in batches of ``batch_rows`` rows with every column
   needed, keeps the picked positions and hands full batches to the store's
   ``PipelinedWriter``, which builds the same ``SET`` commands as ``OnlineStore.write_rows``
   (values by ``nbfeatures.online.codec.encode``) and keeps one batch in flight, so Redis
   works on batch k+1 while this process reads batch k's replies and encodes the next.

Memory is the two narrow columns and a one-byte mask per source row (pass one), plus one
batch (and a Parquet row group's pages) at a time (pass two): never the feature columns of
the whole table. Partitions ``event_date=YYYY-MM-DD`` outside the requested range are not
read at all. The values and keys are byte for byte those of the Spark path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures.errors import SchemaError
from nbfeatures.online.codec import event_micros

if TYPE_CHECKING:
    import pyarrow as pa

    from nbfeatures.online.layout import FamilyLayout
    from nbfeatures.online.store import OnlineStore

__all__ = ["ArrowWriteResult", "parquet_files", "write_parquet"]

_PARTITION = "event_date="


@dataclass(frozen=True)
class ArrowWriteResult:
    """Counts of one write: as ``MaterializeStats`` reports them."""

    written: int
    entities: int
    source_rows: int
    latest_us: int | None


def _partition_date(path: str) -> dt.date | None:
    """The ``event_date`` of a hive-partitioned file, if its path names one."""
    for part in path.split("/"):
        if part.startswith(_PARTITION):
            try:
                return dt.date.fromisoformat(part[len(_PARTITION) :])
            except ValueError:
                return None
    return None


def parquet_files(
    uri: str, since: dt.datetime | None = None, as_of: dt.datetime | None = None
) -> tuple[Any, list[str]]:
    """The filesystem and the sorted Parquet files under ``uri`` (a file or a folder).

    Files and folders whose names start with ``_`` or ``.`` are skipped (Spark's markers, the
    manifest), and so are ``event_date`` partitions that cannot hold an event time in
    ``(since, as_of]`` (the partition date is the event time's UTC date).
    """
    import pyarrow.fs as pafs

    from nbfeatures.engine.gcs import arrow_filesystem

    fs, root = arrow_filesystem(uri)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.File:
        return fs, [root]
    if info.type != pafs.FileType.Directory:
        raise FileNotFoundError(f"no Parquet file or folder at {uri}")
    low = since.astimezone(dt.UTC).date() if since is not None else None
    high = as_of.astimezone(dt.UTC).date() if as_of is not None else None
    found = []
    for entry in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if entry.type != pafs.FileType.File:
            continue
        inner = entry.path[len(root) :].strip("/").split("/")
        if any(p.startswith(("_", ".")) for p in inner):
            continue
        day = _partition_date(entry.path)
        if day is not None and ((low and day < low) or (high and day > high)):
            continue
        found.append(entry.path)
    return fs, sorted(found)


def _entity_codes(column: pa.ChunkedArray) -> np.ndarray:
    """Integer codes equal exactly where entity keys are equal."""
    import pyarrow as pa
    import pyarrow.compute as pc

    combined = column.combine_chunks()
    if pa.types.is_integer(combined.type):
        return np.asarray(combined.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    encoded = pc.dictionary_encode(combined)
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def _micros(when: dt.datetime) -> int:
    aware = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    return (aware - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def pick_latest(
    fs: Any,
    files: list[str],
    layout: FamilyLayout,
    as_of: dt.datetime | None,
    since: dt.datetime | None,
) -> tuple[np.ndarray, int, int | None]:
    """Pass one: a mask over all source rows marking each entity's newest in-range row.

    Also returns the in-range row count and the newest picked event time (microseconds).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    entities: list[pa.Array] = []
    times: list[np.ndarray] = []
    valid: list[np.ndarray] = []
    for path in files:
        with fs.open_input_file(path) as handle:
            table = pq.ParquetFile(handle, pre_buffer=False).read(
                columns=[layout.entity_key, layout.timestamp]
            )
        # Whole arrays, not chunked ones: a chunked array's to_numpy imports pandas (~0.3 s).
        ts = table.column(layout.timestamp).combine_chunks()
        entity = table.column(layout.entity_key).combine_chunks()
        ok = np.asarray(entity.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        if ts.null_count:
            # Spark's max_by ignores rows without an event time; so does this writer.
            ok &= np.asarray(ts.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            ts = ts.fill_null(pa.scalar(0, ts.type))
        entities.append(entity)
        times.append(event_micros(ts, layout.family, layout.timestamp))
        valid.append(ok)
    total = sum(len(t) for t in times)
    mask = np.zeros(total, dtype=bool)
    if total == 0:
        return mask, 0, None
    # Memory is what this pass is about at scale: one copy of each array at a time.
    ts_all = times[0] if len(times) == 1 else np.concatenate(times)
    keep = valid[0] if len(valid) == 1 else np.concatenate(valid)
    del times, valid
    if as_of is not None:
        keep &= ts_all <= _micros(as_of)
    if since is not None:
        keep &= ts_all > _micros(since)
    every = bool(keep.all())
    rows = None if every else np.flatnonzero(keep)
    del keep
    if rows is not None and rows.size == 0:
        return mask, 0, None
    try:
        codes = _entity_codes(pa.chunked_array(entities))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(layout.family, layout.entity_key, f"mixed types: {exc}") from None
    del entities
    if rows is not None:
        codes, ts_all = codes[rows], ts_all[rows]
    # Stable: among rows of one entity with the same time, file order is kept, so the last
    # one of each entity's run is its newest row and, on a tie, the later row.
    order = np.lexsort((ts_all, codes))
    codes = codes[order]
    ends = np.empty(order.size, dtype=bool)
    np.not_equal(codes[1:], codes[:-1], out=ends[:-1])
    ends[-1] = True
    del codes
    picked = order[ends]
    del order, ends
    mask[picked if rows is None else rows[picked]] = True
    in_range = total if rows is None else int(rows.size)
    return mask, in_range, int(ts_all[picked].max())


def _batches(
    fs: Any, files: list[str], columns: list[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    for path in files:
        with fs.open_input_file(path) as handle:
            # No pre-buffering: it reads a whole file's column chunks ahead (~320 MB for 3M
            # rows of 12 columns); without it one row group's pages are held at a time.
            reader = pq.ParquetFile(handle, pre_buffer=False)
            yield from reader.iter_batches(batch_size=batch_rows, columns=columns)


def write_parquet(
    uri: str,
    layout: FamilyLayout,
    store: OnlineStore,
    key_id: str,
    *,
    as_of: dt.datetime | None = None,
    since: dt.datetime | None = None,
    batch_rows: int = 10_000,
    writers: int = 2,
) -> ArrowWriteResult:
    """Write each entity's newest row of the Parquet at ``uri`` into ``layout``'s keyspace.

    ``writers``: threads writing batches, each on its own Redis connection.
    """
    import pyarrow as pa

    fs, files = parquet_files(uri, since, as_of)
    if not files:
        return ArrowWriteResult(0, 0, 0, None)
    columns = [layout.entity_key, layout.timestamp, *layout.feature_names]
    _require_columns(fs, files[0], columns, layout)
    mask, source_rows, latest = pick_latest(fs, files, layout, as_of, since)
    # Pass one's buffers are free now; hand their pages back before streaming the features.
    pa.default_memory_pool().release_unused()
    entities = int(mask.sum())
    written = _write_batches(
        store, layout, key_id, _picked(fs, files, columns, batch_rows, mask), writers
    )
    return ArrowWriteResult(written, entities, source_rows, latest)


def _picked(
    fs: Any, files: list[str], columns: list[str], batch_rows: int, mask: np.ndarray
) -> Iterator[pa.RecordBatch]:
    """Pass two: the picked rows, regrouped into batches of about ``batch_rows`` rows."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    offset = 0
    for batch in _batches(fs, files, columns, batch_rows):
        chosen = mask[offset : offset + batch.num_rows]
        offset += batch.num_rows
        picked = int(chosen.sum())
        if picked == 0:
            continue
        part = batch if picked == batch.num_rows else batch.filter(pa.array(chosen))
        if pending and part.schema != pending[0].schema:
            yield pa.concat_batches(pending)
            pending, pending_rows = [], 0
        pending.append(part)
        pending_rows += picked
        if pending_rows >= batch_rows:
            yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)
            pending, pending_rows = [], 0
    if pending:
        yield pa.concat_batches(pending)


def _write_batches(
    store: OnlineStore,
    layout: FamilyLayout,
    key_id: str,
    batches: Iterator[pa.RecordBatch],
    writers: int,
) -> int:
    """Write ``batches`` with ``writers`` threads, each on its own pipelined connection.

    Reading Parquet, encoding and building the commands run in pyarrow and numpy kernels that
    release the GIL, so a second thread keeps Redis fed while the first builds its next
    batch. Every entity is in exactly one batch, so the order between threads is irrelevant.
    The queue holds two batches per thread: memory stays a few batches.
    """
    import queue
    import threading

    if writers <= 1:
        with store.pipelined_writer(layout, key_id) as writer:
            for batch in batches:
                writer.write(batch)
        return writer.written
    work: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=2 * writers)
    failed = threading.Event()
    errors: list[BaseException] = []
    counts: list[int] = []

    def run() -> None:
        try:
            with store.pipelined_writer(layout, key_id) as writer:
                while (batch := work.get()) is not None:
                    if not failed.is_set():
                        writer.write(batch)
            counts.append(writer.written)
        except BaseException as exc:  # handed to the caller's thread below
            errors.append(exc)
            failed.set()
            while work.get() is not None:  # drain, so the producer never blocks
                pass

    threads = [threading.Thread(target=run, name=f"nbf-writer-{i}") for i in range(writers)]
    for thread in threads:
        thread.start()
    try:
        for batch in batches:
            if failed.is_set():
                break
            work.put(batch)
    finally:
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return sum(counts)


def _require_columns(fs: Any, path: str, columns: list[str], layout: FamilyLayout) -> None:
    import pyarrow.parquet as pq

    with fs.open_input_file(path) as handle:
        names = set(pq.ParquetFile(handle).schema_arrow.names)
    for name in columns:
        if name not in names:
            raise SchemaError(layout.family, name, "missing from the Parquet to materialize")


def readable_by_arrow(uri: str) -> bool:
    """Whether pyarrow reads ``uri`` here: a local path, ``file://`` or ``gs://``."""
    return "://" not in uri or uri.startswith(("file://", "gs://"))
