"""The Features panel in a real JupyterLab, clicked through in headless Chromium.

The tests of this module run in order on one page, as a person would: open the panel, search,
open a family, promote it (a real promotion: papermill, a kernel with its own Spark, this
run's Redis) and see the new production version and the executed notebook, open a report (a
real Evidently page) and mark it reviewed, be refused a rollback and a deprecation with the
reason shown, deprecate for real, and find every action in the command palette. Each step
leaves a screenshot in the artifacts folder; a failing one leaves one of the page as it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import LabServer, PanelWorkspace

pytestmark = pytest.mark.integration

# Generous: a promotion starts a kernel and Spark on a shared two-core machine.
PROMOTION_LIMIT_MS = 420_000
UI_LIMIT_MS = 30_000


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


@pytest.fixture(scope="module")
def page(browser: Any, jupyter_lab: LabServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(UI_LIMIT_MS)
    page = context.new_page()
    page.goto(jupyter_lab.lab_url())
    page.wait_for_selector("#jp-main-dock-panel")
    yield page
    context.close()


@pytest.fixture(autouse=True)
def screenshot_on_failure(request: pytest.FixtureRequest, artifacts: Path) -> Iterator[None]:
    """A failing step leaves a picture of the page as it was."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed and "page" in request.fixturenames:
        shot(request.getfixturevalue("page"), artifacts, f"failed-{request.node.name}")


def shot(page: Any, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def widen_left_area(page: Any, pixels: int) -> None:
    """Drag the handle between the left area and the main area, as a person would."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + pixels, y, steps=5)
    page.mouse.up()


def test_the_panel_lists_the_catalog_with_badges(
    page: Any, artifacts: Path, panel_workspace: PanelWorkspace
) -> None:
    page.click('li[data-id="nbfeatures-panel"]')
    widen_left_area(page, 200)
    spend = page.locator(tid("nbf-family-user_spend"))
    spend.wait_for()
    assert page.locator(tid("nbf-family-merchant_names")).is_visible()
    assert spend.locator(tid("nbf-badge-owner")).inner_text() == "tests"
    assert spend.locator(tid("nbf-badge-production")).inner_text() == "not in production"
    report_badge = spend.locator(tid("nbf-badge-report")).inner_text()
    assert report_badge == ("reports warn" if panel_workspace.report_id else "no report")
    shot(page, artifacts, "01-list")


def test_search_narrows_the_list(page: Any, artifacts: Path) -> None:
    page.fill(tid("nbf-search"), "length")
    page.locator(tid("nbf-family-user_spend")).wait_for(state="detached")
    assert page.locator(tid("nbf-family-merchant_names")).is_visible()
    shot(page, artifacts, "02-search")
    page.fill(tid("nbf-search"), "spend")
    page.locator(tid("nbf-family-merchant_names")).wait_for(state="detached")
    assert page.locator(tid("nbf-family-user_spend")).is_visible()


def test_a_family_shows_versions_definition_changes_and_lineage(page: Any, artifacts: Path) -> None:
    page.click(tid("nbf-family-user_spend"))
    detail = page.locator(tid("nbf-detail"))
    detail.wait_for()
    assert page.locator(tid("nbf-detail-name")).inner_text() == "user_spend"
    assert page.locator(tid("nbf-version-1")).is_visible()
    assert page.locator(tid("nbf-version-2")).is_visible()
    definition = page.locator(tid("nbf-definition"))
    # Not in production yet: the latest version's SQL is shown, highlighted by CodeMirror.
    page.wait_for_function(
        "el => el.querySelector('span') !== null",
        arg=definition.element_handle(),
    )
    assert "upper(merchant)" in definition.inner_text()
    page.click(tid("nbf-version-1"))
    page.wait_for_function(
        "el => !el.textContent.includes('upper(')", arg=definition.element_handle()
    )
    changes = page.locator(tid("nbf-changes"))
    assert "v1 → v2" in changes.inner_text()
    assert "transactions" in page.locator(tid("nbf-lineage")).inner_text()
    shot(page, artifacts, "03-detail")


def test_promote_shows_the_new_production_version(
    page: Any, artifacts: Path, panel_workspace: PanelWorkspace
) -> None:
    from nbfeatures.catalog import Catalog

    page.select_option(tid("nbf-promote-version"), "2")
    page.click(tid("nbf-promote"))
    job = page.locator(tid("nbf-job"))
    job.wait_for()
    shot(page, artifacts, "04-promoting")
    page.wait_for_selector(
        f'{tid("nbf-job")}:not([data-state="running"])', timeout=PROMOTION_LIMIT_MS
    )
    state = job.get_attribute("data-state")
    assert state == "succeeded", page.locator(tid("nbf-job")).inner_text()
    assert "user_spend v2 is in production" in page.locator(tid("nbf-job-result")).inner_text()
    production = page.locator(tid("nbf-production-version"))
    page.wait_for_function("el => el.textContent === 'prod v2'", arg=production.element_handle())
    summaries = {s.name: s for s in Catalog.from_settings(panel_workspace.settings).list()}
    assert summaries["user_spend"].production_version == 2
    shot(page, artifacts, "05-promoted")

    # The executed promotion notebook opens in the main area.
    page.click(tid("nbf-job-notebook"))
    notebook = page.locator(".jp-NotebookPanel:visible")
    notebook.wait_for()
    notebook.locator(".jp-Cell").first.wait_for()
    current_tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.jp-mod-current")
    assert current_tab.inner_text().strip().endswith(".ipynb")
    shot(page, artifacts, "06-notebook")


def test_a_report_opens_in_the_main_area(
    page: Any, artifacts: Path, panel_workspace: PanelWorkspace
) -> None:
    report_id = panel_workspace.report_id
    page.click(tid("nbf-report-open-" + report_id))
    frame_element = page.wait_for_selector(".nbf-report-frame iframe")
    assert re.search(rf"reports/{report_id}/html$", frame_element.get_attribute("src") or "")
    frame = frame_element.content_frame()
    # The column's name is only in the page's data until Evidently's scripts draw it: seeing
    # it means they ran inside the sandboxed frame.
    frame.wait_for_function("document.body.innerText.includes('amount')")
    assert "Drift" in frame.inner_text("body")
    shot(page, artifacts, "07-report")


def test_review_marks_the_report_reviewed(
    page: Any, artifacts: Path, panel_workspace: PanelWorkspace
) -> None:
    page.click(tid("nbf-report-review-" + panel_workspace.report_id))
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill("PSI on amount explained by the v2 scaling")
    dialog.locator(".jp-mod-accept").click()
    reviewed = page.locator(tid(f"nbf-report-{panel_workspace.report_id}"))
    reviewed.locator(tid("nbf-report-reviewed")).wait_for()
    assert reviewed.locator(tid("nbf-report-reviewed")).inner_text().startswith("reviewed by")
    shot(page, artifacts, "08-reviewed")


def test_a_refused_rollback_shows_what_failed(page: Any, artifacts: Path) -> None:
    # v2 is the first version ever live: there is nothing to roll back to.
    page.click(tid("nbf-rollback"))
    page.wait_for_selector(f'{tid("nbf-job")}[data-state="failed"]')
    error = page.locator(tid("nbf-job-error")).inner_text()
    assert "rollback" in error
    assert "no previous version" in error
    assert page.locator(tid("nbf-production-version")).inner_text() == "prod v2"
    shot(page, artifacts, "08b-rollback-refused")


def test_a_refused_deprecation_names_the_field_then_a_good_one_shows(
    page: Any, artifacts: Path
) -> None:
    page.click(tid("nbf-back"))
    page.fill(tid("nbf-search"), "")
    page.click(tid("nbf-family-merchant_names"))
    page.locator(tid("nbf-detail") + '[data-family="merchant_names"]').wait_for()
    page.click(tid("nbf-deprecate"))
    # Only spaces pass the browser's `required` check; the server refuses them by name.
    page.fill(tid("nbf-deprecate-reason"), "   ")
    page.click(tid("nbf-deprecate-submit"))
    error = page.locator(tid("nbf-error"))
    error.wait_for()
    text = error.inner_text()
    assert "Deprecating merchant_names failed" in text
    assert "reason" in page.locator(tid("nbf-error-message")).inner_text()
    shot(page, artifacts, "09-error")

    page.click(tid("nbf-error-dismiss"))
    page.fill(tid("nbf-deprecate-reason"), "name lengths are computed in user_spend now")
    page.fill(tid("nbf-deprecate-replacement"), "user_spend")
    page.fill(tid("nbf-deprecate-sunset"), "2031-01-31")
    page.click(tid("nbf-deprecate-submit"))
    page.locator(tid("nbf-deprecate-form")).wait_for(state="detached")
    assert page.locator(tid("nbf-detail-status")).inner_text() == "deprecated"
    deprecation = page.locator(tid("nbf-deprecation")).inner_text()
    assert "use user_spend" in deprecation
    assert "sunset 2031-01-31" in deprecation
    assert page.locator(tid("nbf-error")).count() == 0


def test_the_palette_has_a_command_for_each_action(page: Any) -> None:
    # Focus in JupyterLab itself: keys typed while the report's frame has focus stay there.
    page.click(tid("nbf-panel") + " h2")
    page.keyboard.press("Control+Shift+C")
    palette = page.locator(".lm-CommandPalette-input")
    palette.wait_for()
    palette.fill("Features")
    labels = page.locator(".lm-CommandPalette-item .lm-CommandPalette-itemLabel").all_inner_texts()
    page.keyboard.press("Escape")
    for label in (
        "Show the Features panel",
        "Reload the feature catalog",
        "Promote a feature family",
        "Roll back a feature family",
        "Deprecate a feature family",
        "Open a monitoring report",
        "Mark a monitoring report reviewed",
    ):
        assert label in labels, labels
