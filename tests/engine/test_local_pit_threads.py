"""The Arrow join gives one answer whatever the threads, groups and batches.

The join splits the work three ways: feature rows in groups (row groups, table slices) read
in batches, candidates by entity code range, chosen rows written straight into the answer
(fixed-width features) or gathered with Arrow (others). Each test runs the join on one data
set cut in many ways and checks every answer against a brute-force reading of the rule, so
a split that loses, duplicates or misplaces a row, a tie or a null fails. No Spark here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nbfeatures.engine.arrow.columns import ArrowFeatures
from nbfeatures.engine.arrow.pit import point_in_time_join_arrow
from nbfeatures.engine.arrow.rows import ParquetRows, TableRows, sort_with_index

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
US = pa.timestamp("us", tz="UTC")
TTL = dt.timedelta(minutes=4)
XK = ("x", "k")


def minutes(values: list[int | None]) -> pa.Array:
    return pa.array([None if m is None else T0 + dt.timedelta(minutes=m) for m in values], US)


def feature_table(seed: int, rows: int, entities: int) -> pa.Table:
    """Integer minutes over a short range: many rows share an entity and a time (ties), some
    sit exactly on a spine time or on its ttl boundary; nulls in keys, times and features."""
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, entities, rows)
    times = rng.integers(0, 40, rows)
    x_pool = [None, 0.0, -0.0, 1.5, -2.0, math.nan]
    x = [x_pool[i] for i in rng.integers(0, len(x_pool), rows)]
    chance, values = rng.random(rows), rng.integers(-3, 3, rows)
    k = [None if c < 0.1 else int(v) for c, v in zip(chance, values, strict=True)]
    key_list: list[int | None] = [int(v) for v in keys]
    time_list: list[int | None] = [int(v) for v in times]
    for i in range(0, rows, 97):
        key_list[i] = None
    for i in range(5, rows, 89):
        time_list[i] = None
    return pa.table(
        {
            "user_id": pa.array(key_list, pa.int64()),
            "ts": minutes(time_list),
            "x": pa.array(x, pa.float64()),
            "k": pa.array(k, pa.int64()),
            "tag": pa.array([None if v is None else f"t{v}" for v in k], pa.string()),
        }
    )


def spine_table(seed: int, rows: int, entities: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    keys: list[int | None] = [int(v) for v in rng.integers(-2, entities + 2, rows)]
    times: list[int | None] = [int(v) for v in rng.integers(-2, 44, rows)]
    keys[3], times[4] = None, None
    return pa.table(
        {"user_id": pa.array(keys, pa.int64()), "event_timestamp": minutes(times), "n": range(rows)}
    )


def _order_key(value: Any, is_float: bool) -> tuple[Any, ...]:
    """Spark's ascending order: nulls first, NaN after every number, -0.0 equal to 0.0."""
    if value is None:
        return (0,)
    if is_float and math.isnan(value):
        return (2,)
    return (1, value + 0.0 if is_float else value)


def brute_force(
    features: pa.Table, spine: pa.Table, ttl: dt.timedelta | None, columns: tuple[str, ...]
) -> list[Any]:
    """For each spine row: the ``columns`` and event time of its chosen row, or Nones."""
    rows = features.to_pylist()
    floats = [pa.types.is_floating(features.schema.field(c).type) for c in columns]

    def order(r: dict[str, Any]) -> tuple[Any, ...]:
        ranks = (_order_key(r[c], f) for c, f in zip(columns, floats, strict=True))
        return (r["ts"], *ranks)

    answer = []
    for ask in spine.to_pylist():
        key, at = ask["user_id"], ask["event_timestamp"]
        valid = [
            r
            for r in rows
            if key is not None
            and at is not None
            and r["user_id"] == key
            and r["ts"] is not None
            and r["ts"] <= at
            and (ttl is None or r["ts"] >= at - ttl)
        ]
        if not valid:
            answer.append((None,) * (len(columns) + 1))
            continue
        best = max(valid, key=order)
        answer.append((*(best[c] for c in columns), best["ts"]))
    return answer


def same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return (math.isnan(left) and math.isnan(right)) or left == right
    return bool(left == right)


def check(joined: pa.Table, expected: list[Any], family: str = "f") -> None:
    got = zip(
        joined[f"{family}__x"].to_pylist(),
        joined[f"{family}__k"].to_pylist(),
        joined[f"{family}__event_time"].to_pylist(),
        strict=True,
    )
    for n, (row, want) in enumerate(zip(got, expected, strict=True)):
        assert all(same(a, b) for a, b in zip(row, want, strict=True)), (n, row, want)


def join(spine: pa.Table, table: Any, threads: int, ttl: dt.timedelta | None) -> pa.Table:
    family = ArrowFeatures("f", table, "user_id", "ts", ("x", "k"), ttl)
    return point_in_time_join_arrow(
        spine, [family], timestamp_column="event_timestamp", include_event_times=True,
        threads=threads,
    )  # fmt: skip


def write_parts(table: pa.Table, folder: Path, **kinds: pa.DataType) -> ParquetRows:
    """Two files of small row groups, read in batches of 7 rows."""
    half = table.num_rows // 2
    paths = [str(folder / "a.parquet"), str(folder / "b.parquet")]
    pq.write_table(table.slice(0, half), paths[0], row_group_size=29)
    second = table.slice(half)
    for name, kind in kinds.items():
        second = second.set_column(second.column_names.index(name), name, second[name].cast(kind))
    pq.write_table(second, paths[1], row_group_size=29)
    return dataclasses.replace(ParquetRows.from_paths(paths), batch_rows=7)


@pytest.mark.parametrize("ttl", [None, TTL])
def test_every_split_gives_the_rule_s_answer(tmp_path: Path, ttl: dt.timedelta | None) -> None:
    features = feature_table(1, 600, 60)
    spine = spine_table(2, 300, 60)
    expected = brute_force(features, spine, ttl, XK)
    assert sum(e[0] is not None or e[1] is not None for e in expected) > 100  # not all empty
    sources = {
        "table": features,
        "slices": TableRows(features, group_rows=37, batch_rows=5),
        "parquet": write_parts(features, tmp_path),
    }
    answers = {}
    for name, source in sources.items():
        for threads in (1, 2, 3, 8, 64):  # 64: more threads than groups
            answers[name, threads] = joined = join(spine, source, threads, ttl)
            check(joined, expected)
            assert joined["n"].to_pylist() == list(range(300))  # spine order kept
    one = answers["table", 1]
    for joined in answers.values():
        assert joined.schema == one.schema


def test_ties_on_a_split_boundary_keep_the_rule_s_winner() -> None:
    # Entities 1 and 2 straddle the code ranges of two threads; each has three rows at one
    # time differing only by null, a number and NaN (NaN wins), or by the sign of zero.
    # Entity 1 is asked exactly at that time, entity 2 exactly one ttl after it (kept).
    features = pa.table(
        {
            "user_id": pa.array([1, 2, 1, 2, 1, 2, 0, 3], pa.int64()),
            "ts": minutes([5, 5, 5, 5, 5, 5, 1, 1]),
            "x": pa.array([None, -0.0, math.nan, 0.0, 2.0, None, 2.0, 2.0], pa.float64()),
            "k": pa.array([1, 1, 1, 1, 1, 1, 7, 8], pa.int64()),
        }
    )
    spine = pa.table(
        {
            "user_id": pa.array([0, 1, 2, 3], pa.int64()),
            "event_timestamp": minutes([4, 5, 9, 0]),
            "n": range(4),
        }
    )
    for threads in (1, 2, 4):
        for source in (features, TableRows(features, group_rows=3, batch_rows=2)):
            joined = join(spine, source, threads, TTL)
            x = joined["f__x"].to_pylist()
            assert x[0] == 2.0 and math.isnan(x[1]) and x[2] == 0.0 and x[3] is None
            assert joined["f__k"].to_pylist() == [7, 1, 1, None]


def test_text_features_and_a_file_of_another_integer_type(tmp_path: Path) -> None:
    # Text cannot be written in place: those rows are gathered with Arrow and reordered.
    # The second file stores k as int32 where the dataset says int64: cast when copied.
    features = feature_table(3, 400, 40)
    spine = spine_table(4, 200, 40)
    expected = brute_force(features, spine, TTL, XK)
    rows = write_parts(features, tmp_path, k=pa.int32())
    assert pq.read_schema(str(tmp_path / "b.parquet")).field("k").type == pa.int32()
    for threads in (1, 2):
        check(join(spine, rows, threads, TTL), expected)
        text = ArrowFeatures("g", rows, "user_id", "ts", ("tag", "k"), TTL)
        joined = point_in_time_join_arrow(
            spine, [text], timestamp_column="event_timestamp", threads=threads
        )
        by_tag = brute_force(features, spine, TTL, ("tag", "k"))
        assert joined["g__tag"].to_pylist() == [tag for tag, _, _ in by_tag]
        assert joined["g__k"].to_pylist() == [k for _, k, _ in by_tag]
        assert joined["g__k"].type == pa.int64()


def test_text_keys_are_split_by_their_codes_too() -> None:
    features = feature_table(5, 300, 30)
    spine = spine_table(6, 150, 30)
    expected = brute_force(features, spine, None, XK)

    def as_text(table: pa.Table) -> pa.Table:
        return table.set_column(0, "user_id", table["user_id"].cast(pa.string()))

    for threads in (1, 3):
        joined = join(as_text(spine), TableRows(as_text(features), 41, 6), threads, None)
        check(joined, expected)


def test_no_row_chosen_still_gives_typed_null_columns(tmp_path: Path) -> None:
    features = feature_table(7, 50, 5)
    spine = pa.table(
        {"user_id": pa.array([100, None], pa.int64()), "event_timestamp": minutes([3, 3])}
    )
    for source in (features, write_parts(features, tmp_path)):
        joined = join(spine, source, 2, TTL)
        assert joined["f__x"].type == pa.float64() and joined["f__k"].type == pa.int64()
        assert joined["f__x"].null_count == 2 and joined["f__event_time"].null_count == 2


def test_sort_with_index_is_a_stable_argsort_on_both_paths() -> None:
    rng = np.random.default_rng(8)
    small = rng.integers(0, 50, 1000)  # many repeats: stability matters
    large = small.copy()
    large[7] = 1 << 40  # too wide to share an int64 with its index
    negative = small - 25
    for values in (small, large, negative):
        ascending, index = sort_with_index(values)
        stable = np.argsort(values, kind="stable")
        assert np.array_equal(index, stable)
        assert np.array_equal(ascending, values[stable])
