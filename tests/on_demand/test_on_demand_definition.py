"""On-demand definitions: inputs and request fields are validated, hashed and round-tripped."""

from __future__ import annotations

import pytest

from nbfeatures.definitions import Entity, Feature, FeatureFamily, FeatureType, Transformation
from nbfeatures.errors import DefinitionError

BODY = """
def txn_risk(df):
    return pd.DataFrame({"ratio": df["amount"] / df["user_spend__spend"]})
"""


def on_demand(**changes: object) -> FeatureFamily:
    fields: dict[str, object] = {
        "name": "txn_risk",
        "entity": Entity("user", "user_id"),
        "timestamp": "event_timestamp",
        "features": (Feature("ratio", FeatureType.FLOAT64),),
        "transformation": Transformation("python", BODY),
        "owner": "ana",
        "on_demand": True,
        "inputs": ("user_spend:spend",),
        "request": (Feature("amount", FeatureType.FLOAT64),),
    }
    fields.update(changes)
    return FeatureFamily(**fields)  # type: ignore[arg-type]


def test_round_trip_keeps_inputs_and_request() -> None:
    family = on_demand()
    data = family.to_dict()
    assert data["inputs"] == ["user_spend:spend"]
    assert data["request"] == [{"name": "amount", "dtype": "float64"}]
    assert FeatureFamily.from_dict(data) == family
    assert FeatureFamily.from_dict(data).version_hash == family.version_hash


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("inputs", ("user_spend:spend", "user_spend:txn_count")),
        ("inputs", ("user_spend@v2:spend",)),
        ("request", (Feature("amount", FeatureType.FLOAT32),)),
        ("request", (Feature("amount", FeatureType.FLOAT64), Feature("mcc", FeatureType.STRING))),
    ],
)
def test_inputs_and_request_are_semantic(change: str, value: object) -> None:
    assert on_demand(**{change: value}).version_hash != on_demand().version_hash


def test_input_order_does_not_make_a_new_version() -> None:
    two = on_demand(inputs=("user_spend:spend", "user_spend:txn_count"))
    swapped = on_demand(inputs=("user_spend:txn_count", "user_spend:spend"))
    assert two.version_hash == swapped.version_hash


def test_batch_families_keep_their_semantic_fields() -> None:
    batch = on_demand(on_demand=False, inputs=(), request=())
    assert "inputs" not in batch.semantic_fields()
    assert "request" not in batch.semantic_fields()
    assert "inputs" not in batch.to_dict()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"on_demand": False}, "inputs"),
        ({"on_demand": False, "inputs": ()}, "request"),
        ({"transformation": Transformation("sql", "SELECT 1")}, "transformation"),
        ({"inputs": (), "request": ()}, "inputs"),
        ({"inputs": ("user_spend:*",)}, "inputs"),
        ({"inputs": ("txn_risk:ratio",)}, "inputs"),
        ({"inputs": ("user_spend:spend", "user_spend:spend")}, "inputs"),
        ({"inputs": ("not a ref",)}, "reference"),
        ({"request": (Feature("amount", "float64"), Feature("amount", "int64"))}, "request"),
    ],
)
def test_invalid_on_demand_definitions_name_the_field(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(DefinitionError) as raised:
        on_demand(**changes)
    assert raised.value.field == field
