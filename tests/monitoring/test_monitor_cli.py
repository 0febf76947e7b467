"""``nbfeatures monitor run``: its exit code says whether anything is in alert or failed."""

from __future__ import annotations

import pytest
from runner_fixtures import FRESH, OLD, PromotedWorkspace

from nbfeatures.cli import run
from nbfeatures.monitoring.store import ReportStore

pytestmark = pytest.mark.integration


def _count(workspace: PromotedWorkspace, family: str) -> int:
    return len(ReportStore.from_settings(workspace.settings).list(family=family, limit=1000))


def test_an_alerting_family_exits_1(
    promoted_workspace: PromotedWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    # OLD's newest event is 20 days old against a 1 hour freshness SLA.
    argv = ["--workspace", str(promoted_workspace.settings.workspace), "monitor", "run"]
    code = run([*argv, "--family", OLD, "--kind", "freshness", "--in-process"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"{OLD} v1 freshness: alert" in out
    assert "1 reports saved, 1 in alert, 0 could not run" in out


def test_an_unknown_family_exits_2_and_the_other_family_still_gets_its_report(
    promoted_workspace: PromotedWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _count(promoted_workspace, FRESH)
    argv = ["--workspace", str(promoted_workspace.settings.workspace), "monitor", "run"]
    code = run([*argv, "--family", "nope", "--family", FRESH, "--kind", "skew", "--in-process"])
    captured = capsys.readouterr()
    assert code == 2
    assert "nbfeatures: nope (all reports): FAILED: no family 'nope' in the catalog" in (
        captured.err
    )
    assert f"{FRESH}: 1 of 1 reports saved" in captured.out
    assert _count(promoted_workspace, FRESH) == before + 1


def test_all_reports_on_every_production_family(
    promoted_workspace: PromotedWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    counts = {f: _count(promoted_workspace, f) for f in (FRESH, OLD)}
    argv = ["--workspace", str(promoted_workspace.settings.workspace), "monitor", "run"]
    code = run([*argv, "--all", "--kind", "freshness", "--in-process"])
    out = capsys.readouterr().out
    assert code == 1  # OLD alerts
    assert {f: _count(promoted_workspace, f) for f in (FRESH, OLD)} == {
        f: n + 1 for f, n in counts.items()
    }
    assert "2 reports saved" in out


def test_family_and_all_are_exclusive(promoted_workspace: PromotedWorkspace) -> None:
    argv = ["--workspace", str(promoted_workspace.settings.workspace), "monitor", "run"]
    with pytest.raises(SystemExit) as stopped:
        run([*argv, "--all", "--family", FRESH])
    assert stopped.value.code == 2  # argparse's usage error
