"""``Preview.compare`` on stored statistics, without Spark."""

from __future__ import annotations

from typing import Any

from nbfeatures.engine.spark.preview import Preview


def _stats(**features: tuple[str, int, int, float | None]) -> dict[str, Any]:
    return {
        "row_count": 10,
        "stats": {
            name: {
                "name": name,
                "dtype": dtype,
                "count": count,
                "nulls": nulls,
                "distinct": count,
                "min": 0.0,
                "max": 1.0,
                "mean": mean,
            }
            for name, (dtype, count, nulls, mean) in features.items()
        },
    }


def test_compare_marks_added_removed_type_changed_and_same() -> None:
    old = _stats(
        spend=("float64", 10, 0, 5.0), txn=("int32", 9, 1, 2.0), gone=("string", 10, 0, None)
    )
    new = _stats(spend=("float64", 8, 2, 6.0), txn=("int64", 9, 1, 2.0), fresh=("bool", 10, 0, 0.5))
    rows = Preview.compare(old, new)
    assert [(r["feature"], r["change"]) for r in rows] == [
        ("spend", "same"),
        ("txn", "type changed"),
        ("fresh", "added"),
        ("gone", "removed"),
    ]
    spend = rows[0]
    assert (spend["old_count"], spend["new_count"]) == (10, 8)
    assert (spend["old_nulls"], spend["new_nulls"]) == (0, 2)
    assert (spend["old_mean"], spend["new_mean"]) == (5.0, 6.0)
    assert (rows[1]["old_type"], rows[1]["new_type"]) == ("int32", "int64")
    assert rows[2]["old_type"] is None and rows[2]["new_count"] == 10
    assert rows[3]["new_type"] is None and rows[3]["old_type"] == "string"
    assert set(spend) == {
        "feature", "change", "old_type", "new_type", "old_count", "new_count", "old_nulls",
        "new_nulls", "old_mean", "new_mean", "old_min", "new_min", "old_max", "new_max",
    }  # fmt: skip


def test_compare_without_a_previous_version_adds_everything() -> None:
    rows = Preview.compare(None, _stats(spend=("float64", 10, 0, 5.0)))
    assert [(r["feature"], r["change"], r["old_count"]) for r in rows] == [("spend", "added", None)]
