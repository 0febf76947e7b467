"""The preview widget: built from a real preview of a real Spark DataFrame, clicked in Python."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from nbfeatures.definitions import (
    Entity,
    Feature,
    FeatureFamily,
    FeatureType,
    Transformation,
)
from nbfeatures.errors import CatalogUnavailable

pytestmark = pytest.mark.integration

SQL = "SELECT user_id, ts, spend, txn_count FROM t"


def _family(name: str = "user_spend") -> FeatureFamily:
    return FeatureFamily(
        name=name,
        entity=Entity("user", "user_id"),
        timestamp="ts",
        features=(Feature("spend", FeatureType.FLOAT64), Feature("txn_count", FeatureType.INT64)),
        transformation=Transformation("sql", SQL),
        owner="tests",
    )


@pytest.fixture(scope="module")
def preview(spark: Any) -> Any:
    from nbfeatures.engine.spark.preview import compute_preview

    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows = [(f"u{i % 4}", start + dt.timedelta(hours=i), float(i * 10), i) for i in range(12)]
    frame = spark.createDataFrame(
        rows, "user_id string, ts timestamp, spend double, txn_count bigint"
    )
    return compute_preview(frame, _family(), rows=5, bins=4)


def _registration(family: FeatureFamily, version: int, created: bool) -> Any:
    from nbfeatures.catalog import FamilyVersion, Registration

    registered = FamilyVersion(
        family=family,
        version=version,
        hash=family.version_hash,
        status="draft",
        aliases=(),
        created_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        run_id="run",
        deprecation=None,
        stats=None,
    )
    return Registration(version=registered, created=created, previous=None, changes=())


def test_widget_shows_header_sample_schema_stats_and_histograms(preview: Any) -> None:
    from nbfeatures.notebook.widgets import PreviewWidget

    widget = PreviewWidget(preview)
    page = widget.body.value
    assert "user_spend" in page
    assert "12 rows, 4 entities" in page
    assert "2024-01-01 00:00:00" in page and "2024-01-01 11:00:00" in page
    assert "Sample (5 of 12 rows)" in page
    assert "<th>spend</th>" in page or ">spend<" in page
    assert "Feature statistics" in page
    assert page.count("<svg") == 2  # one histogram per numeric feature
    assert "Changes vs" not in page
    assert widget.button.disabled  # nothing to register with


def test_register_button_calls_back_shows_version_and_disables(preview: Any) -> None:
    from nbfeatures.notebook.widgets import PreviewWidget

    calls: list[int] = []

    def register() -> Any:
        calls.append(1)
        return _registration(preview.family, 3, created=True)

    widget = PreviewWidget(preview, on_register=register)
    assert not widget.button.disabled
    widget.button.click()
    assert calls == [1]
    assert "Registered user_spend v3" in widget.status.value
    assert widget.button.disabled
    assert widget.registration is not None and widget.registration.version.version == 3


def test_register_of_existing_content_says_already_registered(preview: Any) -> None:
    from nbfeatures.notebook.widgets import PreviewWidget

    widget = PreviewWidget(
        preview, on_register=lambda: _registration(preview.family, 2, created=False)
    )
    widget.button.click()
    assert "Already registered as user_spend v2" in widget.status.value
    assert widget.button.disabled


def test_register_failure_is_shown_in_red_and_button_stays_enabled(preview: Any) -> None:
    from nbfeatures.notebook.widgets import PreviewWidget

    def register() -> Any:
        raise CatalogUnavailable("http://127.0.0.1:9", "connection refused")

    widget = PreviewWidget(preview, on_register=register)
    widget.button.click()
    assert "nbf-error" in widget.status.value
    assert "connection refused" in widget.status.value
    assert not widget.button.disabled
    assert widget.registration is None


def test_changes_table_against_previous_version(preview: Any) -> None:
    from nbfeatures.notebook.widgets import PreviewWidget

    old = preview.stats_dict()
    # The previous version had no txn_count: drop it from the stored statistics.
    del old["stats"]["txn_count"]
    old["histograms"].pop("txn_count", None)
    widget = PreviewWidget(preview, previous_stats=old, previous_version=1)
    changes = {row["feature"]: row["change"] for row in widget.changes}
    assert changes == {"spend": "same", "txn_count": "added"}
    assert "Changes vs v1" in widget.body.value
    assert "nbf-changed" in widget.body.value  # txn_count is new in this version


def test_mimebundle_carries_html_for_saved_notebooks(preview: Any) -> None:
    from nbfeatures.notebook.widgets import PreviewWidget

    widget = PreviewWidget(
        preview, on_register=lambda: _registration(preview.family, 1, created=True)
    )
    widget.register()
    bundle = widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "Feature statistics" in bundle["text/html"]
    assert "Registered user_spend v1" in bundle["text/html"]


def _promotion(family: str, version: int) -> Any:
    from nbfeatures.promotion import PromotionRecord

    return PromotionRecord(
        family=family,
        version=version,
        previous=None,
        run_id="run",
        notebook="promote.ipynb",
        started_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        seconds=1.0,
    )


def test_promote_button_appears_after_registration_and_calls_back(preview: Any) -> None:
    from nbfeatures.notebook.widgets import PreviewWidget

    promoted: list[int] = []

    def promote(version: int) -> Any:
        promoted.append(version)
        return _promotion(preview.family.name, version)

    widget = PreviewWidget(
        preview,
        on_register=lambda: _registration(preview.family, 4, created=True),
        on_promote=promote,
    )
    assert widget.promote_button.layout.display == "none"
    assert widget.promote() is None and promoted == []  # nothing registered yet
    widget.button.click()
    assert widget.promote_button.layout.display is None
    widget.promote_button.click()
    assert promoted == [4]
    assert widget.promotion is not None and widget.promotion.version == 4
    assert "user_spend v4 is live" in widget.status.value
    assert widget.promote_button.disabled


def test_promote_failure_is_shown_and_the_button_stays_usable(preview: Any) -> None:
    from nbfeatures.errors import PromotionFailed
    from nbfeatures.notebook.widgets import PreviewWidget

    attempts: list[int] = []

    def promote(version: int) -> Any:
        attempts.append(version)
        raise PromotionFailed(
            preview.family.name, version, "verify", "2 of 20 sampled entities differ"
        )

    widget = PreviewWidget(
        preview,
        on_register=lambda: _registration(preview.family, 2, created=False),
        on_promote=promote,
    )
    widget.register()
    widget.promote_button.click()
    assert attempts == [2]
    assert "nbf-error" in widget.status.value and "differ" in widget.status.value
    assert widget.promotion is None and not widget.promote_button.disabled
    widget.promote_button.click()  # a second try reaches the callback again
    assert attempts == [2, 2]


def test_promote_button_stays_hidden_without_a_promote_callback(preview: Any) -> None:
    from nbfeatures.notebook.widgets import PreviewWidget

    widget = PreviewWidget(
        preview, on_register=lambda: _registration(preview.family, 1, created=True)
    )
    widget.register()
    assert widget.promote_button.layout.display == "none"
