"""On-demand families: the server runs the same function as batch, on request data and inputs."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest
from serving_fixtures import NOW, layout, put_family, running_server

from nbfeatures.client import FeatureClient
from nbfeatures.errors import InvalidRequest, TransformationError
from nbfeatures.on_demand import apply_on_demand, define_on_demand, publish_on_demand

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("data_plane")]

BODY = """
def txn_risk(df):
    if (df["amount"] < 0).any():
        raise ValueError("amounts are never negative")
    share = df["amount"] / (df["users__score"] + 1.0)
    return pd.DataFrame(
        {
            "share": share,
            "large": df["amount"] > 100,
            "clicks_plus": df["users__clicks"] + 1,
            "label": np.where(df["users__tier"].isna(), "none", df["users__tier"]),
        }
    )
"""
INPUTS = {"users:clicks": "int64", "users:score": "float64", "users:tier": "string"}


def txn_risk():
    return define_on_demand(
        "txn_risk",
        BODY,
        entity_key="user_id",
        inputs=INPUTS,
        request={"amount": "float64"},
        owner="ana",
    )


@pytest.fixture
def served(store):
    put_family(
        store,
        layout("users", 1, ttl=3600),
        [
            {"user_id": 1, "clicks": 7, "score": 0.5, "tier": "gold"},
            {"user_id": 2, "clicks": 3, "score": 1.5, "tier": "blue",
             "ts": NOW - dt.timedelta(minutes=65)},  # stale: null for the function, as in batch
            {"user_id": 3, "clicks": None, "score": 3.0},
        ],
    )  # fmt: skip
    publish_on_demand(store, txn_risk(), 1)
    return store


def same(a: object, b: object) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)) or a is pd.NA:
        return b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NA
    return a == b


def test_served_values_equal_the_batch_function(served):
    family = txn_risk()
    amounts = [50.0, 250.0, 9.0, 120.0]
    with running_server(served) as server, FeatureClient(f"127.0.0.1:{server.port}") as client:
        got = client.get_online_features(
            {"user_id": [1, 2, 3, 4]}, ["txn_risk:*"], request_data={"amount": amounts}
        )
        # What a point-in-time join gives the batch path for the same rows: the present values,
        # null for the stale row 2 and the unknown user 4.
    spine = pd.DataFrame(
        {
            "amount": amounts,
            "users__clicks": pd.array([7, None, None, None], dtype="Int64"),
            "users__score": [0.5, None, 3.0, None],
            "users__tier": ["gold", None, None, None],
        }
    )
    batch = apply_on_demand(family, spine, INPUTS)
    assert got.statuses["txn_risk:share"] == ["PRESENT"] * 4
    assert got.versions == {"txn_risk": 1}
    for feature in family.feature_names:
        served_values = got[f"txn_risk:{feature}"]
        batch_values = [None if v is pd.NA else v for v in batch[feature].tolist()]
        assert all(same(s, b) for s, b in zip(served_values, batch_values, strict=True)), (
            feature, served_values, batch_values,
        )  # fmt: skip
    assert got["txn_risk:share"][0] == pytest.approx(50.0 / 1.5)
    assert got["txn_risk:large"] == [False, True, False, True]
    assert got["txn_risk:clicks_plus"] == [8, None, None, None]
    assert got["txn_risk:label"] == ["gold", "none", "none", "none"]


def test_inputs_and_on_demand_side_by_side_and_pinned(served):
    with running_server(served) as server, FeatureClient(f"127.0.0.1:{server.port}") as client:
        got = client.get_online_features(
            {"user_id": [1]},
            ["users:clicks", "txn_risk@v1:large"],
            request_data={"amount": 500.0},
        )
        described = client.describe_family("txn_risk")
    assert got["users:clicks"] == [7]
    assert got["txn_risk@v1:large"] == [True]
    assert described["features"]["share"] == "float64"
    assert described["live_version"] == 1


def test_missing_request_field_is_invalid_argument_naming_it(served):
    with running_server(served) as server, FeatureClient(f"127.0.0.1:{server.port}") as client:
        with pytest.raises(InvalidRequest, match="amount"):
            client.get_online_features({"user_id": [1]}, ["txn_risk:share"])
        with pytest.raises(InvalidRequest, match="'amount' has 1 values for 2 entity rows"):
            client.get_online_features(
                {"user_id": [1, 2]}, ["txn_risk:share"], request_data={"amount": [1.0]}
            )
        with pytest.raises(InvalidRequest, match="amount"):
            client.get_online_features(
                {"user_id": [1]}, ["txn_risk:share"], request_data={"amount": ["many"]}
            )


def test_function_raising_gives_error_statuses_and_the_server_keeps_serving(served):
    with running_server(served) as server, FeatureClient(f"127.0.0.1:{server.port}") as client:
        bad = client.get_online_features(
            {"user_id": [1, 2]},
            ["txn_risk:share", "users:clicks"],
            request_data={"amount": [-1, 2]},
        )
        good = client.get_online_features(
            {"user_id": [1]}, ["txn_risk:share"], request_data={"amount": 3.0}
        )
    assert bad.statuses["txn_risk:share"] == ["ERROR", "ERROR"]
    assert bad["txn_risk:share"] == [None, None]
    assert "amounts are never negative" in bad.errors["txn_risk"]
    assert "line 4" in bad.errors["txn_risk"]
    assert bad["users:clicks"] == [7, 3]  # the other family is unaffected
    assert good.statuses["txn_risk:share"] == ["PRESENT"]


def test_bad_body_fails_at_definition_time_with_its_line():
    with pytest.raises(TransformationError) as raised:
        define_on_demand(
            "txn_risk",
            "def txn_risk(df):\n    ok = 1\n    return df['amount'] +* 2\n",
            entity_key="user_id",
            inputs={},
            request={"amount": "float64"},
            owner="ana",
        )
    assert raised.value.line == 3
    with pytest.raises(TransformationError) as raised:
        define_on_demand(
            "txn_risk",
            "def txn_risk(df):\n    return pd.DataFrame({'x': df['no_such_column']})\n",
            entity_key="user_id",
            inputs=INPUTS,
            request={"amount": "float64"},
            owner="ana",
        )
    assert raised.value.line == 2
    assert "no_such_column" in raised.value.reason
