"""The quickstart notebook, end to end, in a real Jupyter kernel driven by papermill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nbfeatures.config import load_settings

pytestmark = pytest.mark.integration

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"
KERNEL = "python3"


def _html_outputs(notebook: Any) -> list[str]:
    return [
        str(output.get("data", {}).get("text/html", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]


def test_quickstart_runs_end_to_end(tmp_path: Path) -> None:
    import papermill

    workspace = tmp_path / "workspace"
    # "python3" launches the interpreter running the tests (jupyter_client swaps in
    # sys.executable), so the kernel imports this checkout's nbfeatures.
    executed = papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "quickstart.out.ipynb"),
        parameters={"workspace": str(workspace)},
        kernel_name=KERNEL,
        cwd=str(tmp_path),
        progress_bar=False,
    )

    pages = "\n".join(_html_outputs(executed))
    assert "Feature statistics" in pages  # the preview rendered as HTML, not only a widget
    assert "Registered user_spend v1" in pages
    assert "Changes vs v1" in pages and "max_amount" in pages
    assert "Registered user_spend v2" in pages
    assert "Registered user_countries v1" in pages
    # The training set: three rows with user_spend values, the last beyond the ttl.
    assert "user_spend__spend" in pages and "label" in pages
    printed = "".join(
        str(output.get("text", ""))
        for cell in executed.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "user_spend v2:" in printed and "50 entities" in printed
    # Promoted, then read over gRPC: two users found, an unknown one NOT_FOUND.
    assert "step 4/6 verify:" in printed and "user_spend v2 is live" in printed
    served = "".join(
        str(output.get("data", {}).get("text/plain", ""))
        for cell in executed.cells
        if cell.cell_type == "code" and "get_online_features" in cell.source
        for output in cell.get("outputs", [])
    )
    assert served.count("PRESENT") == 2 and served.count("NOT_FOUND") == 1
    # The served vectors were logged and the reports on user_spend saved.
    assert "user_spend: 3 of 3 reports saved" in printed
    assert "user_spend v2 freshness: " in printed and "user_spend v2 skew: " in printed

    from nbfeatures.catalog import Catalog

    catalog = Catalog.from_settings(load_settings(workspace, environ={}))
    names = {summary.name: summary for summary in catalog.list()}
    assert names["user_spend"].latest_version == 2
    assert names["user_countries"].latest_version == 1
    assert {"txn_count", "spend", "max_amount"} <= set(names["user_spend"].features)

    from nbfeatures.monitoring.store import ReportStore

    reports = ReportStore.from_settings(load_settings(workspace, environ={})).latest("user_spend")
    assert set(reports) == {"drift", "skew", "freshness"}
