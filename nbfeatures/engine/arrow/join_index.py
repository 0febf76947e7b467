"""A family version's rows in join order, built when they are computed, read by memory map.

The in-process join (``arrow.pit``) on the date-partitioned Parquet spends most of its time
decoding pages and ordering every row by (entity, time) before it can search; both are the
same work for every training set of a version. So, for a local offline root, computing a
version also writes its rows once more, ready for the join::

    {family}/v{N}/_join_index/{fingerprint}/
        rows.arrow   Arrow IPC, uncompressed, one record batch, sorted by (entity, time):
                     __nbf_order (int64 search key), __nbf_time (event time, µs), features
        keys.arrow   the distinct entity keys, ascending (a key's rank is its position)
        times.arrow  the distinct event times (µs), ascending, when ``mode`` is "rank"
        index.json   format, fingerprint, mode, base, span, rows, column names

``__nbf_order`` is ``rank(entity) * span + position(time)``: the time minus the earliest
(``mode`` "offset") or, when that product could overflow, the time's rank among the
distinct times (``mode`` "rank"). A spine row's own key of the same form, searched with
``searchsorted(side="right") - 1``, lands on the latest row of its entity at or before its
time, or on another entity's row (then there is none). Rows with a null key or time can never
be chosen and are not written. Rows sharing an entity and a time stay: which one wins depends
on the features asked for (``arrow.match.break_ties``), so the few searches that land on such
a run order it then. The index answers exactly what the join over the Parquet answers.

It lives beside the Parquet, in a folder Spark and ``pyarrow.dataset`` skip (leading ``_``).
The fingerprint is taken from the manifest (definition hash, partitions, last update): after
any new computation the old index no longer matches and is not read; the computation builds
the new one in a temporary folder, renames it into place and removes the old. Versions over
``MAX_ROWS`` rows (they go to Spark's join) and ``gs://`` roots (no memory map) get none and
are joined from the Parquet, as is any version computed before this index existed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.engine.arrow.columns import (
    DENSE_FACTOR,
    DENSE_FLOOR,
    ArrowFeatures,
    int64_values,
    to_micros,
)
from nbfeatures.engine.arrow.match import break_ties
from nbfeatures.engine.arrow.rows import (
    ParquetRows,
    Scatter,
    TableRows,
    fixed_width,
    map_threads,
    sort_with_index,
)
from nbfeatures.engine.gcs import arrow_filesystem, is_gcs

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from nbfeatures.engine.offline_store import Manifest

    Ints = npt.NDArray[np.int64]
    Bools = npt.NDArray[np.bool_]

INDEX_DIR = "_join_index"
INDEX_FORMAT = 1
# The in-process join's limit (``engine.factory.ARROW_MAX_ROWS`` is this): bigger versions go to
# Spark's join, which does not read the index.
MAX_ROWS = 30_000_000
ORDER_COLUMN = "__nbf_order"
TIME_COLUMN = "__nbf_time"
_MAX_ORDER = (1 << 62) - 1


def fingerprint(manifest: Manifest) -> str:
    """What identifies the stored rows: any computation changes it."""
    facts = {
        "hash": manifest.hash,
        "partitions": dict(sorted(manifest.partitions.items())),
        "updated_at": manifest.updated_at.isoformat(),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:20]


def index_root(version_path: str) -> Path:
    """The index folder of a local version (``file://`` roots included)."""
    return Path(arrow_filesystem(version_path, emulator=None)[1]) / INDEX_DIR  # never gs://


@dataclass(frozen=True)
class Matched:
    """What a spine asked of an index: per spine row the chosen row (``-1``: none) and its
    event time (µs); and the spine rows that found one, in the index's row order."""

    rows: Ints
    event_us: Ints
    in_file_order: Ints


@dataclass(frozen=True)
class JoinIndex:
    """One version's join-ordered rows, memory-mapped (see the module docstring).

    ``fallback()`` opens the same version's Parquet, joined instead when the spine's key
    cannot be looked up in ``keys`` (a key type other than the family's, but for integers of
    another width), so that such spines get the Parquet join's casts and errors.
    """

    rows: Any  # pyarrow.Table: __nbf_order, __nbf_time, features
    keys: Any  # pyarrow.Array, ascending, of the stored key's type
    times: Ints | None  # distinct times in "rank" mode
    base: int
    span: int
    open_parquet: Callable[[], ParquetRows]

    def fallback(self) -> ParquetRows:
        return self.open_parquet()

    def accepts(self, spine_key_type: Any) -> bool:
        """Whether a spine key column of this type can be looked up here."""
        pa = require("pyarrow", "spark")
        mine = self.keys.type
        both_integers = pa.types.is_integer(mine) and pa.types.is_integer(spine_key_type)
        return bool(both_integers or mine == spine_key_type)

    def match(
        self,
        spine_key: Any,
        spine_time: tuple[Ints, Bools | None],
        family: ArrowFeatures,
        threads: int,
    ) -> Matched:
        """For each spine row, the latest row of its entity at or before its time (within
        the family's ttl), ties broken on ``family.features`` as Spark breaks them."""
        np = require("numpy", "spark")
        ttl_us = None if family.ttl is None else family.ttl // dt.timedelta(microseconds=1)
        s_time, s_valid = spine_time
        n = len(s_time)
        chosen = np.full(n, -1, np.int64)
        event = np.zeros(n, np.int64)
        ranks = self._ranks(spine_key)
        asking = ranks >= 0
        if s_valid is not None:
            asking &= s_valid
        where = np.flatnonzero(asking)
        if not where.size or not self.rows.num_rows:
            return Matched(chosen, event, np.zeros(0, np.int64))
        # By entity (a cheap sort of small integers): each search starts where the last
        # ended, and the rows are read in file order.
        where = where[sort_with_index(ranks[where])[1]]
        times = s_time[where]
        if self.times is None:
            position = np.clip(times - self.base, -1, self.span - 1)
        else:
            position = np.searchsorted(self.times, times, side="right") - 1
        firsts = ranks[where] * self.span  # each entity's first possible key
        wanted = firsts + position
        order_column = self._column(ORDER_COLUMN).to_numpy()
        time_column = self._column(TIME_COLUMN).to_numpy()

        def search(part: slice) -> tuple[Ints, Ints, Ints, Bools]:
            found = np.searchsorted(order_column, wanted[part], side="right") - 1
            hit = found >= 0
            found[~hit] = 0
            hit &= order_column[found] >= firsts[part]  # the same entity
            used = time_column[found]
            if ttl_us is not None:
                hit &= used >= times[part] - ttl_us
            found, used = found[hit], used[hit]
            previous = order_column[np.maximum(found - 1, 0)]
            tied = (found > 0) & (previous == order_column[found])
            return where[part][hit], found, used, tied

        bounds = np.linspace(0, len(where), max(1, threads) + 1).astype(np.int64)
        parts = [slice(a, b) for a, b in itertools.pairwise(bounds)]
        results = map_threads(search, parts, threads)
        at = np.concatenate([r[0] for r in results])
        found = np.concatenate([r[1] for r in results])
        tied = np.concatenate([r[3] for r in results])
        chosen[at] = found
        event[at] = np.concatenate([r[2] for r in results])
        if tied.any():
            ties = TableRows(self.rows)
            winners = break_ties(family, ties, None, None, order_column, found[tied])
            # A winner may sit a few rows before its run's end: still file order enough.
            chosen[at[tied]] = winners
        return Matched(chosen, event, at)

    def _column(self, name: str) -> Any:
        """A column as one array: the mapped batch itself, no copy (an empty file has none)."""
        column = self.rows.column(name)
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()

    def _ranks(self, spine_key: Any) -> Ints:
        """Each spine key's position in ``keys``; ``-1`` for null keys and unknown ones."""
        np = require("numpy", "spark")
        pa = require("pyarrow", "spark")
        pc = require("pyarrow.compute", "spark")
        if pa.types.is_integer(self.keys.type):
            known = int64_values(self.keys)[0]
            keys, valid = int64_values(spine_key)
            if not len(known):
                unknown: Ints = np.full(len(keys), -1, np.int64)
                return unknown
            low, width = int(known[0]), int(known[-1]) - int(known[0]) + 1
            if width <= max(DENSE_FACTOR * len(known), DENSE_FLOOR):
                # Keys over a dense range: a table by offset, not a binary search per key.
                table = np.full(width + 1, -1, np.int64)
                table[known - low] = np.arange(len(known))
                offsets = keys - low
                # As unsigned, keys below the range are huge too: one ``minimum`` sends every
                # key outside it to the table's last slot, which is -1.
                unsigned = offsets.view(np.uint64)
                np.minimum(unsigned, np.uint64(width), out=unsigned)
                ranks = table[offsets]
            else:
                ranks = np.searchsorted(known, keys)
                np.minimum(ranks, len(known) - 1, out=ranks)
                ranks[known[ranks] != keys] = -1
            if valid is not None:
                ranks[~valid] = -1
            return ranks  # type: ignore[no-any-return]
        looked_up = pc.fill_null(pc.index_in(spine_key, value_set=self.keys), -1)
        return looked_up.cast(pa.int64()).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]

    def take(self, matched: Matched, features: Sequence[str], threads: int) -> dict[str, Any]:
        """These features at the matched rows (null where none), in spine order."""
        np = require("numpy", "spark")
        pa = require("pyarrow", "spark")
        pc = require("pyarrow.compute", "spark")
        rows = matched.rows
        missing = rows < 0
        fixed = [f for f in features if fixed_width(self.rows.schema.field(f).type)]
        out: dict[str, Any] = {}
        if fixed:
            batch = pa.RecordBatch.from_arrays([self._column(f) for f in fixed], names=fixed)
            target = Scatter.empty([batch.schema.field(f).type for f in fixed], len(rows))
            # In file order: the gathers walk the mapped pages forward.
            parts = np.array_split(matched.in_file_order, max(1, threads))
            map_threads(lambda at: target.put(batch, rows[at], at), parts, threads)
            out.update(zip(fixed, target.arrays(missing), strict=True))
        others = [f for f in features if f not in out]
        if others:
            indices = pa.array(rows, pa.int64(), mask=missing)
            taken = map_threads(lambda f: pc.take(self.rows.column(f), indices), others, threads)
            out.update(zip(others, taken, strict=True))
        return {f: out[f] for f in features}


def open_index(
    manifest: Manifest, version_path: str, open_parquet: Callable[[], ParquetRows]
) -> JoinIndex | None:
    """The version's index if one matching ``manifest`` was built, else ``None``.

    ``open_parquet`` opens the version's Parquet (for spines the index cannot take).
    """
    if is_gcs(version_path):
        return None
    folder = index_root(version_path) / fingerprint(manifest)
    pa = require("pyarrow", "spark")
    ipc = require("pyarrow.ipc", "spark")

    def mapped(name: str) -> Any:
        return ipc.open_file(pa.memory_map(str(folder / name))).read_all()

    # Missing or half there (a computation replacing it right now, an older format): the
    # Parquet is read instead. Once mapped, files removed later stay readable.
    try:
        meta = json.loads((folder / "index.json").read_text())
        if meta.get("format") != INDEX_FORMAT:
            return None
        rows = mapped("rows.arrow")
        keys = mapped("keys.arrow").column(0)
        times = None
        if meta["mode"] == "rank":
            times = mapped("times.arrow").column(0).combine_chunks().to_numpy()
    except (OSError, ValueError, KeyError, pa.ArrowInvalid):
        return None
    return JoinIndex(
        rows=rows,
        keys=keys.combine_chunks(),
        times=times,
        base=int(meta["base"]),
        span=int(meta["span"]),
        open_parquet=open_parquet,
    )


def build_index(manifest: Manifest, version_path: str, features: Sequence[str]) -> Path | None:
    """Write the index of what ``manifest`` describes; returns its folder.

    ``None`` (and no index) for ``gs://`` roots and versions over ``MAX_ROWS`` rows: the
    join reads their Parquet instead. Older indexes of the version are removed.
    """
    if is_gcs(version_path):
        return None
    if manifest.rows > MAX_ROWS:
        _remove_others(index_root(version_path), keep=None)  # grown past it: none stays
        return None
    from nbfeatures.engine.offline_store import arrow_dataset

    pa = require("pyarrow", "spark")
    table = arrow_dataset(version_path).to_table(
        columns=[manifest.entity_key, manifest.timestamp, *features]
    )
    ordered, keys, times, base, span = _join_order(table, manifest.entity_key, manifest.timestamp)
    root = index_root(version_path)
    root.mkdir(parents=True, exist_ok=True)
    building = root / f".build-{uuid.uuid4().hex}"
    building.mkdir()
    try:
        _write_ipc(building / "rows.arrow", ordered)
        _write_ipc(building / "keys.arrow", pa.table({"key": keys}))
        if times is not None:
            _write_ipc(building / "times.arrow", pa.table({"time": pa.array(times)}))
        meta = {
            "format": INDEX_FORMAT,
            "family": manifest.family,
            "version": manifest.version,
            "fingerprint": fingerprint(manifest),
            "mode": "offset" if times is None else "rank",
            "base": base,
            "span": span,
            "rows": ordered.num_rows,
            "features": list(features),
        }
        (building / "index.json").write_text(json.dumps(meta, indent=2) + "\n")
        final = root / fingerprint(manifest)
        if final.exists():
            shutil.rmtree(final)
        os.replace(building, final)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    _remove_others(root, keep=final.name)
    return final


def _remove_others(root: Path, keep: str | None) -> None:
    """Older indexes (and builds that died) of this version; readers' maps stay valid."""
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)


def _write_ipc(path: Path, table: Any) -> None:
    """One uncompressed record batch: mapped and read in place, nothing to decode."""
    pa = require("pyarrow", "spark")
    ipc = require("pyarrow.ipc", "spark")
    table = table.combine_chunks()
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(1, table.num_rows))


def _join_order(table: Any, key: str, timestamp: str) -> tuple[Any, Any, Ints | None, int, int]:
    """The rows that can be chosen, sorted, with their search key; and the lookup tables.

    Returns (rows table, distinct keys, distinct times or ``None``, base, span).
    """
    np = require("numpy", "spark")
    pa = require("pyarrow", "spark")
    pc = require("pyarrow.compute", "spark")
    micros, valid_time = to_micros(table[timestamp])
    usable = np.asarray(pc.is_valid(table[key]))
    if valid_time is not None:
        usable &= valid_time
    if not usable.all():
        kept = np.flatnonzero(usable)
        table, micros = table.take(pa.array(kept)), micros[kept]
    keys = pc.unique(table[key].combine_chunks())
    keys = keys.take(pc.sort_indices(keys))
    rank = np.asarray(pc.index_in(table[key], value_set=keys).cast(pa.int64()))
    times: Ints | None = None
    base = int(micros.min()) if len(micros) else 0
    span = int(micros.max()) - base + 1 if len(micros) else 1
    if max(1, len(keys)) * span <= _MAX_ORDER:
        position = micros - base
    else:
        times = np.unique(micros)
        span = len(times)
        position = np.searchsorted(times, micros)
    search_key = rank * span + position
    del rank, position
    order = np.argsort(search_key, kind="stable")
    chosen = table.drop_columns([key, timestamp]).take(pa.array(order))
    chosen = chosen.add_column(0, TIME_COLUMN, pa.array(micros[order]))
    chosen = chosen.add_column(0, ORDER_COLUMN, pa.array(search_key[order]))
    return chosen, keys, times, base, span
