"""training_set with an on-demand family: inputs joined point in time, then the same function.

The serving side of the same equality is tests/serving/test_on_demand.py: both paths call
``apply_on_demand``/``OnDemandFunction.apply`` on the same canonical input frame.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pandas as pd
import pytest
from test_offline import DAY1, register_family, write_source

from nbfeatures.catalog import Catalog
from nbfeatures.config import load_settings
from nbfeatures.engine.spark.offline import compute_offline
from nbfeatures.errors import SpineError
from nbfeatures.on_demand import apply_on_demand, define_on_demand
from nbfeatures.training import training_set

pytestmark = pytest.mark.integration
HOUR = dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def world(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("on-demand-training")
    settings = load_settings(root, environ={}, owner="tests")
    catalog = Catalog.from_settings(settings)
    source = root / "tx.parquet"
    write_source(source)
    spend = register_family(catalog, source)
    compute_offline(spark, settings, spend, DAY1, DAY1 + 3 * dt.timedelta(days=1))
    ref = f"{spend.family.name}:spend"
    column = f"{spend.family.name}__spend"
    body = f"""
def ratio(df):
    return pd.DataFrame({{
        "ratio": df["amount"] / df["{column}"],
        "big": df["amount"] > df["{column}"],
    }})
"""
    on_demand = define_on_demand(
        f"ratio_{uuid.uuid4().hex[:6]}",
        body,
        entity_key="user_id",
        inputs={ref: "float64"},
        request={"amount": "float64"},
        owner="tests",
    )
    registered = catalog.register(on_demand).version
    return settings, catalog, spend, registered, ref


def spine() -> pd.DataFrame:
    naive = DAY1.replace(tzinfo=None)
    return pd.DataFrame(
        {
            "user_id": [1, 2, 1],
            "event_timestamp": [naive + 7 * HOUR, naive + 19 * HOUR, naive + 5 * HOUR],
            "amount": [22.0, 5.0, 3.0],
        }
    )


def test_pandas_and_spark_training_sets_equal_the_function_on_the_inputs(spark, world):
    settings, catalog, spend, on_demand, ref = world
    name = on_demand.family.name
    wanted = [f"{name}:*", ref]
    frame = training_set(spine(), wanted, settings=settings, catalog=catalog, progress=False)
    expected = apply_on_demand(on_demand.family, frame, {ref: "float64"})
    spend_column = f"{spend.family.name}__spend"
    assert frame[spend_column].tolist()[:2] == [10.0, 20.0]
    assert pd.isna(frame[spend_column].iloc[2])  # nothing before 05:00
    assert frame[f"{name}__ratio"].tolist()[:2] == [2.2, 0.25]
    pd.testing.assert_series_equal(frame[f"{name}__ratio"], expected["ratio"], check_names=False)
    assert frame[f"{name}__big"].tolist()[:2] == [True, False]

    on_spark = training_set(
        spark.createDataFrame(spine()), wanted, settings=settings, catalog=catalog, progress=False
    ).toPandas()
    on_spark = on_spark.sort_values("event_timestamp").reset_index(drop=True)
    ordered = frame.sort_values("event_timestamp").reset_index(drop=True)
    pd.testing.assert_series_equal(
        on_spark[f"{name}__ratio"], ordered[f"{name}__ratio"], check_names=False
    )


def test_inputs_not_asked_for_are_dropped_and_request_fields_are_required(world):
    settings, catalog, _, on_demand, _ = world
    name = on_demand.family.name
    frame = training_set(
        spine(), [f"{name}:ratio"], settings=settings, catalog=catalog, progress=False
    )
    assert [c for c in frame.columns if "__" in c] == [f"{name}__ratio"]
    with pytest.raises(SpineError) as raised:
        training_set(
            spine().drop(columns=["amount"]),
            [f"{name}:ratio"],
            settings=settings,
            catalog=catalog,
            progress=False,
        )
    assert raised.value.column == "amount"
