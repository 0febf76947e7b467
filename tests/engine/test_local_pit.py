"""The in-process Arrow join and the Spark join give equal pandas frames on the same data.

The Arrow join runs on the tables themselves and on their join indexes
(``engine.arrow.join_index``). All are compared as ``training_set`` returns them for a pandas
spine: same columns, order, dtypes (nullable integers and booleans, UTC timestamps) and
values, row for row. The data has what separates careful joins from careless ones: several
rows of one entity at one time with features differing only by null, NaN or sign of zero,
integer, boolean and text features, two families on one key and one on another, a ttl, null
keys and times, repeated spine rows.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from index_helpers import indexed

from nbfeatures.engine.arrow.columns import ArrowFeatures
from nbfeatures.engine.arrow.pit import point_in_time_join_arrow, to_pandas
from nbfeatures.engine.spark.frames import to_pandas as spark_to_pandas
from nbfeatures.engine.spark.pit import FeatureFrame, point_in_time_join
from nbfeatures.training import _normalize_pandas

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def spark_frame(spark: Any, table: pa.Table) -> Any:
    # From Arrow, not pandas: pandas would turn NaN into null on the way in.
    return spark.createDataFrame(table)


def both(
    spark: Any,
    spine: pd.DataFrame,
    families: list[tuple[str, pa.Table, str, tuple[str, ...], dt.timedelta | None]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Spark path, Arrow path) results as ``training_set`` builds them for a pandas spine.

    The Arrow path is also run on each family's join index (stored and memory-mapped as
    ``compute_offline`` leaves it) and must give the same frame.
    """
    normalized = _normalize_pandas(spine, "event_timestamp", tuple(spine.columns))
    frames = [
        FeatureFrame(name, spark_frame(spark, table), key, "ts", features, ttl)
        for name, table, key, features, ttl in families
    ]
    joined = point_in_time_join(
        spark.createDataFrame(normalized),
        frames,
        timestamp_column="event_timestamp",
        include_event_times=True,
    )
    on_spark = spark_to_pandas(joined)
    arrow_families = [
        ArrowFeatures(name, table, key, "ts", features, ttl)
        for name, table, key, features, ttl in families
    ]
    arrow_spine = pa.Table.from_pandas(normalized.drop(columns=["__nbf_row"]), preserve_index=False)
    local = point_in_time_join_arrow(
        arrow_spine, arrow_families, timestamp_column="event_timestamp", include_event_times=True
    )
    with tempfile.TemporaryDirectory(prefix="nbf-index-") as tmp:
        index_families = [
            ArrowFeatures(
                name,
                indexed(table, Path(tmp) / name, features, key, "ts"),
                key,
                "ts",
                features,
                ttl,
            )
            for name, table, key, features, ttl in families
        ]
        via_index = to_pandas(
            point_in_time_join_arrow(
                arrow_spine,
                index_families,
                timestamp_column="event_timestamp",
                include_event_times=True,
            )
        )
    pd.testing.assert_frame_equal(via_index, to_pandas(local))
    return on_spark, to_pandas(local)


def at(minutes: list[int | None]) -> pa.Array:
    return pa.array(
        [None if m is None else (T0 + pd.Timedelta(minutes=m)).to_pydatetime() for m in minutes],
        pa.timestamp("us", tz="UTC"),
    )


def test_ties_nulls_nan_types_and_keys_give_equal_frames(spark: Any) -> None:
    nan = float("nan")
    spend = pa.table(
        {
            "user_id": pa.array([1, 1, 1, 1, 2, 2, 2, 3, None, 4, 4], pa.int64()),
            "ts": at([0, 5, 5, 5, 3, 3, 3, 1, 0, None, 2]),
            "amount": pa.array([1.0, 2.0, None, nan, 0.0, -0.0, 5.0, 7.0, 9.0, 1.0, None]),
            "count": pa.array([1, 2, 2, 2, None, 3, 3, 4, 5, 6, None], pa.int64()),
            "flag": pa.array([True, False, True, None, True, True, False, None, True, True, None]),
            "tag": pa.array(["a", "b", "b", "b", "z", "Z", None, "é", "x", "y", None]),
        }
    )
    # Same entity and time, differing only in the first feature: null < numbers < NaN.
    ties = pa.table(
        {
            "user_id": pa.array([1, 1, 1, 2, 2], pa.int64()),
            "ts": at([4, 4, 4, 4, 4]),
            "v": pa.array([None, 3.0, nan, None, -1.0]),
            "n": pa.array([9, 1, 1, 1, 2], pa.int32()),
        }
    )
    risk = pa.table(
        {
            "merchant_id": pa.array(["m1", "m1", "m2", "m2"]),
            "ts": at([0, 10, 2, 2]),
            "score": pa.array([0.1, 0.9, 0.4, 0.3]),
        }
    )
    spine = pd.DataFrame(
        {
            "user_id": pd.array([1, 1, 2, 3, 4, None, 2, 1], dtype="Int64"),
            "merchant_id": ["m1", "m1", "m2", "m2", None, "m1", "m3", "m1"],
            "event_timestamp": [
                T0 + pd.Timedelta(minutes=m) if m is not None else pd.NaT
                for m in [5, 5, 4, 30, 3, 6, None, 11]
            ],
            "label": [1, 1, 0, 0, 1, 0, 1, 0],
        }
    )
    families = [
        ("spend", spend, "user_id", ("amount", "count", "flag", "tag"), None),
        ("risk", risk, "merchant_id", ("score",), dt.timedelta(minutes=5)),
        ("ties", ties, "user_id", ("v", "n"), dt.timedelta(minutes=2)),
    ]
    on_spark, local = both(spark, spine, families)
    pd.testing.assert_frame_equal(local, on_spark)
    # Spot checks on what the rule says, so both being wrong alike would still fail.
    assert np.isnan(local.loc[0, "spend__amount"])  # NaN sorts last among the tied rows
    assert local.loc[2, "ties__v"] == -1.0  # a number sorts after null
    assert local.loc[2, "ties__n"] == 2
    assert pd.isna(local.loc[3, "risk__score"])  # 28 minutes old: past the 5-minute ttl
    assert local["label"].tolist() == [1, 1, 0, 0, 1, 0, 1, 0]  # spine order kept


rows = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.integers(0, 20),
        st.one_of(st.none(), st.sampled_from([0.0, -0.0, 1.0, float("nan")])),
        st.one_of(st.none(), st.integers(-2, 2)),
    ),
    max_size=30,
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    features=rows,
    spine_rows=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 25)), min_size=1, max_size=15),
    ttl=st.one_of(st.none(), st.integers(0, 6)),
)
def test_property_both_engines_give_equal_frames(
    spark: Any,
    features: list[tuple[int, int, float | None, int | None]],
    spine_rows: list[tuple[int, int]],
    ttl: int | None,
) -> None:
    table = pa.table(
        {
            "user_id": pa.array([r[0] for r in features], pa.int64()),
            "ts": at([r[1] for r in features]),
            "x": pa.array([r[2] for r in features], pa.float64()),
            "k": pa.array([r[3] for r in features], pa.int64()),
        }
    )
    spine = pd.DataFrame(
        {
            "user_id": [r[0] for r in spine_rows],
            "event_timestamp": [T0 + pd.Timedelta(minutes=r[1]) for r in spine_rows],
        }
    )
    window = None if ttl is None else dt.timedelta(minutes=ttl)
    on_spark, local = both(spark, spine, [("f", table, "user_id", ("x", "k"), window)])
    pd.testing.assert_frame_equal(local, on_spark)


def test_keys_that_cannot_be_compared_name_the_family() -> None:
    from nbfeatures.errors import DefinitionError

    # Text keys are cast to the spine's integer type, and "abc" is no integer.
    when = pa.array([T0], pa.timestamp("us", tz="UTC"))
    spine = pa.table({"user_id": pa.array([1], pa.int64()), "ts": when})
    rows = pa.table({"user_id": ["abc"], "ts": when, "x": pa.array([1.0])})
    family = ArrowFeatures("clicks", rows, "user_id", "ts", ("x",))
    with pytest.raises(DefinitionError, match=r"clicks\.join_key.*family clicks's is string"):
        point_in_time_join_arrow(spine, [family], timestamp_column="ts")


def test_text_keys_against_integer_keys_are_the_same_error_on_both_engines(spark: Any) -> None:
    from nbfeatures.errors import DefinitionError

    # "1" would cast to 1 and match on one engine or the other: refused up front on both.
    rows = pa.table({"user_id": ["1", "2"], "ts": at([0, 1]), "x": pa.array([1.0, 2.0])})
    spine = pd.DataFrame({"user_id": [1, 2], "event_timestamp": [T0, T0]})
    messages = []
    for engine in ("spark", "arrow"):
        with pytest.raises(DefinitionError) as raised:
            if engine == "spark":
                both(spark, spine, [("clicks", rows, "user_id", ("x",), None)])
            else:
                point_in_time_join_arrow(
                    pa.Table.from_pandas(spine),
                    [ArrowFeatures("clicks", rows, "user_id", "ts", ("x",))],
                    timestamp_column="event_timestamp",
                )
        assert raised.value.field == "clicks.join_key"
        messages.append(str(raised.value))
    assert messages[0] == messages[1]
    assert "'user_id' is integer and family clicks's is string" in messages[0]
