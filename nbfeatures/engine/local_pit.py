"""The point-in-time join in this process, on Arrow columns with numpy: no Spark, no shuffle.

It gives exactly the answer of the Spark join in ``nbfeatures.engine.pit`` (read its docstring
for the rule): for each spine row and family, the row of the same entity with the greatest
event time ``t <= T`` and, with a ttl, ``t >= T - ttl``; among rows of one entity sharing that
time, the one whose features sort last in Spark's order (nulls first, NaN last, ``-0.0`` equal
to ``0.0``); null features when none is valid. Event times are compared in microseconds, as
Spark stores them; every spine row comes out once, in the spine's order.

How (per family; one sort of the feature rows, none of the features themselves):

1. Entity keys become integer codes shared by spine and features: for integer keys over a
   dense range, the key minus the smallest spine key; otherwise the position in the spine's
   distinct keys (a hash lookup). Feature rows whose entity is not in the spine, or whose
   time is after the spine's latest or (with a ttl) before its earliest minus the ttl, can
   never be chosen and are dropped before sorting.
2. Each row gets one ``int64`` compound key ``code * span + time``: sorting it once orders the
   rows by (entity, time). When that product would overflow, times are replaced by their rank.
3. Each spine row's compound key is looked up with ``searchsorted(side="right") - 1`` on the
   sorted keys (spine keys sorted first, which keeps the binary searches cache friendly): the
   position found is the latest row at or before the spine time; it belongs to the spine's
   entity or there is none. The ttl is then checked on the row's real time.
4. Runs of equal compound keys (one entity, one time) are rare; only runs that were chosen are
   ordered by their features, with Arrow's multi-column sort.
5. The features are gathered with one ``take`` per family (null where nothing was valid).

``to_pandas`` gives the result the same pandas types as the Spark path's ``toPandas``:
nullable ``Int64``/``Int32``/``boolean`` for integer and boolean columns, UTC-aware
nanosecond timestamps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from nbfeatures._deps import require
from nbfeatures.engine.pit import OutputColumns, check_columns, group_by_key
from nbfeatures.errors import DefinitionError, OfflineDataMissing

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from nbfeatures.config import Settings

    Ints = npt.NDArray[np.int64]
    Bools = npt.NDArray[np.bool_]

# Integer keys whose spine range is at most this many times the spine's rows (or under
# _DENSE_FLOOR) are coded by offset, through a lookup table of that size; others are hashed.
_DENSE_FACTOR = 8
_DENSE_FLOOR = 1 << 22
_MAX_COMPOUND = (1 << 62) - 1


@dataclass(frozen=True)
class ArrowFeatures(OutputColumns):
    """One family's rows as an Arrow table, with its key, time and feature columns."""

    name: str
    table: Any  # a pyarrow.Table, ParquetRows or another RowSource
    join_key: str
    timestamp: str
    features: tuple[str, ...]
    ttl: dt.timedelta | None = None


class RowSource(Protocol):
    """A family's rows: some columns whole, others only at chosen rows."""

    def read(self, columns: Sequence[str]) -> Any:
        """These columns for every row, as a ``pyarrow.Table``."""
        ...

    def take(self, rows: Ints, columns: Sequence[str]) -> Any:
        """These columns at ``rows`` (``-1``: a null row), in that order."""
        ...


@dataclass(frozen=True)
class TableRows:
    """Rows already in memory as a ``pyarrow.Table``."""

    table: Any

    def read(self, columns: Sequence[str]) -> Any:
        return self.table.select(list(columns))

    def take(self, rows: Ints, columns: Sequence[str]) -> Any:
        pa = require("pyarrow", "spark")
        return self.table.select(list(columns)).take(pa.array(rows, pa.int64(), mask=rows < 0))


@dataclass(frozen=True)
class ParquetRows:
    """Rows of Parquet files, read one row group at a time.

    The join needs every row's key and time but the features of at most one row per spine
    row: reading the features row group by row group, keeping only the chosen rows, never
    holds all of them in memory and is several times faster than reading them whole and
    gathering from the big table (the small per-group tables stay in cache).
    """

    schema: Any  # pyarrow.Schema
    files: tuple[tuple[Any, str], ...]  # (pyarrow filesystem, path)
    groups: tuple[tuple[int, int], ...]  # (index in files, row group), in row order
    counts: tuple[int, ...]  # rows of each group

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

    def read(self, columns: Sequence[str]) -> Any:
        pa = require("pyarrow", "spark")
        names = list(columns)
        tables = [self._open(i).read(columns=names) for i in range(len(self.files))]
        if not tables:
            return self.schema.empty_table().select(names)
        return pa.concat_tables(tables)

    def take(self, rows: Ints, columns: Sequence[str]) -> Any:
        np = require("numpy", "spark")
        pa = require("pyarrow", "spark")
        names = list(columns)
        wanted = np.flatnonzero(rows >= 0)
        order = np.argsort(rows[wanted], kind="stable")
        ascending = rows[wanted][order]
        starts = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])
        bounds = np.searchsorted(ascending, starts)
        opened: dict[int, Any] = {}
        parts = []
        for i, (file, group) in enumerate(self.groups):
            if bounds[i + 1] == bounds[i]:
                continue
            if file not in opened:
                opened[file] = self._open(file)
            local = ascending[bounds[i] : bounds[i + 1]] - starts[i]
            parts.append(opened[file].read_row_group(group, columns=names).take(pa.array(local)))
        if not parts:  # no row chosen: the columns' types still come from the schema
            parts = [self.schema.empty_table().select(names)]
        gathered = pa.concat_tables(parts)
        # Back to the asked order; -1 rows become nulls.
        position = np.full(len(rows), -1, np.int64)
        position[wanted[order]] = np.arange(len(wanted))
        return gathered.take(pa.array(position, pa.int64(), mask=position < 0))


def as_source(rows: Any) -> RowSource:
    """A ``RowSource`` for a ``pyarrow.Table``, ``ParquetRows`` or another source."""
    if isinstance(rows, ParquetRows | TableRows):
        return rows
    if hasattr(rows, "read") and hasattr(rows, "take") and not hasattr(rows, "column_names"):
        return rows  # type: ignore[no-any-return]
    return TableRows(rows)


def point_in_time_join_arrow(
    spine: Any,
    families: Sequence[ArrowFeatures],
    *,
    timestamp_column: str,
    include_event_times: bool = False,
) -> Any:
    """``pit.point_in_time_join`` on a ``pyarrow.Table`` spine; returns a ``pyarrow.Table``.

    The spine's columns come first, unchanged but for ``timestamp_column``, which becomes a
    UTC microsecond timestamp as in Spark; then each family's ``{family}__{feature}`` columns
    (and ``{family}__event_time`` with ``include_event_times``), families grouped by join key
    in first-seen order, as the Spark join orders them.
    """
    pa = require("pyarrow", "spark")
    check_columns(spine.column_names, families, timestamp_column, include_event_times)
    spine_time = to_micros(spine[timestamp_column])
    mask = None if spine_time[1] is None else ~spine_time[1]
    as_utc = pa.array(spine_time[0], pa.int64(), mask=mask)
    spine = spine.set_column(
        spine.column_names.index(timestamp_column),
        timestamp_column,
        as_utc.cast(pa.timestamp("us", tz="UTC")),
    )
    names = list(spine.column_names)
    columns = [spine[c] for c in names]
    for key, group in group_by_key(families).items():
        key_type = spine[key].type
        for family in group:
            source = as_source(family.table)
            rows, event_us, family_key_type = _match(spine[key], spine_time, family, source)
            key_type = _wider(key_type, family_key_type)
            values = source.take(rows, family.features)
            for feature in family.features:
                names.append(family.column(feature))
                columns.append(values[feature])
            if include_event_times:
                names.append(family.event_time_column)
                columns.append(
                    pa.array(event_us, pa.int64(), mask=rows < 0).cast(pa.timestamp("us", tz="UTC"))
                )
        # Spark unions spine and feature rows, so the spine's key takes the wider type.
        columns[names.index(key)] = columns[names.index(key)].cast(key_type)
    return pa.table(columns, names=names)


def _wider(left: Any, right: Any) -> Any:
    """The type Spark gives a column holding both: the later of int8 … int64, float, double."""
    pa = require("pyarrow", "spark")
    ladder = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.float32(), pa.float64()]
    if left == right or left not in ladder or right not in ladder:
        return left
    return ladder[max(ladder.index(left), ladder.index(right))]


def to_micros(column: Any) -> tuple[Ints, Bools | None]:
    """Microseconds since the epoch (UTC) and a validity mask (``None``: no nulls).

    As Spark's cast gives them: naive timestamps are taken as UTC (the session time zone;
    Spark's INT96 Parquet reads back naive in pyarrow), dates are their UTC midnight, finer
    units are truncated.
    """
    pa = require("pyarrow", "spark")
    kind = column.type
    if pa.types.is_date(kind):
        column = column.cast(pa.timestamp("us"))
    elif not pa.types.is_timestamp(kind):
        raise DefinitionError(
            "timestamp", f"expected a timestamp or date column, got Arrow type {kind}"
        )
    micros = column.cast(pa.timestamp("us", tz=getattr(column.type, "tz", None)), safe=False)
    return _int64(micros.cast(pa.int64()))


def _int64(column: Any) -> tuple[Ints, Bools | None]:
    """An integer column as ``int64`` numpy values (nulls as 0) and its validity mask."""
    pa = require("pyarrow", "spark")
    pc = require("pyarrow.compute", "spark")
    if column.type != pa.int64():
        column = column.cast(pa.int64())
    if not column.null_count:
        return column.to_numpy(), None
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    return pc.fill_null(column, 0).to_numpy(), valid


def _codes(spine_key: Any, feature_key: Any, family: str) -> tuple[Ints, Ints, int]:
    """Integer codes in ``[0, width]`` of both key columns, and ``width``.

    A null spine key gets ``-1``. A feature key that is null or not in the spine gets
    ``width`` (a sentinel slot of the per-entity tables in ``_match`` that matches nothing)
    or the code of a value in the spine's range that no spine row has (also empty there).
    """
    np = require("numpy", "spark")
    pa = require("pyarrow", "spark")
    pc = require("pyarrow.compute", "spark")
    if pa.types.is_integer(spine_key.type) and pa.types.is_integer(feature_key.type):
        s, s_valid = _int64(spine_key)
        valid_s = s if s_valid is None else s[s_valid]
        if valid_s.size == 0:
            return np.full(len(s), -1, np.int64), np.zeros(len(feature_key), np.int64), 0
        low, high = int(valid_s.min()), int(valid_s.max())
        width = high - low + 1
        if width <= max(_DENSE_FACTOR * len(s), _DENSE_FLOOR):
            s_codes = s - low
            if s_valid is not None:
                s_codes[~s_valid] = -1
            f, f_valid = _int64(feature_key)
            f_codes = f - low
            # As unsigned, keys below the spine's range are huge too: one ``minimum`` sends
            # every key outside it to the sentinel. Keys inside it but absent from the spine
            # find the per-entity tables of ``_match`` empty.
            unsigned = f_codes.view(np.uint64)
            np.minimum(unsigned, np.uint64(width), out=unsigned)
            if f_valid is not None:
                f_codes[~f_valid] = width
            return s_codes, f_codes, width
    elif spine_key.type != feature_key.type:
        try:
            feature_key = feature_key.cast(spine_key.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DefinitionError(
                f"{family}.join_key",
                f"the spine's key column is {spine_key.type} and family {family}'s is "
                f"{feature_key.type}; they cannot be compared",
            ) from None
    distinct = pc.unique(spine_key.drop_null())
    width = len(distinct)
    s_codes = pc.fill_null(pc.index_in(spine_key, value_set=distinct), -1)
    f_codes = pc.fill_null(pc.index_in(feature_key, value_set=distinct), width)
    return (
        s_codes.cast(pa.int64()).to_numpy(zero_copy_only=False),
        f_codes.cast(pa.int64()).to_numpy(zero_copy_only=False),
        width,
    )


def _match(
    spine_key: Any,
    spine_time: tuple[Ints, Bools | None],
    family: ArrowFeatures,
    source: RowSource,
) -> tuple[Ints, Ints, Any]:
    """For each spine row, the chosen feature row (``-1``: none) and its event time (µs);
    also the Arrow type of the family's key column."""
    np = require("numpy", "spark")
    s_time, s_valid = spine_time
    n = len(s_time)
    chosen = np.full(n, -1, np.int64)
    event = np.zeros(n, np.int64)
    keys_and_times = source.read((family.join_key, family.timestamp))
    key_type = keys_and_times[family.join_key].type
    if not n:
        return chosen, event, key_type
    s_codes, f_codes, width = _codes(spine_key, keys_and_times[family.join_key], family.name)
    asking = s_codes >= 0
    if s_valid is not None:
        asking &= s_valid
    if not asking.any():
        return chosen, event, key_type
    f_time, f_valid = to_micros(keys_and_times[family.timestamp])
    del keys_and_times
    ttl_us = None if family.ttl is None else family.ttl // dt.timedelta(microseconds=1)

    # Per entity, the spine's latest time (and earliest, with a ttl): a feature row after
    # its entity's latest spine time, or older than the ttl at the earliest, is never chosen.
    # The sentinel slot ``width`` (entities not in the spine) keeps nothing.
    q_codes, q_times = s_codes[asking], s_time[asking]
    latest = np.full(width + 1, np.iinfo(np.int64).min, np.int64)
    np.maximum.at(latest, q_codes, q_times)
    keep = f_time <= latest[f_codes]
    if ttl_us is not None:
        earliest = np.full(width + 1, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(earliest, q_codes, q_times)
        earliest[earliest != np.iinfo(np.int64).max] -= ttl_us
        keep &= f_time >= earliest[f_codes]
    if f_valid is not None:
        keep &= f_valid
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        return chosen, event, key_type
    codes, times = f_codes[rows], f_time[rows]
    base = int(times.min())
    span = int(times.max()) - base + 1
    if width * span <= _MAX_COMPOUND:
        f_pos = times - base
        s_pos = np.minimum(s_time - base, span - 1)
    else:  # times by rank: fewer distinct values than microseconds in the range
        distinct = np.unique(times)
        span = len(distinct)
        f_pos = np.searchsorted(distinct, times)
        s_pos = np.searchsorted(distinct, s_time, side="right") - 1
    compound = codes * span + f_pos
    order = np.argsort(compound)
    ordered = compound[order]

    asking &= s_pos >= 0  # before every kept row: nothing at or before it
    where = np.flatnonzero(asking)
    s_compound = s_codes[where] * span + s_pos[where]
    query_order = np.argsort(s_compound)
    where, s_compound = where[query_order], s_compound[query_order]
    found = np.searchsorted(ordered, s_compound, side="right") - 1
    hit = found >= 0
    found = np.where(hit, found, 0)
    hit &= ordered[found] >= s_codes[where] * span  # the same entity
    where, found = where[hit], found[hit]

    picked = order[found]
    tied = (found > 0) & (ordered[found - 1] == ordered[found])
    if tied.any():
        picked[tied] = _break_ties(family, source, rows, order, ordered, found[tied])
    f_rows = rows[picked]
    used = f_time[f_rows]
    if ttl_us is not None:
        fresh = used >= s_time[where] - ttl_us
        where, f_rows, used = where[fresh], f_rows[fresh], used[fresh]
    chosen[where] = f_rows
    event[where] = used
    return chosen, event, key_type


def _break_ties(
    family: ArrowFeatures, source: RowSource, rows: Ints, order: Ints, ordered: Ints, ends: Ints
) -> Ints:
    """For runs of equal (entity, time) ending at ``ends``: the row whose features sort last.

    Spark orders the carried struct (time, features in order) ascending with nulls first,
    NaN greater than every number and ``-0.0`` equal to ``0.0``; the last row wins.
    Returns, for each entry of ``ends``, an index into ``rows`` (like ``order``'s values).
    """
    np = require("numpy", "spark")
    pa = require("pyarrow", "spark")
    pc = require("pyarrow.compute", "spark")
    runs, inverse = np.unique(ends, return_inverse=True)
    starts = np.searchsorted(ordered, ordered[runs], side="left")
    lengths = runs - starts + 1
    run_of = np.repeat(np.arange(len(runs)), lengths)
    offsets = np.arange(len(run_of)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    members = order[np.repeat(starts, lengths) + offsets]
    values = source.take(rows[members], family.features)
    keys: dict[str, Any] = {"__run": pa.array(run_of)}
    for i, feature in enumerate(family.features):
        column = values[feature]
        if pa.types.is_floating(column.type):
            as_float = column.cast(pa.float64())
            nan = pc.fill_null(pc.is_nan(as_float), False)
            rank = pc.if_else(pc.is_null(as_float), 0, pc.if_else(nan, 2, 1))
            keys[f"c{i}"] = rank
            # Adding 0.0 turns -0.0 into 0.0; NaN and null sort by the class above.
            keys[f"v{i}"] = pc.fill_null(pc.if_else(nan, 0.0, pc.add(as_float, 0.0)), 0.0)
        elif _sortable(column.type):
            # Validity first (false < true: nulls first, as in Spark); nulls then tie only
            # among themselves, so Arrow's own null placement never decides.
            keys[f"c{i}"] = pc.is_valid(column)
            keys[f"v{i}"] = column
        else:
            raise DefinitionError(
                "features",
                f"{family.name} has rows sharing an entity and event time, and feature "
                f"{feature!r} ({column.type}) cannot order them; use engine='spark'",
            )
    table = pa.table(keys)
    sort_keys = [(name, "ascending") for name in table.column_names]
    sorted_at = pc.sort_indices(table, sort_keys=sort_keys)
    sorted_at = sorted_at.to_numpy()
    sorted_runs = run_of[sorted_at]
    last = np.flatnonzero(np.append(sorted_runs[1:] != sorted_runs[:-1], True))
    winners: Ints = members[sorted_at[last]][inverse]
    return winners


def _sortable(kind: Any) -> bool:
    pa = require("pyarrow", "spark")
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_temporal(kind)
    )


def supported(schema: Any, features: Sequence[str]) -> bool:
    """True when every feature's Arrow type can break ties (scalars: numbers, text, times)."""
    pa = require("pyarrow", "spark")
    return all(
        pa.types.is_floating(schema.field(f).type) or _sortable(schema.field(f).type)
        for f in features
    )


def to_pandas(table: Any) -> Any:
    """The pandas frame Spark's ``toPandas`` gives for these columns (see module docstring)."""
    pa = require("pyarrow", "spark")
    pd = require("pandas", "spark")
    nullable = {
        pa.int64(): pd.Int64Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.int8(): pd.Int8Dtype(),
        pa.bool_(): pd.BooleanDtype(),
    }
    out = table.to_pandas(types_mapper=nullable.get, coerce_temporal_nanoseconds=True)
    return times_in_utc(out)


def times_in_utc(out: Any) -> Any:
    """``out`` with every datetime column tz-aware in UTC (naive ones are taken as UTC)."""
    pd = require("pandas", "spark")
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            series = out[column]
            out[column] = (
                series.dt.tz_localize("UTC")
                if series.dt.tz is None
                else series.dt.tz_convert("UTC")
            )
    return out


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
) -> ParquetRows:
    """The stored rows of a family version on the UTC dates of ``[start, end]``, for pyarrow.

    Local roots and ``gs://`` alike (``engine.gcs``); nothing is read until the join asks.
    Only the dates are pruned: rows outside the exact bounds can never be chosen by the join,
    which drops them itself.
    """
    from nbfeatures.engine.gcs import arrow_filesystem
    from nbfeatures.engine.offline import PARTITION_COLUMN, read_manifest, version_path

    pa = require("pyarrow", "spark")
    ds = require("pyarrow.dataset", "spark")
    if read_manifest(settings, family, version) is None:
        now = dt.datetime.now(dt.UTC)
        raise OfflineDataMissing(family, version, start or now, end or now)
    fs, root = arrow_filesystem(version_path(settings, family, version))
    dataset = ds.dataset(
        root,
        format="parquet",
        filesystem=fs,
        partitioning=ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.string())]), flavor="hive"),
        exclude_invalid_files=False,
        ignore_prefixes=["_", "."],
    )
    condition = None
    if start is not None:
        condition = ds.field(PARTITION_COLUMN) >= start.date().isoformat()
    if end is not None:
        upper = ds.field(PARTITION_COLUMN) <= end.date().isoformat()
        condition = upper if condition is None else condition & upper
    return ParquetRows.from_dataset(dataset, condition)
