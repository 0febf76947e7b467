"""The in-process join's search: prune, sort and search each family's candidate rows.

Steps 2-4 of ``arrow.pit``'s docstring: candidates pruned to the spine's windows, one sort of
compound ``(code, time)`` keys, binary searches, and ties broken on the features.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.engine.arrow.columns import ArrowFeatures, KeyCoder, to_micros
from nbfeatures.engine.arrow.rows import RowSource, map_threads, take_rows
from nbfeatures.errors import DefinitionError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Ints = npt.NDArray[np.int64]
    Bools = npt.NDArray[np.bool_]


_MAX_COMPOUND = (1 << 62) - 1


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
    coder: KeyCoder,
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


def match_rows(
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
    coder = KeyCoder.build(spine_key, source.schema.field(family.join_key).type, family.name)
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
