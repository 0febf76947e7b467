"""Preview statistics on real Spark, checked number by number on a small known dataset."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest

from nbfeatures.definitions import Entity, Feature, FeatureFamily, FeatureType, Transformation
from nbfeatures.errors import TransformationError

pytestmark = pytest.mark.integration

T0 = dt.datetime(2024, 1, 1)
DAY = dt.timedelta(days=1)
ROWS = [
    ("u1", T0, 1.0, 1, True, "b", 7.0),
    ("u1", T0 + DAY, 2.0, 2, False, "a", 7.0),
    ("u2", T0, 3.0, None, True, None, 7.0),
    ("u2", T0 + 2 * DAY, None, 4, None, "c", 7.0),
    ("u3", T0 + DAY, math.nan, 4, True, "c", 7.0),
]
SCHEMA = (
    "user_id string, ts timestamp, amount double, n int, flag boolean, label string, const double"
)


def _family(*features: tuple[str, FeatureType]) -> FeatureFamily:
    return FeatureFamily(
        name="known",
        entity=Entity("user", "user_id"),
        timestamp="ts",
        features=tuple(Feature(name, dtype) for name, dtype in features),
        transformation=Transformation("sql", "SELECT * FROM known"),
        owner="tests",
    )


FAMILY = _family(
    ("amount", FeatureType.FLOAT64),
    ("n", FeatureType.INT32),
    ("flag", FeatureType.BOOL),
    ("label", FeatureType.STRING),
    ("const", FeatureType.FLOAT64),
)


@pytest.fixture(scope="module")
def preview(spark: Any) -> Any:
    from nbfeatures.engine.spark.preview import compute_preview

    frame = spark.createDataFrame(ROWS, SCHEMA)
    result = compute_preview(frame, FAMILY, rows=3, bins=4)
    assert not frame.storageLevel.useMemory  # the cache taken for the passes was released
    return result


def test_counts_schema_and_event_time(preview: Any) -> None:
    assert preview.family is FAMILY
    assert (preview.row_count, preview.entity_count) == (5, 3)
    assert (preview.event_time_min, preview.event_time_max) == (T0, T0 + 2 * DAY)
    assert preview.schema[:3] == (("user_id", "string"), ("ts", "timestamp"), ("amount", "double"))


def test_feature_statistics_are_exact(preview: Any) -> None:
    from nbfeatures.engine.spark.preview import FeatureStats

    stats = preview.stats
    assert stats["amount"] == FeatureStats("amount", "float64", 3, 2, 3, 1.0, 3.0, 2.0)  # NaN: null
    assert stats["n"] == FeatureStats("n", "int32", 4, 1, 3, 1.0, 4.0, 2.75)
    assert stats["flag"] == FeatureStats("flag", "bool", 4, 1, 2, 0.0, 1.0, 0.75)
    assert stats["label"] == FeatureStats("label", "string", 4, 1, 3, "a", "c", None)
    assert stats["const"] == FeatureStats("const", "float64", 5, 0, 1, 7.0, 7.0, 7.0)


def test_histograms(preview: Any) -> None:
    amount, n = preview.histograms["amount"], preview.histograms["n"]
    assert amount.edges == (1.0, 1.5, 2.0, 2.5, 3.0)
    assert amount.counts == (1, 0, 1, 1)
    assert n.counts == (1, 1, 0, 2)
    assert n.edges[0] == 1.0 and n.edges[-1] == 4.0
    assert preview.histograms["const"].counts == (5,)
    for name, histogram in preview.histograms.items():
        assert sum(histogram.counts) == preview.stats[name].count
        assert len(histogram.edges) == len(histogram.counts) + 1
    assert "label" not in preview.histograms and "flag" not in preview.histograms


def test_sample_is_ordered_by_entity_and_time(preview: Any) -> None:
    sample = preview.sample
    assert len(sample) == 3
    assert list(zip(sample.user_id, sample.ts, strict=True)) == [
        ("u1", T0),
        ("u1", T0 + DAY),
        ("u2", T0),
    ]


def test_stats_dict_is_json_and_compares_with_itself(preview: Any) -> None:
    from nbfeatures.engine.spark.preview import Preview

    stored = json.loads(json.dumps(preview.stats_dict()))
    assert stored["row_count"] == 5 and stored["entity_count"] == 3
    assert stored["stats"]["amount"]["mean"] == 2.0
    assert stored["histograms"]["n"]["counts"] == [1, 1, 0, 2]
    assert stored["event_time_min"] == T0.isoformat()
    assert {r["change"] for r in Preview.compare(stored, preview.stats_dict())} == {"same"}


def test_a_cached_input_stays_cached(spark: Any) -> None:
    from nbfeatures.engine.spark.preview import compute_preview

    frame = spark.createDataFrame(ROWS, SCHEMA).cache()
    try:
        assert compute_preview(frame, FAMILY, rows=1).row_count == 5
        assert frame.storageLevel.useMemory
    finally:
        frame.unpersist()


def test_empty_result(spark: Any) -> None:
    from nbfeatures.engine.spark.preview import compute_preview

    preview = compute_preview(spark.createDataFrame([], SCHEMA), FAMILY)
    assert (preview.row_count, preview.entity_count, preview.event_time_min) == (0, 0, None)
    assert preview.stats["amount"].mean is None and preview.histograms == {}
    assert len(preview.sample) == 0


def test_errors_while_running_become_transformation_errors(spark: Any) -> None:
    from nbfeatures.engine.spark.preview import compute_preview

    frame = spark.sql(
        "SELECT 'u1' AS user_id, TIMESTAMP'2024-01-01 00:00:00' AS ts, CAST(x AS INT) AS v "
        "FROM VALUES ('abc') AS t(x)"
    )
    with pytest.raises(TransformationError, match="abc") as raised:
        compute_preview(frame, _family(("v", FeatureType.INT32)))
    assert raised.value.family == "known"
    assert not frame.storageLevel.useMemory
