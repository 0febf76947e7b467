"""Both engines through the port: the same point-in-time join and latest rows per entity."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nbfeatures.engine.factory import create
from nbfeatures.engine.pit_rules import ROW_COLUMN
from nbfeatures.engine.port import Engine, StoredFamily

pytestmark = pytest.mark.integration

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def at(minutes: list[int]) -> pa.Array:
    return pa.array([T0 + dt.timedelta(minutes=m) for m in minutes], pa.timestamp("us", tz="UTC"))


ROWS = pa.table(
    {
        "user_id": pa.array([1, 1, 1, 2, 2, 3], pa.int64()),
        "ts": at([0, 5, 9, 3, 7, 1]),
        "amount": pa.array([1.0, 2.0, 3.0, 4.0, None, 6.0]),
        "count": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
    }
)


def joined(engine: Engine, spine: pd.DataFrame, rows: Any) -> pd.DataFrame:
    family = StoredFamily(
        "spend", rows, "user_id", "ts", ("amount", "count"), dt.timedelta(minutes=4)
    )
    frame = engine.from_pandas(spine, ROW_COLUMN)
    result = engine.point_in_time_join(
        frame, [family], timestamp_column="event_timestamp", include_event_times=True
    )
    return engine.to_pandas(result)


def test_point_in_time_joins_agree_through_the_port(spark: Any) -> None:
    spine = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 3, 4, 2],
            "event_timestamp": pd.to_datetime(
                [T0 + dt.timedelta(minutes=m) for m in (6, 20, 8, 1, 2, 3)], utc=True
            ),
            "label": [0, 1, 0, 1, 0, 1],
        }
    )
    spine[ROW_COLUMN] = range(len(spine))
    arrow, on_spark = create("arrow"), create("spark", spark=spark)
    assert (arrow.name, on_spark.name) == ("arrow", "spark")
    local = joined(arrow, spine, ROWS)
    remote = joined(on_spark, spine, spark.createDataFrame(ROWS))
    pd.testing.assert_frame_equal(local, remote)
    assert local["spend__count"].fillna(-1).tolist() == [2, -1, 5, 6, -1, 4]


def test_latest_per_entity_agrees_through_the_port(spark: Any) -> None:
    class Columns:
        family = "spend"
        entity_key = "user_id"
        timestamp = "ts"
        feature_names = ("amount", "count")

    with tempfile.TemporaryDirectory(prefix="nbf-port-") as tmp:
        path = str(Path(tmp) / "part-0.parquet")
        pq.write_table(ROWS, path)
        since = T0
        results = []
        for engine in (create("arrow"), create("spark", spark=spark)):
            latest = engine.latest_per_entity(path, Columns(), since=since, batch_rows=2)
            table = pa.Table.from_batches(list(latest.batches)).sort_by("user_id")
            results.append((latest.entities, latest.source_rows, latest.latest_us, table))
    (a_entities, a_rows, a_latest, a_table), (s_entities, s_rows, s_latest, s_table) = results
    assert (
        (a_entities, a_rows, a_latest)
        == (s_entities, s_rows, s_latest)
        == (3, 5, 9 * 60_000_000 + int(T0.timestamp() * 1_000_000))
    )
    assert a_table.to_pylist() == s_table.select(a_table.column_names).to_pylist()
