"""run_reports and the report template: real papermill, a real kernel, reports saved in MLflow.

The families are promoted for real and their served vectors logged by a real server
(``runner_fixtures.promoted_workspace``).
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from runner_fixtures import FRESH, OLD, PromotedWorkspace

from nbfeatures.errors import ConfigError
from nbfeatures.monitoring.runner import (
    EXIT_ALERT,
    EXIT_FAILED,
    EXIT_OK,
    ReportFailure,
    RunOutcome,
    run_reports,
    template_path,
)
from nbfeatures.monitoring.store import ReportStore
from nbfeatures.monitoring.summary import Status

pytestmark = pytest.mark.integration

# The kind the runner tests run: any kind works the same for the runner.
KIND = "skew"


def _texts(notebook: nbformat.NotebookNode) -> tuple[str, str]:
    """(printed text, HTML) of a notebook's outputs."""
    printed, pages = [], []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            printed.append(str(output.get("text", "")))
            pages.append(str(output.get("data", {}).get("text/html", "")))
    return "".join(printed), "".join(pages)


def test_template_ships_in_the_package_with_its_parameters() -> None:
    notebook = nbformat.read(template_path(), as_version=4)
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    for name in ("workspace", "family", "kinds", "start", "end", "output_dir"):
        assert f"\n{name} = " in f"\n{parameters.source}"


def test_notebook_run_saves_the_report_with_its_executed_notebook(
    promoted_workspace: PromotedWorkspace,
) -> None:
    settings = promoted_workspace.settings
    lines: list[str] = []
    outcome = run_reports(settings, [FRESH], [KIND], progress=lines.append)

    assert outcome.failures == ()
    (record,) = outcome.records
    assert (record.kind, record.family, record.owner) == (KIND, FRESH, "payments-team")
    assert any(line.startswith(f"{FRESH} v1 {KIND}: ") for line in lines)
    assert lines[-1].startswith(f"{FRESH}: 1 of 1 reports saved")

    store = ReportStore.from_settings(settings)
    saved = store.get(record.id)
    assert saved.summary.rows == record.summary.rows and saved.summary.rows > 0
    executed = store.notebook(record.id)
    assert executed is not None
    printed, pages = _texts(nbformat.read(executed, as_version=4))
    assert f"{FRESH}: {KIND} {record.status.value}" in printed
    assert "nbf-report-summary" in pages and "<iframe srcdoc=" in pages
    # The run's folder keeps the machine-readable summary next to the page.
    folders = sorted((settings.home / "reports").glob(f"{FRESH}-*"))
    summary = json.loads((folders[-1] / f"{KIND}.summary.json").read_text())
    assert summary["family"] == FRESH and summary["status"] == record.status.value


def test_a_failing_kind_is_written_and_the_next_kind_still_runs(
    promoted_workspace: PromotedWorkspace, tmp_path: Path
) -> None:
    import papermill

    settings = promoted_workspace.settings
    executed = papermill.execute_notebook(
        str(template_path()),
        str(tmp_path / "out.ipynb"),
        parameters={
            "workspace": str(settings.workspace),
            "family": "no_such_family",
            "kinds": [KIND, "freshness"],
            "output_dir": str(tmp_path / "reports"),
        },
        kernel_name="python3",
        progress_bar=False,
    )
    printed, pages = _texts(executed)
    for kind in (KIND, "freshness"):
        error = (tmp_path / "reports" / f"{kind}.error.txt").read_text()
        assert "no_such_family" in error.splitlines()[0]
        assert f"{kind} could not run:" in printed
    assert "COULD NOT RUN" in pages
    assert f"no_such_family: {KIND} FAILED, freshness FAILED" in printed


def test_in_process_run_of_an_unknown_family_fails_it_and_reports_the_other(
    promoted_workspace: PromotedWorkspace,
) -> None:
    outcome = run_reports(
        promoted_workspace.settings, ["no_such_family", FRESH], [KIND], notebook=False
    )
    (failure,) = outcome.failures
    assert failure.family == "no_such_family" and failure.kind is None
    assert "no family 'no_such_family' in the catalog" in failure.reason
    assert FRESH in failure.reason  # it names the families there are
    assert [r.family for r in outcome.records] == [FRESH]
    assert outcome.exit_code == EXIT_FAILED


def test_an_unknown_kind_is_refused_before_anything_runs(
    promoted_workspace: PromotedWorkspace,
) -> None:
    store = ReportStore.from_settings(promoted_workspace.settings)
    before = len(store.list(family=OLD, limit=1000))
    with pytest.raises(ConfigError, match="'spelling' is not one of drift, skew, freshness"):
        run_reports(promoted_workspace.settings, [OLD], ["freshness", "spelling"])
    assert len(store.list(family=OLD, limit=1000)) == before


def test_exit_code_failure_outranks_alert() -> None:
    failure = ReportFailure("f", "drift", "boom")
    assert RunOutcome().exit_code == EXIT_OK and RunOutcome().status is Status.OK
    assert RunOutcome(failures=(failure,)).exit_code == EXIT_FAILED
    assert EXIT_ALERT == 1 and failure.line() == "f drift: FAILED: boom"


def test_a_notebook_that_cannot_run_fails_each_of_its_kinds(
    promoted_workspace: PromotedWorkspace,
) -> None:
    outcome = run_reports(
        promoted_workspace.settings, [FRESH], [KIND, "freshness"], kernel_name="no-such-kernel"
    )
    assert outcome.records == ()
    assert [f.kind for f in outcome.failures] == [KIND, "freshness"]
    for failure in outcome.failures:
        assert failure.reason.startswith("the report notebook stopped: ")
        assert "no-such-kernel" in failure.reason
