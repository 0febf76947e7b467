"""The Spark engine of the drift report gives the in-process engine's numbers, on a local
session and on Spark Connect, for the offline reference and a training-set reference."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import steady_values
from test_drift import VECTORS, serve_day

from nbfeatures.monitoring.config import parse_monitoring
from nbfeatures.monitoring.drift import drift_report
from nbfeatures.monitoring.summary import ReportSummary

DAY = dt.datetime(2026, 3, 20, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def shifted_day(drift_workspace, redis_server):
    with redis_server.client() as client:
        serve_day(drift_workspace, client, DAY, seed=9, not_found=40, amount_mean=112.0,
                  tier_shares=(0.5, 0.3, 0.2), amount_nulls=0.3)  # fmt: skip
    return DAY


def both(settings, session, tmp_path, **kwargs: Any) -> tuple[ReportSummary, ReportSummary]:
    window = {"start": DAY, "end": DAY + dt.timedelta(days=1)}
    arrow = drift_report(settings, "steady", output_dir=tmp_path / "a", engine="arrow",
                         **window, **kwargs).summary  # fmt: skip
    spark = drift_report(settings, "steady", output_dir=tmp_path / "s", engine="spark",
                         spark=session, **window, **kwargs).summary  # fmt: skip
    assert spark.detail["engine"] == "spark" and arrow.detail["engine"] == "arrow"
    return arrow, spark


def assert_same(arrow: ReportSummary, spark: ReportSummary) -> None:
    assert (spark.status, spark.rows) == (arrow.status, arrow.rows)
    for ours, theirs in zip(arrow.checks, spark.checks, strict=True):
        assert theirs.feature == ours.feature and theirs.metric == ours.metric
        assert theirs.value == pytest.approx(ours.value, rel=1e-9, abs=1e-12), ours.feature
        assert theirs.detail == ours.detail, ours.feature
    for key in ("statuses", "not_found_share", "drifted_features", "reference"):
        assert spark.detail[key] == arrow.detail[key], key


# Wasserstein needs every statistic PSI does and the quantile grid besides: Connect runs it.
@pytest.mark.parametrize(
    ("session", "method"),
    [("spark", "psi"), ("spark", "wasserstein"), ("connect_spark", "wasserstein")],
)
def test_spark_statistics_equal_in_process(drift_workspace, shifted_day, tmp_path, request,
                                           session, method):  # fmt: skip
    config = parse_monitoring(
        {"defaults": {"drift": {"numeric_method": method, "numeric_threshold": 0.3}}}
    ).for_family("steady")
    arrow, spark = both(drift_workspace, request.getfixturevalue(session), tmp_path,
                        config=config)  # fmt: skip
    assert_same(arrow, spark)
    assert arrow.detail["drifted_features"]  # the shift is there to be found
    assert arrow.rows == VECTORS + 40
    assert spark.detail["page_sample"]["current"] == VECTORS


def test_spark_with_a_training_set_reference(drift_workspace, shifted_day, tmp_path, spark):
    values = steady_values(np.random.default_rng(3), 2000)
    training = pd.DataFrame({f"steady__{k}": v for k, v in values.items()})
    training["steady__clicks"] = training["steady__clicks"].astype("Int64")
    arrow, on_spark = both(drift_workspace, spark, tmp_path, reference=training)
    assert_same(arrow, on_spark)
