"""The HTML building blocks, without Spark or a kernel."""

from __future__ import annotations

import datetime as dt

from nbfeatures.notebook import display


def test_table_escapes_values_and_marks_changed_rows() -> None:
    page = display.table(
        ["feature", "value"],
        [["<b>x</b>", 1.23456789], ["y", None]],
        highlight=[True, False],
    )
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<b>x</b>" not in page
    assert "1.235" in page
    assert display.MISSING in page
    assert page.count('class="nbf-changed"') == 1


def test_fmt_renders_times_floats_and_lists() -> None:
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert display.fmt(when) == "2024-01-02 03:04:05+00:00"
    assert display.fmt(float("nan")) == display.MISSING
    assert display.fmt(("a", "b")) == "a, b"
    assert display.fmt(()) == display.MISSING


def test_changes_table_pairs_old_and_new_and_marks_what_changed() -> None:
    rows = [
        {"feature": "txn_count", "change": "same", "old_mean": 1.5, "new_mean": 1.5},
        {"feature": "spend", "change": "same", "old_mean": 98.0, "new_mean": 79.0},
        {"feature": "max_amount", "change": "added", "old_mean": None, "new_mean": 9.5},
    ]
    page = display.changes_table(rows)
    assert page.count('<tr class="nbf-changed">') == 1  # only the added feature's row
    assert "98 → 79" in page  # a changed value reads old → new
    assert "1.5 → 1.5" not in page
    assert page.count('class="nbf-diff"') == 1  # spend's mean; max_amount is marked by its row
    assert "— →" not in page
    assert "<th>mean</th>" in page and "old_mean" not in page


def test_error_html_is_red_and_escaped() -> None:
    page = display.error_html("bad <thing>")
    assert "nbf-error" in page and "bad &lt;thing&gt;" in page
