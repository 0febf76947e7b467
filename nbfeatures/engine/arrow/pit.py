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

from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.engine.arrow.columns import ArrowFeatures, arrow_key_kind, to_micros, wider_type
from nbfeatures.engine.arrow.join_index import JoinIndex
from nbfeatures.engine.arrow.match import match_rows
from nbfeatures.engine.arrow.rows import as_source, take_rows
from nbfeatures.engine.pit_rules import check_columns, check_key_kinds, group_by_key, times_in_utc

if TYPE_CHECKING:
    from collections.abc import Sequence

    from nbfeatures.engine.arrow.columns import Bools, Ints


def point_in_time_join_arrow(
    spine: Any,
    families: Sequence[ArrowFeatures],
    *,
    timestamp_column: str,
    include_event_times: bool = False,
    threads: int | None = None,
) -> Any:
    """``spark.pit.point_in_time_join`` on a ``pyarrow.Table`` spine; returns a ``pyarrow.Table``.

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
            key_type = wider_type(key_type, stored)
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
    table = family.table
    if isinstance(table, JoinIndex) and not table.accepts(spine_key.type):
        table = table.fallback()
    if isinstance(table, JoinIndex):
        matched = table.match(spine_key, spine_time, family, threads)
        values = table.take(matched, family.features, threads)
        return matched.rows, matched.event_us, values, table.keys.type
    source = as_source(table)
    rows, event_us = match_rows(spine_key, spine_time, family, source, threads)
    values = take_rows(source, rows, family.features, threads)
    return rows, event_us, values, source.schema.field(family.join_key).type


def _stored_key_type(family: ArrowFeatures) -> Any:
    """The Arrow type of a family's stored keys, read from the schema (no rows read)."""
    if isinstance(family.table, JoinIndex):
        return family.table.keys.type
    return as_source(family.table).schema.field(family.join_key).type


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
