"""Point-in-time join: agrees with a brute-force reference, never leaks, loses no spine row.

Runs on the local Spark session, through a real Spark Connect server, and in process on Arrow
(``engine.arrow.pit``): every case below runs against each.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbfeatures.engine.arrow.columns import ArrowFeatures
from nbfeatures.engine.arrow.pit import point_in_time_join_arrow
from nbfeatures.engine.spark.pit import FeatureFrame, point_in_time_join
from nbfeatures.engine.spark.spark_api import functions
from nbfeatures.errors import DefinitionError

pytestmark = pytest.mark.integration

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def at(minutes: int) -> dt.datetime:
    return T0 + minutes * MINUTE


def micros(value: dt.datetime) -> int:
    return (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def reference(
    spine: list[tuple[Any, ...]],
    families: list[tuple[int, list[tuple[int, dt.datetime, float]], dt.timedelta | None]],
) -> list[tuple[Any, ...]]:
    """Brute force: for each spine row and family, the greatest (time, value) row allowed."""
    out = []
    for row in spine:
        values: list[Any] = []
        spine_time = row[2]
        for key_index, rows, ttl in families:
            allowed = [
                (t, v)
                for k, t, v in rows
                if k == row[key_index]
                and t <= spine_time
                and (ttl is None or t >= spine_time - ttl)
            ]
            best = max(allowed) if allowed else None
            values += [None, None] if best is None else [best[1], micros(best[0])]
        out.append((row[0], row[1], micros(spine_time), row[3], *values))
    return out


SPINE_SCHEMA = "user_id long, merchant_id long, event_timestamp timestamp, label long"
FEATURE_SCHEMA = "{key} long, ts timestamp, value double"


def run_join(
    spark: Any,
    spine: list[tuple[Any, ...]],
    spend: list[tuple[int, dt.datetime, float]],
    risk: list[tuple[int, dt.datetime, float]],
    spend_ttl: dt.timedelta | None,
    risk_ttl: dt.timedelta | None,
) -> list[tuple[Any, ...]]:
    F = functions(spark)
    families = [
        FeatureFrame(
            "spend",
            spark.createDataFrame(spend, FEATURE_SCHEMA.format(key="user_id")),
            "user_id",
            "ts",
            ("value",),
            spend_ttl,
        ),
        FeatureFrame(
            "risk",
            spark.createDataFrame(risk, FEATURE_SCHEMA.format(key="merchant_id")),
            "merchant_id",
            "ts",
            ("value",),
            risk_ttl,
        ),
    ]
    joined = point_in_time_join(
        spark.createDataFrame(spine, SPINE_SCHEMA),
        families,
        timestamp_column="event_timestamp",
        include_event_times=True,
    )
    rows = joined.select(
        "user_id",
        "merchant_id",
        F.unix_micros("event_timestamp"),
        "label",
        "spend__value",
        F.unix_micros("spend__event_time"),
        "risk__value",
        F.unix_micros("risk__event_time"),
    ).collect()
    return [tuple(r) for r in rows]


def run_join_arrow(
    spine: list[tuple[Any, ...]],
    spend: list[tuple[int, dt.datetime, float]],
    risk: list[tuple[int, dt.datetime, float]],
    spend_ttl: dt.timedelta | None,
    risk_ttl: dt.timedelta | None,
) -> list[tuple[Any, ...]]:
    """The same join as ``run_join``, in process on Arrow tables built from the same rows."""
    us = pa.timestamp("us", tz="UTC")

    def features(rows: list[tuple[int, dt.datetime, float]], key: str) -> Any:
        return pa.table(
            {
                key: pa.array([r[0] for r in rows], pa.int64()),
                "ts": pa.array([r[1] for r in rows], us),
                "value": pa.array([r[2] for r in rows], pa.float64()),
            }
        )

    table = pa.table(
        {
            "user_id": pa.array([r[0] for r in spine], pa.int64()),
            "merchant_id": pa.array([r[1] for r in spine], pa.int64()),
            "event_timestamp": pa.array([r[2] for r in spine], us),
            "label": pa.array([r[3] for r in spine], pa.int64()),
        }
    )
    families = [
        ArrowFeatures("spend", features(spend, "user_id"), "user_id", "ts", ("value",), spend_ttl),
        ArrowFeatures(
            "risk", features(risk, "merchant_id"), "merchant_id", "ts", ("value",), risk_ttl
        ),
    ]
    joined = point_in_time_join_arrow(
        table, families, timestamp_column="event_timestamp", include_event_times=True
    )
    as_int = [c if c.type != us else c.cast(pa.int64()) for c in joined.columns]
    order = [
        "user_id", "merchant_id", "event_timestamp", "label",
        "spend__value", "spend__event_time", "risk__value", "risk__event_time",
    ]  # fmt: skip
    columns = dict(zip(joined.column_names, as_int, strict=True))
    rows = pa.table([columns[c] for c in order], names=order).to_pylist()
    return [tuple(r.values()) for r in rows]


Join = Callable[..., list[tuple[Any, ...]]]


@pytest.fixture(scope="module", params=["spark-local", "spark-connect", "arrow"])
def join(request: pytest.FixtureRequest) -> Join:
    """Each engine in turn: the Spark join (local and Connect) and the in-process Arrow join."""
    if request.param == "arrow":
        return run_join_arrow
    session = request.getfixturevalue(
        "spark" if request.param == "spark-local" else "connect_spark"
    )
    return lambda *args: run_join(session, *args)


def test_hand_written_case_matches_expected_values(join: Join) -> None:
    spend = [
        (1, at(0), 10.0),
        (1, at(5), 15.0),  # exactly at the spine time: visible
        (1, at(9), 99.0),  # future for the spine rows below: never used
        (2, at(0), 20.0),
        (2, at(0), 21.0),  # same key and time: the greater struct wins
    ]
    risk = [(7, at(0), 0.5), (7, at(3), 0.7)]
    spine = [
        (1, 7, at(5), 1),
        (1, 7, at(5), 1),  # a repeated spine row stays repeated
        (2, 7, at(4), 0),
        (3, 8, at(5), 0),  # no features at all
        (4, 7, at(6), 1),  # risk at 3 is 3 minutes old: past the ttl
    ]
    ttl = 2 * MINUTE
    got = join(spine, spend, risk, None, ttl)
    assert Counter(got) == Counter(reference(spine, [(0, spend, None), (1, risk, ttl)]))
    by_user = {r[0]: r for r in got}
    assert by_user[1][4] == 15.0
    assert by_user[2][4] == 21.0
    # risk at 3 is 2 minutes old at 5: exactly ttl old is still usable (age <= ttl).
    assert by_user[1][6] == 0.7
    assert by_user[2][6] == 0.7
    assert by_user[3][4] is None and by_user[3][6] is None
    assert by_user[4][6] is None
    assert len(got) == 5


def test_missing_spine_column_names_it_and_the_columns_present(spark: Any) -> None:
    spine = spark.createDataFrame([(1, at(0))], "user_id long, ts timestamp")
    family = FeatureFrame(
        "spend",
        spark.createDataFrame([(1, at(0), 1.0)], FEATURE_SCHEMA.format(key="user_id")),
        "user_id",
        "ts",
        ("value",),
    )
    with pytest.raises(DefinitionError, match=r"event_timestamp.*user_id, ts"):
        point_in_time_join(spine, [family], timestamp_column="event_timestamp")


def test_plan_is_a_sorted_window_not_a_pairwise_join(spark: Any) -> None:
    spend = [(1, at(0), 1.0)]
    family = FeatureFrame(
        "spend",
        spark.createDataFrame(spend, FEATURE_SCHEMA.format(key="user_id")),
        "user_id",
        "ts",
        ("value",),
    )
    spine = spark.createDataFrame([(1, 2, at(1), 0)], SPINE_SCHEMA)
    joined = point_in_time_join(spine, [family], timestamp_column="event_timestamp")
    plan = joined._jdf.queryExecution().executedPlan().toString()
    assert "Window" in plan
    assert "Join" not in plan and "Cartesian" not in plan


keys = st.integers(0, 3)
minutes = st.integers(0, 30)
values = st.integers(-50, 50).map(float)
feature_rows = st.lists(st.tuples(keys, minutes.map(at), values), max_size=25)
spine_rows = st.lists(
    st.tuples(keys, keys, st.integers(0, 35).map(at), st.integers(0, 1)), min_size=1, max_size=20
)
ttls = st.one_of(st.none(), st.integers(1, 10).map(lambda m: m * MINUTE))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spine=spine_rows, spend=feature_rows, risk=feature_rows, spend_ttl=ttls, risk_ttl=ttls)
def test_property_agrees_with_brute_force_and_never_leaks(
    join: Join,
    spine: list[tuple[Any, ...]],
    spend: list[tuple[int, dt.datetime, float]],
    risk: list[tuple[int, dt.datetime, float]],
    spend_ttl: dt.timedelta | None,
    risk_ttl: dt.timedelta | None,
) -> None:
    got = join(spine, spend, risk, spend_ttl, risk_ttl)
    expected = reference(spine, [(0, spend, spend_ttl), (1, risk, risk_ttl)])
    assert Counter(got) == Counter(expected)
    assert len(got) == len(spine)
    for row in got:
        spine_time = row[2]
        for value_time, ttl in ((row[5], spend_ttl), (row[7], risk_ttl)):
            if value_time is None:
                continue
            assert value_time <= spine_time
            if ttl is not None:
                assert value_time >= spine_time - ttl // dt.timedelta(microseconds=1)
