"""A family's stored rows for the in-process join: read in groups and batches, over threads.

``local_pit`` joins on every row's key and time but needs the features of at most one row
per spine row. The sources here give both without holding a table in memory: Parquet row
groups (local files memory-mapped, ``gs://`` through pyarrow) or slices of an in-memory
table, each read in record batches of ``_BATCH_ROWS`` rows; ``take_rows`` reads only the
groups holding chosen rows and keeps only those rows, writing fixed-width values straight
into the answer's buffers. ``read_offline_table`` opens a family version's offline set
(or its join index).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from nbfeatures._deps import require
from nbfeatures.errors import OfflineDataMissing

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from nbfeatures.config import Settings

    Ints = npt.NDArray[np.int64]
    Bools = npt.NDArray[np.bool_]

# An in-memory table is pruned in slices of this many rows, spread over threads.
_TABLE_GROUP_ROWS = 1 << 20
# Groups are decoded and pruned in batches of this many rows: the temporary arrays stay in
# cache and their memory is reused, where whole groups would fault in fresh pages each time.
_BATCH_ROWS = 1 << 16
# When Arrow's threads decode a group's columns, batches this large pay for their dispatch.
_PARALLEL_BATCH_ROWS = 1 << 20
_T = TypeVar("_T")


class RowSource(Protocol):
    """A family's rows in groups (row groups, table slices), each read in record batches."""

    @property
    def schema(self) -> Any:
        """The rows' ``pyarrow.Schema``."""
        ...

    @property
    def counts(self) -> tuple[int, ...]:
        """Rows of each group, in row order."""
        ...

    def group_reader(
        self, parallel_columns: bool = False
    ) -> Callable[[int, Sequence[str]], Iterator[Any]]:
        """A function giving these columns of one group as ``pyarrow.RecordBatch``es, in
        row order; threads may call it at once. With ``parallel_columns``, a group's
        columns may be decoded on Arrow's threads (when groups are fewer than threads)."""
        ...


@dataclass(frozen=True)
class TableRows:
    """Rows already in memory as a ``pyarrow.Table``, in groups of ``group_rows`` rows."""

    table: Any
    group_rows: int = _TABLE_GROUP_ROWS
    batch_rows: int = _BATCH_ROWS

    @property
    def schema(self) -> Any:
        return self.table.schema

    @property
    def counts(self) -> tuple[int, ...]:
        n, size = self.table.num_rows, self.group_rows
        return tuple(min(size, n - start) for start in range(0, n, size))

    def group_reader(
        self, parallel_columns: bool = False
    ) -> Callable[[int, Sequence[str]], Iterator[Any]]:
        def read(index: int, columns: Sequence[str]) -> Iterator[Any]:
            sliced = self.table.slice(index * self.group_rows, self.group_rows)
            return iter(sliced.select(list(columns)).to_batches(self.batch_rows))

        return read


@dataclass(frozen=True)
class ParquetRows:
    """Rows of Parquet files, read one row group at a time, groups spread over threads.

    The join needs every row's key and time but the features of at most one row per spine
    row: reading the features row group by row group, keeping only the chosen rows, never
    holds all of them in memory and is several times faster than reading them whole and
    gathering from the big table (the small per-group tables stay in cache).
    """

    schema: Any  # pyarrow.Schema
    files: tuple[tuple[Any, str], ...]  # (pyarrow filesystem, path)
    groups: tuple[tuple[int, int], ...]  # (index in files, row group), in row order
    counts: tuple[int, ...]  # rows of each group
    batch_rows: int = _BATCH_ROWS

    @classmethod
    def from_dataset(cls, dataset: Any, condition: Any = None) -> ParquetRows:
        """The row groups of a ``pyarrow.dataset`` (optionally only its matching partitions)."""
        files: list[tuple[Any, str]] = []
        groups: list[tuple[int, int]] = []
        counts: list[int] = []
        for fragment in dataset.get_fragments(filter=condition):
            metadata = fragment.metadata
            for group in range(metadata.num_row_groups):
                groups.append((len(files), group))
                counts.append(metadata.row_group(group).num_rows)
            files.append((fragment.filesystem, fragment.path))
        return cls(dataset.schema, tuple(files), tuple(groups), tuple(counts))

    @classmethod
    def from_paths(cls, paths: Sequence[str]) -> ParquetRows:
        """The row groups of local Parquet files."""
        ds = require("pyarrow.dataset", "spark")
        return cls.from_dataset(ds.dataset(list(paths), format="parquet"))

    def _open(self, index: int) -> Any:
        pq = require("pyarrow.parquet", "spark")
        pafs = require("pyarrow.fs", "spark")
        filesystem, path = self.files[index]
        if isinstance(filesystem, pafs.LocalFileSystem):
            return pq.ParquetFile(path, memory_map=True)
        return pq.ParquetFile(filesystem.open_input_file(path))

    def group_reader(
        self, parallel_columns: bool = False
    ) -> Callable[[int, Sequence[str]], Iterator[Any]]:
        # Each thread opens a file once (a remote open reads its footer) and, when there
        # are groups enough for every thread, decodes alone: Arrow's column threads would
        # compete with the other groups' threads.
        local = threading.local()

        def read(index: int, columns: Sequence[str]) -> Iterator[Any]:
            opened: dict[int, Any] = local.__dict__.setdefault("files", {})
            file, group = self.groups[index]
            if file not in opened:
                opened[file] = self._open(file)
            return opened[file].iter_batches(  # type: ignore[no-any-return]
                max(self.batch_rows, _PARALLEL_BATCH_ROWS) if parallel_columns else self.batch_rows,
                row_groups=[group],
                columns=list(columns),
                use_threads=parallel_columns,
            )

        return read


def take_rows(source: RowSource, rows: Ints, columns: Sequence[str], threads: int = 1) -> Any:
    """These columns of ``source`` at ``rows`` (``-1``: a null row), in that order.

    Only the groups holding chosen rows are read, batch by batch, on up to ``threads``
    threads, keeping only the chosen rows.
    """
    np = require("numpy", "spark")
    pa = require("pyarrow", "spark")
    names = list(columns)
    wanted = np.flatnonzero(rows >= 0)
    ascending, at = sort_with_index(rows[wanted])
    asked_at = wanted[at]  # where each ascending row goes in the answer
    starts = np.concatenate([[0], np.cumsum(source.counts, dtype=np.int64)])
    bounds = np.searchsorted(ascending, starts)
    busy = [i for i in range(len(source.counts)) if bounds[i + 1] > bounds[i]]
    read = source.group_reader(parallel_columns=threads > len(busy))

    def pieces(index: int) -> Iterator[tuple[Any, Ints, Ints]]:
        low, high = bounds[index], bounds[index + 1]
        local = ascending[low:high] - starts[index]
        return _batch_rows(read(index, names), local, asked_at[low:high])

    types = [source.schema.field(c).type for c in names]
    if all(_fixed_width(t) for t in types):
        # Straight into the answer's buffers: no gathered table to reorder afterwards.
        target = _Scatter.empty(types, len(rows))

        def fill(index: int) -> None:
            for piece in pieces(index):
                target.put(*piece)

        map_threads(fill, busy, threads)
        return pa.table(target.arrays(rows < 0), names=names)

    # No row chosen: the columns' types still come from the schema.
    empty = source.schema.empty_table().select(names)

    def gather(index: int) -> list[tuple[Any, Ints]]:
        # A file may store a column in another type than the dataset's: cast as in put.
        return [
            (batch.take(pa.array(at)).cast(empty.schema), to) for batch, at, to in pieces(index)
        ]

    taken = [piece for part in map_threads(gather, busy, threads) for piece in part]
    batches = [batch for batch, _ in taken]
    gathered = pa.Table.from_batches(batches, empty.schema) if taken else empty
    # Back to the asked order; -1 rows become nulls.
    position = np.full(len(rows), -1, np.int64)
    if taken:
        position[np.concatenate([to for _, to in taken])] = np.arange(len(wanted))
    return _take_columns(gathered.combine_chunks(), position, threads)


def _batch_rows(
    batches: Iterator[Any], rows: Ints, asked_at: Ints
) -> Iterator[tuple[Any, Ints, Ints]]:
    """Each batch holding some of ``rows`` (ascending, numbered from the first batch's
    start), those rows within it and where they go in the answer."""
    np = require("numpy", "spark")
    start = 0
    for batch in batches:
        low, high = np.searchsorted(rows, [start, start + batch.num_rows])
        if high > low:
            yield batch, rows[low:high] - start, asked_at[low:high]
        start += batch.num_rows
        if high == len(rows):
            return


def _fixed_width(kind: Any) -> bool:
    """Numbers and times stored as whole bytes: copied as plain numpy values."""
    pa = require("pyarrow", "spark")
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
    if not (numeric or pa.types.is_temporal(kind)):
        return False
    return getattr(kind, "bit_width", 0) in _UNSIGNED


# Fixed-width values are moved as unsigned integers of their width: bit for bit.
_UNSIGNED = {8: "uint8", 16: "uint16", 32: "uint32", 64: "uint64"}


@dataclass(frozen=True)
class _Scatter:
    """Fixed-width answer columns that threads fill in place at disjoint positions."""

    types: tuple[Any, ...]
    values: tuple[Any, ...]  # numpy arrays of the values' bits
    nulls: tuple[Bools, ...]  # null in the source at a filled position

    @classmethod
    def empty(cls, types: Sequence[Any], n: int) -> _Scatter:
        np = require("numpy", "spark")
        values = tuple(np.empty(n, _UNSIGNED[t.bit_width]) for t in types)
        return cls(tuple(types), values, tuple(np.zeros(n, np.bool_) for _ in types))

    def put(self, batch: Any, rows: Ints, asked_at: Ints) -> None:
        """Copy ``rows`` of ``batch`` to positions ``asked_at``."""
        np = require("numpy", "spark")
        for kind, values, nulls, column in zip(
            self.types, self.values, self.nulls, batch.columns, strict=True
        ):
            if column.type != kind:  # a file whose type differs from the dataset's
                column = column.cast(kind)
            count = column.offset + len(column)
            bits = np.frombuffer(column.buffers()[1], values.dtype, count)[column.offset :]
            values[asked_at] = bits[rows]
            if column.null_count:
                valid = column.is_valid().to_numpy(zero_copy_only=False)
                nulls[asked_at] = ~valid[rows]

    def arrays(self, missing: Bools) -> list[Any]:
        """The columns as Arrow arrays; ``missing`` positions (and source nulls) are null."""
        np = require("numpy", "spark")
        pa = require("pyarrow", "spark")
        arrays = []
        for kind, values, nulls in zip(self.types, self.values, self.nulls, strict=True):
            invalid = missing | nulls
            validity = None
            if invalid.any():
                validity = pa.py_buffer(np.packbits(~invalid, bitorder="little"))
            buffers = [validity, pa.py_buffer(values)]
            arrays.append(pa.Array.from_buffers(kind, len(values), buffers))
        return arrays


def sort_with_index(values: Ints) -> tuple[Ints, Ints]:
    """``values`` ascending and, for each, its index in ``values``.

    Small non-negative values and their index share one ``int64`` whose plain sort (vectorized,
    several times faster than ``argsort``) carries the index along.
    """
    np = require("numpy", "spark")
    if values.size and values.min() >= 0 and values.max() < 1 << 31 and values.size < 1 << 32:
        packed = np.sort((values << 32) | np.arange(values.size, dtype=np.int64))
        return packed >> 32, packed & 0xFFFFFFFF
    order = np.argsort(values, kind="stable")
    return values[order], order


def _take_columns(table: Any, rows: Ints, threads: int) -> Any:
    """``table`` at ``rows`` (``-1``: null), one column per thread."""
    pa = require("pyarrow", "spark")
    pc = require("pyarrow.compute", "spark")
    indices = pa.array(rows, pa.int64(), mask=rows < 0)
    columns = map_threads(lambda c: pc.take(c, indices), table.columns, threads)
    return pa.table(columns, schema=table.schema) if columns else table.take(indices)


def map_threads(function: Callable[[Any], _T], items: Sequence[Any], threads: int) -> list[_T]:
    """``function`` of each item, in order, on up to ``threads`` threads.

    numpy's sorts, searches and gathers and Arrow's reads release the GIL, so threads use
    the cores without copying arrays to other processes.
    """
    if threads <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(min(threads, len(items))) as pool:
        return list(pool.map(function, items))


def as_source(rows: Any) -> RowSource:
    """A ``RowSource`` for a ``pyarrow.Table``, ``ParquetRows`` or another source."""
    if isinstance(rows, ParquetRows | TableRows):
        return rows
    if hasattr(rows, "group_reader") and hasattr(rows, "counts"):
        return rows  # type: ignore[no-any-return]
    return TableRows(rows)


def offline_rows(
    settings: Settings,
    family: str,
    version: int,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> int | None:
    """Rows the manifest counts on the UTC dates of ``[start, end]``; ``None`` if unknown."""
    from nbfeatures.engine.offline import read_manifest

    manifest = read_manifest(settings, family, version)
    if manifest is None:
        return None
    low = start.date().isoformat() if start is not None else ""
    high = end.date().isoformat() if end is not None else "9999"
    return sum(int(p["rows"]) for d, p in manifest.partitions.items() if low <= d <= high)


def read_offline_table(
    settings: Settings,
    family: str,
    version: int,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> Any:
    """The stored rows of a family version for the in-process join: its join index
    (``engine.join_index``) when one matches the manifest, else its Parquet on the UTC dates
    of ``[start, end]``.

    Local roots and ``gs://`` alike (``engine.gcs``); nothing is read until the join asks.
    Only the dates are pruned: rows outside the exact bounds can never be chosen by the join,
    which drops them itself (so the index, which holds every date, gives the same answer).
    """
    from nbfeatures.engine.join_index import open_index
    from nbfeatures.engine.offline import arrow_dataset, date_filter, read_manifest, version_path

    manifest = read_manifest(settings, family, version)
    if manifest is None:
        now = dt.datetime.now(dt.UTC)
        raise OfflineDataMissing(family, version, start or now, end or now)
    path = version_path(settings, family, version)

    def parquet() -> ParquetRows:
        return ParquetRows.from_dataset(
            arrow_dataset(path, settings.gcs_emulator), date_filter(start, end)
        )

    return open_index(manifest, path, parquet) or parquet()
