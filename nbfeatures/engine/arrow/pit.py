"""The point-in-time join in this process, on Arrow columns with numpy: no Spark, no shuffle.

It gives exactly the answer of the Spark join in ``nbfeatures.engine.spark.pit`` (read its docstring
for the rule): for each spine row and family, the row of the same entity with the greatest
event time ``t <= T`` and, with a ttl, ``t >= T - ttl``; among rows of one entity sharing that
time, the one whose features sort last in Spark's order (nulls first, NaN last, ``-0.0`` equal
to ``0.0``); null features when none is valid. Event times are compared in microseconds, as
Spark stores them; every spine row comes out once, in the spine's order.

How (per family; one sort of the candidate rows, none of the features themselves). The rows
come in groups (Parquet row groups, slices of an in-memory table) read in batches of 64k
rows; groups and entity-code ranges are spread over ``threads`` threads (numpy's sorts,
searches and gathers and Arrow's decoding release the GIL), and the answer does not depend
on how many:

1. Entity keys become integer codes shared by spine and features: for integer keys over a
   dense range, the key minus the smallest spine key; otherwise the position in the spine's
   distinct keys (a hash lookup). The spine rows are sorted once by (code, time); per code,
   the first and last of them give the window of feature times that can ever be chosen.
2. Each group's key and time columns are read batch by batch and pruned to that window:
   rows of entities not in the spine, after their entity's latest spine time or (with a
   ttl) before its earliest minus the ttl are dropped. What is left is split by code range.
3. Per code range, each candidate gets one ``int64`` compound key ``code * span + time``:
   sorting it once orders the rows by (entity, time). When that product would overflow,
   times are replaced by their rank. Each spine row's compound key (already in order,
   which keeps the binary searches cache friendly) is looked up with
   ``searchsorted(side="right") - 1``: the position found is the latest row at or before the
   spine time; it belongs to the spine's entity or there is none. The ttl is then checked
   on the row's real time.
4. Runs of equal compound keys (one entity, one time) are rare; only runs that were chosen are
   ordered by their features, with Arrow's multi-column sort.
5. The features are read only in groups holding a chosen row, batch by batch, keeping the
   chosen rows: numbers and times are written straight into the answer's buffers at their
   spine positions; other types are gathered with Arrow and put in spine order with one
   ``take`` (null where nothing was valid).

``to_pandas`` gives the result the same pandas types as the Spark path's ``toPandas``:
nullable ``Int64``/``Int32``/``boolean`` for integer and boolean columns, UTC-aware
nanosecond timestamps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.engine.arrow.rows import RowSource, as_source, map_threads, take_rows
from nbfeatures.engine.spark.pit import (
    TEXT,
    OutputColumns,
    check_columns,
    check_key_kinds,
    group_by_key,
)
from nbfeatures.errors import DefinitionError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Ints = npt.NDArray[np.int64]
    Bools = npt.NDArray[np.bool_]

# Integer keys whose range is at most this many times their count (or under _DENSE_FLOOR)
# are coded by offset, through a lookup table of that size; others are hashed or searched.
# Spine keys here, a join index's keys in ``join_index``.
_DENSE_FACTOR = 8
_DENSE_FLOOR = 1 << 22
_MAX_COMPOUND = (1 << 62) - 1


@dataclass(frozen=True)
class ArrowFeatures(OutputColumns):
    """One family's rows as an Arrow table, with its key, time and feature columns."""

    name: str
    table: Any  # a pyarrow.Table, ParquetRows, another RowSource (``arrow_rows``), JoinIndex
    join_key: str
    timestamp: str
    features: tuple[str, ...]
    ttl: dt.timedelta | None = None


def point_in_time_join_arrow(
    spine: Any,
    families: Sequence[ArrowFeatures],
    *,
    timestamp_column: str,
    include_event_times: bool = False,
    threads: int | None = None,
) -> Any:
    """``pit.point_in_time_join`` on a ``pyarrow.Table`` spine; returns a ``pyarrow.Table``.

    The spine's columns come first, unchanged but for ``timestamp_column``, which becomes a
    UTC microsecond timestamp as in Spark; then each family's ``{family}__{feature}`` columns
    (and ``{family}__event_time`` with ``include_event_times``), families grouped by join key
    in first-seen order, as the Spark join orders them. ``threads`` (default: Arrow's CPU
    count) share the reads, the pruning, the sort and the searches; the answer does not
    depend on it.
    """
    pa = require("pyarrow", "spark")
    check_columns(spine.column_names, families, timestamp_column, include_event_times)
    for family in families:
        check_key_kinds(
            family.name,
            family.join_key,
            arrow_key_kind(spine[family.join_key].type),
            str(arrow_key_kind(_stored_key_type(family))),
        )
    workers = max(1, pa.cpu_count() if threads is None else threads)
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
            rows, event_us, values, stored = _join_family(spine[key], spine_time, family, workers)
            key_type = _wider(key_type, stored)
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


def _join_family(
    spine_key: Any, spine_time: tuple[Ints, Bools | None], family: ArrowFeatures, threads: int
) -> tuple[Ints, Ints, dict[str, Any], Any]:
    """One family's chosen rows (``-1``: none), their event times (µs), the features at
    them and the Arrow type its key is stored with; from a join index when it takes this
    spine's key, else by pruning, sorting and searching the rows here."""
    from nbfeatures.engine.arrow.join_index import JoinIndex  # it builds on this module

    table = family.table
    if isinstance(table, JoinIndex) and not table.accepts(spine_key.type):
        table = table.fallback()
    if isinstance(table, JoinIndex):
        matched = table.match(spine_key, spine_time, family, threads)
        values = table.take(matched, family.features, threads)
        return matched.rows, matched.event_us, values, table.keys.type
    source = as_source(table)
    rows, event_us = _match(spine_key, spine_time, family, source, threads)
    values = take_rows(source, rows, family.features, threads)
    return rows, event_us, values, source.schema.field(family.join_key).type


def _stored_key_type(family: ArrowFeatures) -> Any:
    """The Arrow type of a family's stored keys, read from the schema (no rows read)."""
    from nbfeatures.engine.arrow.join_index import JoinIndex

    if isinstance(family.table, JoinIndex):
        return family.table.keys.type
    return as_source(family.table).schema.field(family.join_key).type


def arrow_key_kind(kind: Any) -> str | None:
    """The kind of an Arrow key type, named as ``pit.spark_key_kind`` names Spark's."""
    pa = require("pyarrow", "spark")
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return TEXT
    if pa.types.is_integer(kind):
        return "integer"
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "floating point"
    return None if pa.types.is_null(kind) else str(kind)


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


@dataclass(frozen=True)
class _Coder:
    """Integer codes in ``[0, width]`` for one family's keys, shared with the spine.

    Integer keys over a dense spine range are coded by offset (``key - low``); others by
    their position in the spine's distinct keys. A spine key that is null gets ``-1``; a
    feature key that is null or not in the spine gets ``width`` (a sentinel slot of the
    per-entity tables in ``_match`` that matches nothing) or the code of a value in the
    spine's range that no spine row has (also empty there).
    """

    spine: Ints
    width: int
    low: int | None  # offset coding
    distinct: Any  # otherwise: the spine's distinct keys, a pyarrow.Array
    key_type: Any  # the spine key's Arrow type
    family: str

    @classmethod
    def build(cls, spine_key: Any, feature_type: Any, family: str) -> _Coder:
        np = require("numpy", "spark")
        pa = require("pyarrow", "spark")
        pc = require("pyarrow.compute", "spark")
        if pa.types.is_integer(spine_key.type) and pa.types.is_integer(feature_type):
            s, s_valid = _int64(spine_key)
            valid_s = s if s_valid is None else s[s_valid]
            if valid_s.size == 0:
                return cls(np.full(len(s), -1, np.int64), 0, 0, None, spine_key.type, family)
            low, high = int(valid_s.min()), int(valid_s.max())
            width = high - low + 1
            if width <= max(_DENSE_FACTOR * len(s), _DENSE_FLOOR):
                codes = s - low
                if s_valid is not None:
                    codes[~s_valid] = -1
                return cls(codes, width, low, None, spine_key.type, family)
        distinct = pc.unique(spine_key.drop_null())
        codes = pc.fill_null(pc.index_in(spine_key, value_set=distinct), -1)
        as_numpy = codes.cast(pa.int64()).to_numpy(zero_copy_only=False)
        return cls(as_numpy, len(distinct), None, distinct, spine_key.type, family)

    def code(self, feature_key: Any) -> Ints:
        """The codes of a feature key column (a part of the family's rows)."""
        np = require("numpy", "spark")
        pa = require("pyarrow", "spark")
        pc = require("pyarrow.compute", "spark")
        if self.low is not None and pa.types.is_integer(feature_key.type):
            f, f_valid = _int64(feature_key)
            codes = f - self.low
            # As unsigned, keys below the spine's range are huge too: one ``minimum`` sends
            # every key outside it to the sentinel. Keys inside it but absent from the spine
            # find the per-entity tables of ``_match`` empty.
            unsigned = codes.view(np.uint64)
            np.minimum(unsigned, np.uint64(self.width), out=unsigned)
            if f_valid is not None:
                codes[~f_valid] = self.width
            return codes
        if self.distinct is None:  # no spine key at all: nothing matches
            nothing: Ints = np.full(len(feature_key), self.width, np.int64)
            return nothing
        if feature_key.type != self.key_type:
            try:
                feature_key = feature_key.cast(self.key_type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise DefinitionError(
                    f"{self.family}.join_key",
                    f"the spine's key column is {self.key_type} and family {self.family}'s "
                    f"is {feature_key.type}; they cannot be compared",
                ) from None
        codes = pc.fill_null(pc.index_in(feature_key, value_set=self.distinct), self.width)
        return codes.cast(pa.int64()).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Queries:
    """The spine rows that ask (key and time not null), sorted by (code, time)."""

    where: Ints  # spine row numbers
    codes: Ints
    times: Ints

    @classmethod
    def build(cls, codes: Ints, times: Ints, asking: Bools, width: int) -> _Queries:
        np = require("numpy", "spark")
        where = np.flatnonzero(asking)
        c, t = codes[where], times[where]
        low = int(t.min())
        span = int(t.max()) - low + 1
        if width * span <= _MAX_COMPOUND:
            order = np.argsort(c * span + (t - low))
        else:
            order = np.lexsort((t, c))
        return cls(where[order], c[order], t[order])

    def window(self, width: int, ttl_us: int | None) -> Ints:
        """Per entity code, the latest spine time; with a ttl, pairs (earliest spine time
        minus the ttl, latest), fetched together by one gather.

        A feature row outside them can never be chosen. The sentinel slot ``width`` (and
        codes no spine row has) keep nothing.
        """
        np = require("numpy", "spark")
        last = np.flatnonzero(np.append(self.codes[1:] != self.codes[:-1], True))
        latest: Ints = np.full(width + 1, np.iinfo(np.int64).min, np.int64)
        latest[self.codes[last]] = self.times[last]
        if ttl_us is None:
            return latest
        first = np.concatenate([[0], last[:-1] + 1])
        earliest = np.full(width + 1, np.iinfo(np.int64).max, np.int64)
        earliest[self.codes[first]] = self.times[first] - ttl_us
        pairs: Ints = np.stack([earliest, latest], axis=1)
        return pairs

    def between(self, low: int, high: int) -> _Queries:
        """Those whose code is in ``[low, high)``."""
        np = require("numpy", "spark")
        start, end = np.searchsorted(self.codes, [low, high])
        return _Queries(self.where[start:end], self.codes[start:end], self.times[start:end])


@dataclass(frozen=True)
class _Candidates:
    """Feature rows that can be chosen: row numbers, entity codes and times (µs)."""

    rows: Ints
    codes: Ints
    times: Ints

    @staticmethod
    def concat(parts: Sequence[_Candidates]) -> _Candidates:
        np = require("numpy", "spark")
        none = np.zeros(0, np.int64)  # a group without batches gives no parts
        return _Candidates(
            np.concatenate([none, *(p.rows for p in parts)]),
            np.concatenate([none, *(p.codes for p in parts)]),
            np.concatenate([none, *(p.times for p in parts)]),
        )


def _candidates(
    table: Any,
    offset: int,
    family: ArrowFeatures,
    coder: _Coder,
    window: Ints,
    edges: Ints,
) -> list[_Candidates]:
    """The rows of one batch that can be chosen, split by the code ranges ``edges``."""
    np = require("numpy", "spark")
    codes = coder.code(table[family.join_key])
    times, valid = to_micros(table[family.timestamp])
    if window.ndim == 1:
        keep = times <= np.take(window, codes)
    else:
        bounds = np.take(window, codes, axis=0)
        keep = times >= bounds[:, 0]
        keep &= times <= bounds[:, 1]
    if valid is not None:
        keep &= valid
    rows = np.flatnonzero(keep)
    codes, times = codes[rows], times[rows]
    rows += offset
    if len(edges) == 2:
        return [_Candidates(rows, codes, times)]
    part = np.searchsorted(edges, codes, side="right") - 1
    inside = [part == p for p in range(len(edges) - 1)]
    return [_Candidates(rows[i], codes[i], times[i]) for i in inside]


@dataclass(frozen=True)
class _Found:
    """Spine rows with a chosen feature row, its row number and its time (µs)."""

    where: Ints
    rows: Ints
    times: Ints


def _search(
    kept: _Candidates, queries: _Queries, low: int, family: ArrowFeatures, source: RowSource
) -> _Found:
    """For the queries of one code range, the latest candidate at or before each spine time.

    Candidates get one ``int64`` compound key ``(code - low) * span + time``; one sort
    orders them by (entity, time) and ``searchsorted(side="right") - 1`` finds, for each
    query's compound key (already in order, which keeps the searches cache friendly), the
    latest row at or before it: of the query's entity or of none. When the product would
    overflow, times are replaced by their rank.
    """
    np = require("numpy", "spark")
    empty = np.zeros(0, np.int64)
    if kept.rows.size == 0 or queries.where.size == 0:
        return _Found(empty, empty, empty)
    times = kept.times
    base = int(times.min())
    span = int(times.max()) - base + 1
    width = int(kept.codes.max()) - low + 1
    if width * span <= _MAX_COMPOUND:
        f_pos = times - base
        s_pos = np.minimum(queries.times - base, span - 1)
    else:  # times by rank: fewer distinct values than microseconds in the range
        distinct = np.unique(times)
        span = len(distinct)
        f_pos = np.searchsorted(distinct, times)
        s_pos = np.searchsorted(distinct, queries.times, side="right") - 1
    # In place: every temporary of this size is fresh memory the kernel must zero.
    compound = kept.codes - low
    compound *= span
    compound += f_pos
    del f_pos
    order = np.argsort(compound)
    ordered = compound[order]

    after = s_pos >= 0  # before every candidate: nothing at or before it
    q_codes = queries.codes[after] - low
    where = queries.where[after]
    found = np.searchsorted(ordered, q_codes * span + s_pos[after], side="right") - 1
    hit = found >= 0
    found = np.where(hit, found, 0)
    hit &= ordered[found] >= q_codes * span  # the same entity
    where, found = where[hit], found[hit]

    picked = order[found]
    tied = (found > 0) & (ordered[found - 1] == ordered[found])
    if tied.any():
        picked[tied] = break_ties(family, source, kept.rows, order, ordered, found[tied])
    return _Found(where, kept.rows[picked], kept.times[picked])


def _match(
    spine_key: Any,
    spine_time: tuple[Ints, Bools | None],
    family: ArrowFeatures,
    source: RowSource,
    threads: int,
) -> tuple[Ints, Ints]:
    """For each spine row, the chosen feature row (``-1``: none) and its event time (µs).

    Three steps, each spread over ``threads``: the groups of rows are read (key and time
    only) and pruned to the rows some spine row could choose; the candidates, split by
    entity code range, are sorted and searched; the ttl is checked on the chosen times.
    """
    np = require("numpy", "spark")
    s_time, s_valid = spine_time
    n = len(s_time)
    chosen = np.full(n, -1, np.int64)
    event = np.zeros(n, np.int64)
    if not n:
        return chosen, event
    coder = _Coder.build(spine_key, source.schema.field(family.join_key).type, family.name)
    asking = coder.spine >= 0
    if s_valid is not None:
        asking &= s_valid
    if not asking.any():
        return chosen, event
    ttl_us = None if family.ttl is None else family.ttl // dt.timedelta(microseconds=1)
    queries = _Queries.build(coder.spine, s_time, asking, coder.width)
    window = queries.window(coder.width, ttl_us)
    parts = max(1, min(threads, coder.width))
    edges = np.linspace(0, coder.width, parts + 1).astype(np.int64)
    read = source.group_reader(parallel_columns=threads > len(source.counts))
    columns = (family.join_key, family.timestamp)
    offsets = np.concatenate([[0], np.cumsum(source.counts, dtype=np.int64)])

    def prune(index: int) -> list[_Candidates]:
        offset, pieces = int(offsets[index]), []
        for batch in read(index, columns):
            pieces.append(_candidates(batch, offset, family, coder, window, edges))
            offset += batch.num_rows
        return [_Candidates.concat([p[part] for p in pieces]) for part in range(parts)]

    pruned = map_threads(prune, range(len(source.counts)), threads)
    if not pruned:
        return chosen, event

    def search(part: int) -> _Found:
        kept = _Candidates.concat([p[part] for p in pruned])
        low, high = int(edges[part]), int(edges[part + 1])
        return _search(kept, queries.between(low, high), low, family, source)

    found = map_threads(search, range(parts), threads)
    where = np.concatenate([f.where for f in found])
    rows = np.concatenate([f.rows for f in found])
    used = np.concatenate([f.times for f in found])
    if ttl_us is not None:
        fresh = used >= s_time[where] - ttl_us
        where, rows, used = where[fresh], rows[fresh], used[fresh]
    chosen[where] = rows
    event[where] = used
    return chosen, event


def break_ties(
    family: ArrowFeatures,
    source: RowSource,
    rows: Ints | None,
    order: Ints | None,
    ordered: Ints,
    ends: Ints,
) -> Ints:
    """For runs of equal (entity, time) ending at ``ends``: the row whose features sort last.

    Spark orders the carried struct (time, features in order) ascending with nulls first,
    NaN greater than every number and ``-0.0`` equal to ``0.0``; the last row wins.
    Returns, for each entry of ``ends``, an index into ``rows`` (like ``order``'s values).
    ``None`` for ``order`` or ``rows``: the rows are already sorted, or are the source's own.
    """
    np = require("numpy", "spark")
    pa = require("pyarrow", "spark")
    pc = require("pyarrow.compute", "spark")
    runs, inverse = np.unique(ends, return_inverse=True)
    starts = np.searchsorted(ordered, ordered[runs], side="left")
    lengths = runs - starts + 1
    run_of = np.repeat(np.arange(len(runs)), lengths)
    offsets = np.arange(len(run_of)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    members = np.repeat(starts, lengths) + offsets
    if order is not None:
        members = order[members]
    values = take_rows(source, members if rows is None else rows[members], family.features)
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
