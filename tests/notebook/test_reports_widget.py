"""The reports widget built on a real report store (SQLite MLflow), clicked from Python."""

from __future__ import annotations

import datetime as dt
import html
import uuid
from pathlib import Path
from typing import Any

import pytest

from nbfeatures.config import Settings, load_settings
from nbfeatures.monitoring.store import ReportRecord, ReportStore
from nbfeatures.monitoring.summary import FeatureCheck, ReportResult, ReportSummary, Status
from nbfeatures.notebook.reports import ReportsWidget, reports_widget


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(tmp_path_factory.mktemp("reports-widget"), environ={}, owner="ana")


def _save(store: ReportStore, folder: Path, family: str, kind: str, status: Status) -> ReportRecord:
    page = folder / f"{kind}-{uuid.uuid4().hex[:6]}.html"
    page.write_text(f"<html><body><h1>{kind} of {family} & co</h1></body></html>")
    summary = ReportSummary(
        kind=kind,
        family=family,
        version=1,
        status=status,
        created_at=dt.datetime(2026, 3, 2, tzinfo=dt.UTC),
        window_start=None,
        window_end=None,
        rows=10,
        rows_total=10,
        checks=(FeatureCheck("spend", status, "psi", 0.1, 0.2),),
    )
    return store.save(ReportResult(summary, page), owner="ana")


@pytest.fixture
def family() -> str:
    return f"fam_{uuid.uuid4().hex[:10]}"


def test_the_table_lists_the_family_s_reports_with_their_state(
    workspace: Settings, family: str, tmp_path: Path
) -> None:
    store = ReportStore.from_settings(workspace)
    drift = _save(store, tmp_path, family, "drift", Status.OK)
    skew = _save(store, tmp_path, family, "skew", Status.ALERT)

    widget = ReportsWidget(store, family=family, reviewer="bo")

    assert [r.id for r in widget.records] == [skew.id, drift.id]
    assert widget.selected == skew.id  # the newest is picked
    assert skew.id in widget.table.value and drift.id in widget.table.value
    assert widget.table.value.count("pending") == 2 and ">alert<" in widget.table.value
    assert [value for _label, value in widget.choice.options] == [skew.id, drift.id]
    assert "text/html" in widget._repr_mimebundle_()


def test_show_puts_the_picked_page_inline(workspace: Settings, family: str, tmp_path: Path) -> None:
    store = ReportStore.from_settings(workspace)
    drift = _save(store, tmp_path, family, "drift", Status.OK)
    _save(store, tmp_path, family, "skew", Status.WARN)
    widget = ReportsWidget(store, family=family)

    widget.choice.value = drift.id
    widget.show_button.click()

    assert widget.page.value.startswith("<iframe srcdoc=")
    assert html.escape(f"<h1>drift of {family} & co</h1>", quote=True) in widget.page.value


def test_mark_reviewed_records_the_review_in_the_store(
    workspace: Settings, family: str, tmp_path: Path
) -> None:
    store = ReportStore.from_settings(workspace)
    skew = _save(store, tmp_path, family, "skew", Status.ALERT)
    drift = _save(store, tmp_path, family, "drift", Status.OK)
    widget = ReportsWidget(store, family=family, reviewer="bo")

    widget.choice.value = skew.id
    widget.comment.value = "value skew traced to the on-demand bug"
    widget.review_button.click()

    review = store.get(skew.id).review
    assert review is not None
    assert (review.reviewer, review.comment) == ("bo", "value skew traced to the on-demand bug")
    assert store.get(drift.id).review is None
    assert "reviewed by bo" in widget.status.value and widget.comment.value == ""
    assert widget.selected == skew.id
    widget.unreviewed.value = True  # the checkbox filters at once
    assert [r.id for r in widget.records] == [drift.id]


def test_an_empty_reviewer_shows_an_error_and_records_nothing(
    workspace: Settings, family: str, tmp_path: Path
) -> None:
    store = ReportStore.from_settings(workspace)
    record = _save(store, tmp_path, family, "freshness", Status.WARN)
    widget = ReportsWidget(store, family=family, reviewer="")

    widget.review_button.click()

    assert "nbf-error" in widget.status.value and "name is empty" in widget.status.value
    assert store.get(record.id).review is None


def test_reports_widget_reads_the_workspace_and_defaults_the_reviewer(
    workspace: Settings, family: str, tmp_path: Path
) -> None:
    record = _save(ReportStore.from_settings(workspace), tmp_path, family, "drift", Status.OK)
    widget = reports_widget(workspace, family=family)
    assert widget.reviewer.value == "ana"  # the workspace owner
    assert [r.id for r in widget.records] == [record.id]


def test_the_reports_magic_displays_the_widget_for_the_kernel_s_workspace(
    shell: Any, workspace: Settings, family: str, tmp_path: Path
) -> None:
    from IPython.utils.capture import capture_output

    from nbfeatures.notebook import configure

    record = _save(ReportStore.from_settings(workspace), tmp_path, family, "skew", Status.ALERT)
    configure(workspace)
    try:
        with capture_output() as captured:
            shell.run_line_magic("reports", family)
    finally:
        configure(None)
    shown = "\n".join(o.data.get("text/html", "") for o in captured.outputs)
    assert record.id in shown and "pending" in shown
