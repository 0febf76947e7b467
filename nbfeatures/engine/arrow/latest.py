"""The Arrow engine's latest row per entity: pyarrow reads the offline Parquet, no JVM.

For Spark in local mode the executors are this machine's processes anyway, and a fresh
process pays ~10 s to start the JVM and another ~10 s for its first job before a single value
reaches Redis, while the write itself is bound by Redis. This reader does Spark's part in
the calling process, with no JVM (``latest_rows``), and the online store writes the batches
(``nbfeatures.online.arrow_writer``):

1. Pass one picks, per entity, the position of its newest row with ``since < time <= as_of``
   (a stable sort, so on a tie the later row in file order wins, as
   ``OnlineStore.write_rows`` does within a batch). The files are read in a fixed order, so a
   row's position is stable between passes. The entities are split into slices by a hash of
   their key, about ``slice_rows`` source rows each (the count comes from the Parquet
   footers, no data is read for it); for each slice the entity and event-time columns are
   read batch by batch, only that slice's in-range rows are kept and sorted, and their
   picks are set in a bit mask over all source rows. One slice (a table of up to
   ``slice_rows`` rows) reads those two columns once, as before slicing; n slices read them
   n times. That is little next to the Redis writes at millions of rows (3M rows, 3 slices:
   ~0.5 s of reading against ~15 s of writing, locally), but the reading grows with the
   square of the table: a table of 30M rows is read 30 times.
2. Pass two streams the files once more in batches of ``batch_rows`` rows with every column
   needed, keeps the rows set in the mask and yields full batches; the store's
   ``PipelinedWriter`` builds the same commands as ``OnlineStore.write_rows``
   (values by ``nbfeatures.online.codec.encode``) and keeps one batch in flight, so Redis
   works on batch k+1 while this process reads batch k's replies and encodes the next.
   For a packed version the picked rows are first regrouped by bucket
   (``nbfeatures.online.bucket_order``: in memory up to 250k rows, else spilled to temporary
   Arrow files in parts of about that size), so each bucket is written by one command.

Memory is bounded by ``slice_rows`` (pass one: ~65 bytes per row of one slice, ~65 MB for
the default 1M), by a few batches of ``batch_rows`` and one Parquet row group's pages (pass
two), not by the table: the only part that grows with the table is the mask, one bit per
source row (125 KB per million rows). Pass two runs once over the mask rather than once per
slice, so the feature columns are read and decoded once however many slices there are.
Partitions ``event_date=YYYY-MM-DD`` outside the requested range are not read at all. The
values and keys are byte for byte those of the Spark path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures.arrow_arrays import event_micros, null_mask
from nbfeatures.engine.arrow.slices import entity_codes, int_keys, slice_count, slice_of
from nbfeatures.engine.gcs import arrow_filesystem
from nbfeatures.engine.port import LatestRows
from nbfeatures.errors import SchemaError

if TYPE_CHECKING:
    import pyarrow as pa

    from nbfeatures.engine.port import LatestColumns as FamilyLayout

_PARTITION = "event_date="
# Pass one sorts about this many source rows at a time (one slice of the entities): ~65 MB.
SLICE_ROWS = 1_000_000
# Rows of the key and event-time columns read at a time in pass one (~1 MB).
_SCAN_ROWS = 65_536
# Bytes read at a time from a local Parquet file (see ``_batches``).
_STREAM = 1 << 20


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
    uri: str,
    since: dt.datetime | None = None,
    as_of: dt.datetime | None = None,
    emulator: str | None = None,
) -> tuple[Any, list[str]]:
    """The filesystem and the sorted Parquet files under ``uri`` (a file or a folder).

    Files and folders whose names start with ``_`` or ``.`` are skipped (Spark's markers, the
    manifest), and so are ``event_date`` partitions that cannot hold an event time in
    ``(since, as_of]`` (the partition date is the event time's UTC date). A ``gs://`` uri
    is read through ``emulator`` if given (``settings.gcs_emulator``).
    """
    import pyarrow.fs as pafs

    fs, root = arrow_filesystem(uri, emulator=emulator)
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


def _micros(when: dt.datetime) -> int:
    aware = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    return (aware - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


# -- pass one: each entity's newest row, one slice at a time -----------------------------------

Window = tuple[int | None, int | None]  # (since, as_of) in microseconds, either may be open


@dataclass(frozen=True)
class Picks:
    """Pass one's result: the rows to write and the counts ``write_parquet`` reports."""

    mask: np.ndarray  # one bit per source row (``np.packbits`` order), set on picked rows
    source_rows: int  # rows with a key and an event time in ``(since, as_of]``
    entities: int
    latest_us: int | None  # the newest picked event time


@dataclass
class _SliceRows:
    """One slice's in-range rows, gathered batch by batch in file order."""

    positions: list[np.ndarray] = field(default_factory=list)
    times: list[np.ndarray] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)  # int64 arrays, or Arrow arrays of the keys


def _keep(
    batch: pa.RecordBatch, layout: FamilyLayout, window: Window
) -> tuple[np.ndarray, np.ndarray]:
    """The event times of ``batch`` (microseconds) and where a row has a key and is in range."""
    import pyarrow as pa

    ts = batch.column(layout.timestamp)
    entity = batch.column(layout.entity_key)
    ok = ~null_mask(entity)
    if ts.null_count:
        # Spark's max_by ignores rows without an event time; so does this writer.
        ok &= ~null_mask(ts)
        ts = ts.fill_null(pa.scalar(0, ts.type))
    times = event_micros(ts, layout.family, layout.timestamp)
    since_us, as_of_us = window
    if as_of_us is not None:
        ok &= times <= as_of_us
    if since_us is not None:
        ok &= times > since_us
    return times, ok


def _gather_slice(
    fs: Any,
    files: list[str],
    layout: FamilyLayout,
    window: Window,
    part: tuple[int, int],
    scan_rows: int,
) -> _SliceRows:
    """Read the key and event-time columns batch by batch; keep this slice's in-range rows."""
    import pyarrow as pa

    index, slices = part
    gathered = _SliceRows()
    offset = 0
    for batch in _batches(fs, files, [layout.entity_key, layout.timestamp], scan_rows):
        times, ok = _keep(batch, layout, window)
        entity = batch.column(layout.entity_key)
        try:
            values = int_keys(entity) if pa.types.is_integer(entity.type) else None
        except pa.ArrowInvalid as exc:  # uint64 keys past int64's range
            raise SchemaError(layout.family, layout.entity_key, f"mixed types: {exc}") from None
        if slices > 1:
            ok &= slice_of(entity, values, slices) == index
        rows = np.flatnonzero(ok)
        if rows.size:
            gathered.positions.append(rows + offset)
            gathered.times.append(times[rows])
            gathered.keys.append(values[rows] if values is not None else entity.take(rows))
        offset += batch.num_rows
    return gathered


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """``parts`` as one array; the list is emptied, so each part is freed once copied."""
    joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
    parts.clear()
    return joined


def _newest(gathered: _SliceRows, layout: FamilyLayout) -> tuple[np.ndarray, np.ndarray]:
    """The positions of each entity's newest row among ``gathered``, and their event times.

    ``gathered`` is emptied on the way: the sort needs the memory.
    """
    import pyarrow as pa

    positions = _joined(gathered.positions)
    times = _joined(gathered.times)
    if isinstance(gathered.keys[0], np.ndarray):
        codes = _joined(gathered.keys)
    else:
        try:
            codes = entity_codes(pa.chunked_array(gathered.keys))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaError(layout.family, layout.entity_key, f"mixed types: {exc}") from None
        gathered.keys.clear()
    # Stable: among rows of one entity with the same time, file order is kept, so the last
    # one of each entity's run is its newest row and, on a tie, the later row.
    order = np.lexsort((times, codes))
    codes = codes[order]
    ends = np.empty(order.size, dtype=bool)
    np.not_equal(codes[1:], codes[:-1], out=ends[:-1])
    ends[-1] = True
    del codes
    picked = order[ends]
    return positions[picked], times[picked]


def pick_latest(
    fs: Any,
    files: list[str],
    layout: FamilyLayout,
    as_of: dt.datetime | None,
    since: dt.datetime | None,
    *,
    total_rows: int,
    slice_rows: int = SLICE_ROWS,
    scan_rows: int = _SCAN_ROWS,
) -> Picks:
    """Pass one: mark each entity's newest in-range row among the ``total_rows`` source rows.

    The entities are split into ``slice_count(total_rows, slice_rows)`` slices by a hash of
    their key, and the key and event-time columns are read once per slice, ``scan_rows`` rows
    at a time, keeping only that slice's rows: the sort that picks the newest row holds one
    slice, about ``slice_rows`` rows, never the whole table.
    """
    import pyarrow as pa

    mask = np.zeros((total_rows + 7) // 8, dtype=np.uint8)
    window: Window = (
        None if since is None else _micros(since),
        None if as_of is None else _micros(as_of),
    )
    slices = slice_count(total_rows, slice_rows)
    source_rows = entities = 0
    latest: int | None = None
    for index in range(slices):
        gathered = _gather_slice(fs, files, layout, window, (index, slices), scan_rows)
        if not gathered.positions:
            continue
        source_rows += sum(len(p) for p in gathered.positions)
        positions, times = _newest(gathered, layout)
        # Not ``mask[...] |= ...``: several picked rows may share a byte of the mask.
        bits = np.right_shift(np.uint8(128), (positions & 7).astype(np.uint8))
        np.bitwise_or.at(mask, positions >> 3, bits)
        entities += int(positions.size)
        newest = int(times.max())
        latest = newest if latest is None else max(latest, newest)
        pa.default_memory_pool().release_unused()
    return Picks(mask, source_rows, entities, latest)


def _chosen(mask: np.ndarray, start: int, rows: int) -> np.ndarray:
    """The mask's bits for source rows ``start .. start + rows - 1``, as booleans."""
    low = start & 7
    packed = mask[start >> 3 : (start + rows + 7) >> 3]
    return np.unpackbits(packed)[low : low + rows].astype(bool)


def _batches(
    fs: Any, files: list[str], columns: list[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    # A local file is streamed: its column chunks are read 1 MiB at a time, not whole, and
    # decoded on this thread. Measured on 12 columns in row groups of 250k rows, that holds
    # ~30 MB less at 3M rows and the peak no longer creeps up with the row groups read (the
    # Redis writes, not reading, are the bottleneck). Remote files keep whole column-chunk
    # reads: 1 MiB requests would multiply the round trips.
    local = isinstance(fs, pafs.LocalFileSystem)
    for path in files:
        with fs.open_input_file(path) as handle:
            # No pre-buffering: it reads a whole file's column chunks ahead (~320 MB for 3M
            # rows of 12 columns); without it one row group's pages are held at a time.
            reader = pq.ParquetFile(handle, pre_buffer=False, buffer_size=_STREAM if local else 0)
            yield from reader.iter_batches(
                batch_size=batch_rows, columns=columns, use_threads=not local
            )


def _picked(
    fs: Any, files: list[str], columns: list[str], batch_rows: int, mask: np.ndarray
) -> Iterator[pa.RecordBatch]:
    """Pass two: the rows set in ``mask``, regrouped into batches of about ``batch_rows`` rows."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    offset = 0
    for batch in _batches(fs, files, columns, batch_rows):
        chosen = _chosen(mask, offset, batch.num_rows)
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


def _source_rows(fs: Any, files: list[str], columns: list[str], layout: FamilyLayout) -> int:
    """The row count of ``files``, from their footers (no data is read).

    Also checks that the first file has ``columns`` and that every file's entity key has one
    type: keys of two types never compare equal, whichever slices they fall in.
    """
    import pyarrow.parquet as pq

    total = 0
    key_type = None
    for path in files:
        with fs.open_input_file(path) as handle:
            reader = pq.ParquetFile(handle)
            schema, total = reader.schema_arrow, total + reader.metadata.num_rows
        if key_type is None:
            for name in columns:
                if name not in schema.names:
                    raise SchemaError(
                        layout.family, name, "missing from the Parquet to materialize"
                    )
            key_type = schema.field(layout.entity_key).type
        elif schema.field(layout.entity_key).type != key_type:
            seen = schema.field(layout.entity_key).type
            raise SchemaError(
                layout.family, layout.entity_key, f"mixed types: {key_type} and {seen} in {path}"
            )
    return total


def readable_by_arrow(uri: str) -> bool:
    """Whether pyarrow reads ``uri`` here: a local path, ``file://`` or ``gs://``."""
    return "://" not in uri or uri.startswith(("file://", "gs://"))


def latest_rows(
    uri: str,
    columns: FamilyLayout,
    *,
    as_of: dt.datetime | None = None,
    since: dt.datetime | None = None,
    batch_rows: int = 10_000,
    slice_rows: int = SLICE_ROWS,
    emulator: str | None = None,
) -> LatestRows:
    """Each entity's newest row of the Parquet at ``uri``: pass one now, pass two lazily.

    The counts are known when this returns (the store sizes a packed version's buckets with
    them); the batches, about ``batch_rows`` rows each, are read as they are consumed.
    ``slice_rows``: about how many source rows pass one sorts at a time (``pick_latest``);
    ``emulator``: the GCS emulator to read a ``gs://`` uri through.
    """
    if slice_rows <= 0:
        raise ValueError("slice_rows must be positive")
    fs, files = parquet_files(uri, since, as_of, emulator)
    if not files:
        return LatestRows(0, 0, None, iter(()))
    names = [columns.entity_key, columns.timestamp, *columns.feature_names]
    total_rows = _source_rows(fs, files, names, columns)
    picks = pick_latest(
        fs,
        files,
        columns,
        as_of,
        since,
        total_rows=total_rows,
        slice_rows=slice_rows,
        scan_rows=max(batch_rows, _SCAN_ROWS),
    )
    batches = _picked(fs, files, names, batch_rows, picks.mask)
    return LatestRows(picks.entities, picks.source_rows, picks.latest_us, batches)
