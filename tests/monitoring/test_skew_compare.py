"""The value-by-value comparison and its causes, on hand-made rows (no services)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from nbfeatures.definitions import FeatureType
from nbfeatures.monitoring.config import SkewSettings
from nbfeatures.monitoring.skew_compare import (
    Aligned,
    check_of,
    compare_feature,
    examples,
    overall_status,
)
from nbfeatures.monitoring.summary import Status

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def aligned(rows: list[dict]) -> Aligned:
    """Rows of: served, offline (values of feature x), served/offline presence, times, version."""
    served_times = pd.Series([r.get("served_at") for r in rows], dtype="datetime64[us, UTC]")
    offline_times = pd.Series([r.get("offline_at") for r in rows], dtype="datetime64[us, UTC]")

    def micros(times: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        known = times.notna().to_numpy()
        values = np.zeros(len(times), dtype=np.int64)
        values[known] = times[known].astype("int64").to_numpy()
        return values, known

    served_us, served_known = micros(served_times)
    offline_us, offline_known = micros(offline_times)
    statuses = [r.get("status", "PRESENT") for r in rows]
    return Aligned(
        served=pd.DataFrame({"x": [r.get("served") for r in rows]}),
        offline=pd.DataFrame({"x": [r.get("offline") for r in rows]}),
        served_present=np.array([s == "PRESENT" for s in statuses]),
        offline_present=offline_known,
        served_event_us=served_us,
        served_event_known=served_known,
        offline_event_us=offline_us,
        offline_event_known=offline_known,
        other_version=np.array([r.get("version", 1) != 1 for r in rows]),
        context=pd.DataFrame(
            {
                "entity": [f"e{i}" for i in range(len(rows))],
                "request_time": [T0] * len(rows),
                "version": [r.get("version", 1) for r in rows],
                "status": statuses,
                "event_time": served_times,
            }
        ),
        offline_event_time=offline_times,
    )


SAME = {"served_at": T0 - HOUR, "offline_at": T0 - HOUR}


def causes_of(rows: list[dict], dtype: FeatureType = FeatureType.FLOAT64) -> list[str | None]:
    result = compare_feature(aligned(rows), "x", dtype, SkewSettings())
    names = ["version", "stale", "missing", "extra", "offline_behind", "value"]
    return [None if c < 0 else names[c] for c in result.causes]


def test_each_cause_in_its_order():
    rows = [
        {"served": 1.0, "offline": 1.0, **SAME},  # match
        {"served": 1.0, "offline": 2.0, **SAME, "version": 2},  # version beats everything
        {"served": 1.0, "offline": 2.0, "served_at": T0 - 2 * HOUR, "offline_at": T0 - HOUR},
        {"served": None, "offline": 2.0, "status": "NOT_FOUND", "offline_at": T0 - HOUR},
        {"served": 3.0, "offline": None, "served_at": T0 - HOUR},
        {"served": 3.0, "offline": 2.0, "served_at": T0, "offline_at": T0 - HOUR},
        {"served": 3.0, "offline": 2.0, **SAME},
        {"status": "NOT_FOUND"},  # absent on both sides: no mismatch
    ]
    assert causes_of(rows) == [
        None, "version", "stale", "missing", "extra", "offline_behind", "value", None,
    ]  # fmt: skip


def test_an_older_served_value_that_happens_to_be_equal_is_no_mismatch():
    rows = [{"served": 5.0, "offline": 5.0, "served_at": T0 - 2 * HOUR, "offline_at": T0}]
    assert causes_of(rows) == [None]


def test_floats_within_tolerance_ints_exactly_and_nulls_equal_nulls():
    floats = [
        {"served": 1.0 + 1e-9, "offline": 1.0, **SAME},
        {"served": 1.001, "offline": 1.0, **SAME},
        {"served": None, "offline": None, **SAME},
        {"served": None, "offline": 0.0, **SAME},
    ]
    assert causes_of(floats) == [None, "value", None, "value"]
    # A relative tolerance on whole numbers would call these equal.
    ints = [{"served": 1_000_000_000, "offline": 1_000_000_001, **SAME}]
    assert causes_of(ints, FeatureType.INT64) == ["value"]


def test_text_bool_and_time_values():
    assert causes_of(
        [{"served": "a", "offline": "a", **SAME}, {"served": "a", "offline": "b", **SAME}],
        FeatureType.STRING,
    ) == [None, "value"]
    assert causes_of(
        [{"served": True, "offline": True, **SAME}, {"served": False, "offline": None, **SAME}],
        FeatureType.BOOL,
    ) == [None, "value"]
    assert causes_of(
        [{"served": T0, "offline": T0, **SAME}, {"served": T0, "offline": T0 + HOUR, **SAME}],
        FeatureType.TIMESTAMP,
    ) == [None, "value"]


def test_rates_smape_examples_and_the_status_rule():
    settings = SkewSettings(warn_rate=0.1, alert_rate=0.3, examples=1)
    rows = [{"served": 1.0, "offline": 1.0, **SAME} for _ in range(8)]
    rows += [{"served": 3.0, "offline": 1.0, **SAME}, {"served": 2.0, "offline": 2.0, **SAME}]
    rows += [{"served": 1.0, "offline": 2.0, **SAME, "version": 2}]
    data = aligned(rows)
    result = compare_feature(data, "x", FeatureType.FLOAT64, settings)
    check = check_of(result, settings)
    assert result.mismatches == 2 and result.counts["value"] == 1
    assert check.value == pytest.approx(2 / 11)
    assert check.status is Status.WARN  # 1/11 value-caused: under the alert rate
    # SMAPE over the eleven rows present on both sides: |3-1|/2 and |1-2|/1.5, the rest 0.
    assert check.detail["smape"] == pytest.approx(100 * (1.0 + 2 / 3) / 11)
    status, rate = overall_status([result], [check.status], settings)
    assert (status, rate) == (Status.WARN, pytest.approx(2 / 11))
    found = examples(data, [result], reference_version=1, limit=1)
    assert set(found) == {"value", "version"}
    assert found["value"][0]["served_value"] == 3.0 and found["value"][0]["offline_value"] == 1.0
    assert found["version"][0]["served_version"] == 2
    bug = SkewSettings(warn_rate=0.01, alert_rate=0.05)
    assert check_of(result, bug).status is Status.ALERT  # value cause 1/11 > 5%


def test_a_small_rate_spread_over_features_is_judged_overall():
    settings = SkewSettings(warn_rate=0.0, alert_rate=0.5)
    rows = [{"served": 1.0, "offline": 1.0, **SAME}, {"served": 1.0, "offline": 2.0, **SAME,
            "version": 2}]  # fmt: skip
    result = compare_feature(aligned(rows), "x", FeatureType.FLOAT64, settings)
    check = check_of(result, settings)
    assert check.status is Status.WARN
    assert overall_status([result], [check.status], settings) == (Status.WARN, 0.5)
    strict = SkewSettings(warn_rate=0.0, alert_rate=0.4)
    assert overall_status([result], [Status.WARN], strict)[0] is Status.ALERT
