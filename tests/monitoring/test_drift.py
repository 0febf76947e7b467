"""Drift reports on a real registered family, its offline set computed by Spark, and served
logs written through Redis and ``flush_served_log``: injected shifts are found, steady
traffic is not, and Evidently's page agrees with our verdict."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import DRIFT_FEATURES, steady_values
from served_log import Served, entry, log_requests

from nbfeatures.catalog import Catalog
from nbfeatures.errors import ConfigError, OfflineDataMissing
from nbfeatures.monitoring.config import parse_monitoring
from nbfeatures.monitoring.drift import drift_report
from nbfeatures.monitoring.summary import ReportSummary, Status
from nbfeatures.serving.lookup import Status as Served_

VECTORS = 1500
PER_REQUEST = 50


def serve_day(settings, client, day: dt.datetime, seed: int, not_found: int = 0, **shift: Any):
    """Log ``VECTORS`` served vectors of ``steady`` v1 over one day (plus ``not_found``)."""
    family = Catalog.from_settings(settings).get("steady", 1).family
    rng = np.random.default_rng(seed)
    values = steady_values(rng, VECTORS, **shift)
    payloads = []
    for start in range(0, VECTORS, PER_REQUEST):
        when = day + dt.timedelta(seconds=int(start * 86000 / VECTORS))
        rows = [
            Served(f"u{i}", {f.name: values[f.name][i] for f in DRIFT_FEATURES},
                   when - dt.timedelta(minutes=10))
            for i in range(start, start + PER_REQUEST)
        ]  # fmt: skip
        payloads.append(entry(family, 1, when, rows))
    if not_found:
        missing = [Served(f"x{i}", {}, None, Served_.NOT_FOUND) for i in range(not_found)]
        payloads.append(entry(family, 1, day + dt.timedelta(hours=23), missing))
    log_requests(client, settings.offline, payloads)


def report(settings, day: dt.datetime, out: Path, **kwargs: Any):
    result = drift_report(settings, "steady", output_dir=out, start=day,
                          end=day + dt.timedelta(days=1), **kwargs)  # fmt: skip
    text = result.html.read_text()
    assert result.html == out / "drift.html" and len(text) > 10_000 and "steady" in text
    # The JSON form is what everything else reads: check the verdict through it.
    return ReportSummary.from_json(result.summary.to_json())


def test_steady_traffic_is_not_drift(drift_workspace, redis_client, tmp_path):
    day = dt.datetime(2026, 3, 12, tzinfo=dt.UTC)
    serve_day(drift_workspace, redis_client, day, seed=1, not_found=100)
    summary = report(drift_workspace, day, tmp_path)

    assert summary.status is Status.OK, summary.to_json()
    assert [c.feature for c in summary.checks] == [f.name for f in DRIFT_FEATURES]
    assert all(not c.detail["drifted"] for c in summary.checks)
    assert summary.check("amount").metric == "psi" and summary.check("amount").threshold == 0.2
    assert summary.check("tier").metric == "jensenshannon"
    assert summary.rows == VECTORS + 100
    assert summary.detail["not_found_share"] == pytest.approx(100 / (VECTORS + 100), abs=1e-6)
    assert summary.detail["reference"]["kind"] == "offline"
    assert summary.detail["reference"]["start"] == "2026-03-05T00:00:00+00:00"
    assert 1000 < summary.detail["reference"]["rows"] < 2000  # 7 of the 20 days


def test_shifted_number_and_category_are_drift(drift_workspace, redis_client, tmp_path):
    day = dt.datetime(2026, 3, 13, tzinfo=dt.UTC)
    serve_day(drift_workspace, redis_client, day, seed=2, amount_mean=115.0,
              tier_shares=(0.6, 0.3, 0.1))  # fmt: skip
    summary = report(drift_workspace, day, tmp_path)

    assert summary.detail["drifted_features"] == ["amount", "tier"]
    assert summary.check("amount").value > 0.2 and summary.check("tier").value > 0.1
    assert summary.check("clicks").status is Status.OK
    # 2 of 5 drifted: under the default drift_share of 0.5, a warning.
    assert summary.status is Status.WARN
    assert any("amount, tier" in note for note in summary.notes)


def test_drift_share_decides_the_alert(drift_workspace, redis_client, tmp_path):
    day = dt.datetime(2026, 3, 14, tzinfo=dt.UTC)
    serve_day(drift_workspace, redis_client, day, seed=3, amount_mean=115.0)
    config = parse_monitoring(
        {
            "defaults": {
                "drift": {
                    "drift_share": 0.2,
                    "numeric_method": "wasserstein",
                    "numeric_threshold": 0.5,
                }
            }
        }
    ).for_family("steady")
    summary = report(drift_workspace, day, tmp_path, config=config)

    assert summary.status is Status.ALERT
    assert summary.check("amount").metric == "wasserstein"
    assert summary.check("amount").value == pytest.approx(1.5, abs=0.3)  # 15 / std 10
    assert summary.detail["drifted_features"] == ["amount"]


def test_null_share_jump_warns_without_drift(drift_workspace, redis_client, tmp_path):
    day = dt.datetime(2026, 3, 15, tzinfo=dt.UTC)
    serve_day(drift_workspace, redis_client, day, seed=4, amount_nulls=0.6)
    summary = report(drift_workspace, day, tmp_path)

    amount = summary.check("amount")
    assert summary.status is Status.WARN
    assert not amount.detail["drifted"]  # the values that are there look the same
    assert amount.detail["null_share_moved"] and amount.status is Status.WARN
    assert amount.detail["null_share_current"] == pytest.approx(0.6, abs=0.05)
    assert amount.detail["null_share_reference"] == pytest.approx(0.05, abs=0.03)


def test_evidently_agrees_with_our_verdict(drift_workspace, redis_client, tmp_path):
    day = dt.datetime(2026, 3, 16, tzinfo=dt.UTC)
    serve_day(drift_workspace, redis_client, day, seed=5, amount_mean=115.0,
              tier_shares=(0.6, 0.3, 0.1))  # fmt: skip
    summary = report(drift_workspace, day, tmp_path)
    scores = summary.detail["evidently_scores"]
    assert set(scores) == {f.name for f in DRIFT_FEATURES}
    for check in summary.checks:
        theirs = scores[check.feature] >= check.threshold
        assert theirs == check.detail["drifted"], (check.feature, check.value, scores)
    # Category shares are counted alike, so Jensen-Shannon is the same number.
    assert scores["tier"] == pytest.approx(summary.check("tier").value, rel=1e-6)


def test_training_set_reference_and_page_sample(drift_workspace, redis_client, tmp_path):
    day = dt.datetime(2026, 3, 17, tzinfo=dt.UTC)
    serve_day(drift_workspace, redis_client, day, seed=6)
    rng = np.random.default_rng(11)
    values = steady_values(rng, 3000, amount_mean=130.0)
    training = pd.DataFrame({f"steady__{k}": v for k, v in values.items()})
    training["steady__clicks"] = training["steady__clicks"].astype("Int64")  # nullable ints
    training["steady__active"] = training["steady__active"].astype("boolean")
    path = tmp_path / "training.parquet"
    training.to_parquet(path)
    config = parse_monitoring({"defaults": {"drift": {"max_rows": 500}}}).for_family("steady")

    for given in (training, path):
        summary = report(drift_workspace, day, tmp_path / "out", reference=given, config=config)
        assert summary.detail["reference"] == {"kind": "training set", "start": None,
                                               "end": None, "rows": 3000}  # fmt: skip
        assert summary.detail["drifted_features"] == ["amount"]
        assert summary.detail["page_sample"] == {"current": 500, "reference": 500}
        assert any("sample of 500 of 1500 served" in n for n in summary.notes)
        assert set(summary.detail["evidently_scores"]) >= {"clicks", "active"}


def test_bad_input_is_named(drift_workspace, tmp_path):
    day = dt.datetime(2026, 3, 18, tzinfo=dt.UTC)
    with pytest.raises(ConfigError, match="steady__amount or amount"):
        report(drift_workspace, day, tmp_path, reference=pd.DataFrame({"x": [1.0]}))
    with pytest.raises(ConfigError, match="engine"):
        report(drift_workspace, day, tmp_path, engine="duckdb")
    with pytest.raises(OfflineDataMissing):
        report(drift_workspace, dt.datetime(2027, 1, 1, tzinfo=dt.UTC), tmp_path)


def test_empty_window_warns_and_writes_a_page(drift_workspace, tmp_path):
    day = dt.datetime(2026, 3, 19, tzinfo=dt.UTC)
    result = drift_report(drift_workspace, "steady", output_dir=tmp_path, start=day,
                          end=day + dt.timedelta(hours=1))  # fmt: skip
    assert result.summary.status is Status.WARN and result.summary.rows == 0
    assert "no served vectors" in result.summary.notes[0]
    assert "steady" in result.html.read_text()
    json.loads(result.summary.to_json())
