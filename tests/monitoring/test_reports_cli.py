"""``nbfeatures reports list|show|review`` through the real CLI entry point on a real MLflow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from report_fixtures import PAGE, unique_family

from nbfeatures import cli
from nbfeatures.config import Settings
from nbfeatures.errors import ReviewRefused
from nbfeatures.monitoring.store import ReportRecord, ReportStore
from nbfeatures.monitoring.summary import ReportResult, Status

Make = Callable[..., ReportResult]


@pytest.fixture
def saved(report_workspace: Settings, make_result: Make) -> tuple[str, list[ReportRecord]]:
    """Three reports on a fresh family: drift ok, skew alert, freshness warn (newest last)."""
    store = ReportStore.from_settings(report_workspace)
    family = unique_family()
    records = [
        store.save(make_result(family, "drift", Status.OK, version=2), owner="ana"),
        store.save(make_result(family, "skew", Status.ALERT, version=2), owner="ana"),
        store.save(make_result(family, "freshness", Status.WARN, version=2), owner="ana"),
    ]
    return family, records


def _run(settings: Settings, *argv: str) -> int:
    return cli.run(["--workspace", str(settings.workspace), "reports", *argv])


def test_list_prints_a_table_newest_first_with_filters(
    report_workspace: Settings,
    saved: tuple[str, list[ReportRecord]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    family, (drift, skew, freshness) = saved
    assert _run(report_workspace, "list", "--family", family) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "id",
        "created",
        "(UTC)",
        "family",
        "version",
        "kind",
        "status",
        "owner",
        "review",
    ]
    assert [line.split()[0] for line in lines[1:]] == [freshness.id, skew.id, drift.id]
    first = lines[1].split()
    assert first[3:] == [family, "v2", "freshness", "warn", "ana", "pending"]

    _run(report_workspace, "list", "--family", family, "--status", "alert")
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == [skew.id]
    _run(report_workspace, "list", "--family", family, "--kind", "drift", "--limit", "1")
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == [drift.id]
    _run(report_workspace, "list", "--family", unique_family("none"))
    assert capsys.readouterr().out.strip() == "no reports"


def test_review_defaults_to_user_and_unreviewed_hides_it(
    report_workspace: Settings,
    saved: tuple[str, list[ReportRecord]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    family, (drift, skew, _freshness) = saved
    monkeypatch.setenv("USER", "carol")
    assert _run(report_workspace, "review", skew.id, "--comment", "stale: refresh restarted") == 0
    out = capsys.readouterr().out
    assert f"report {skew.id} ({family} skew): reviewed by carol at " in out
    assert out.rstrip().endswith(": stale: refresh restarted")

    _run(report_workspace, "review", drift.id, "--by", "dan")
    assert "reviewed by dan" in capsys.readouterr().out
    assert ReportStore.from_settings(report_workspace).get(drift.id).review.reviewer == "dan"  # type: ignore[union-attr]

    _run(report_workspace, "list", "--family", family, "--unreviewed")
    ids = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert ids == [_freshness.id]
    _run(report_workspace, "list", "--family", family)
    reviews = {
        line.split()[0]: line.split()[-1] for line in capsys.readouterr().out.splitlines()[1:]
    }
    assert reviews[skew.id] == "carol" and reviews[_freshness.id] == "pending"


def test_review_without_a_name_is_refused(
    report_workspace: Settings,
    saved: tuple[str, list[ReportRecord]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _family, (drift, _, _) = saved
    monkeypatch.delenv("USER", raising=False)
    with pytest.raises(ReviewRefused, match="reviewer's name is empty"):
        _run(report_workspace, "review", drift.id)
    assert ReportStore.from_settings(report_workspace).get(drift.id).review is None


def test_show_prints_checks_notes_review_and_writes_the_page(
    report_workspace: Settings,
    saved: tuple[str, list[ReportRecord]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    family, (_, skew, _) = saved
    page = tmp_path / "out" / "skew.html"
    assert _run(report_workspace, "show", skew.id, "--html", str(page)) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"skew report on {family} v2: ALERT"
    assert "rows      1,000 of 5,000 (sampled)" in out
    assert "owner     ana" in out
    spend = next(line for line in out.splitlines() if line.startswith("spend"))
    assert spend.split() == ["spend", "alert", "psi", "0.31", "0.2"]
    assert "  - window sampled: 1,000 of 5,000 vectors" in out
    assert "review: not reviewed" in out
    assert page.read_text() == PAGE.format(family=family, kind="skew")


def test_an_unknown_id_is_one_line_and_exit_code_2(
    report_workspace: Settings, saved: object, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--workspace", str(report_workspace.workspace), "reports", "show", "f" * 32])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nbfeatures: report '{'f' * 32}' not found") and err.count("\n") == 1
