"""What the skew report recomputes from the log: entity keys cast to the stored key type, and
on-demand families it cannot recompute (no services)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from nbfeatures.monitoring.skew import _cast_entities, _unrecomputable
from nbfeatures.on_demand import define_on_demand


def test_text_entities_become_the_stored_key_type():
    values, ok = _cast_entities(pd.Series(["7", "12", None]), pa.int64())
    assert values.type == pa.int64() and values.to_pylist() == [7, 12, None]
    assert ok.tolist() == [True, True, False]
    text, ok = _cast_entities(pd.Series(["u1", "u2"]), pa.string())
    assert text.to_pylist() == ["u1", "u2"] and ok.all()


def test_a_key_that_does_not_parse_is_skipped_not_fatal():
    values, ok = _cast_entities(pd.Series(["1", "one", "3"]), pa.int64())
    assert values.to_pylist() == [1, None, 3]
    assert ok.tolist() == [True, False, True]


def test_on_demand_with_request_fields_is_named_as_not_recomputable():
    with_request = define_on_demand(
        "txn_share", "def txn_share(df):\n    return df.assign(share=df['amount'] / 2.0)\n",
        entity_key="user_id", inputs={}, request={"amount": "float64"}, owner="tests",
    )  # fmt: skip
    reason = _unrecomputable(with_request)
    assert reason is not None and "amount" in reason and "txn_share" in reason
    inputs_only = define_on_demand(
        "spend_twice", "def spend_twice(df):\n    return df.assign(twice=df['s__x'] * 2.0)\n",
        entity_key="user_id", inputs={"s:x": "float64"}, request={}, owner="tests",
    )  # fmt: skip
    assert _unrecomputable(inputs_only) is None
