"""``make demo``: run the quickstart notebook end to end on the embedded defaults.

    python -m nbfeatures.demo [WORKSPACE]

papermill executes ``notebooks/quickstart.ipynb`` with the workspace as its parameter, so
the demo is exactly the tour a reader follows; the executed notebook is kept in the
workspace, and the catalog it filled is listed at the end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from nbfeatures._deps import require
from nbfeatures.config import load_settings

QUICKSTART = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


def run(workspace: Path) -> Path:
    """Execute the quickstart into ``workspace`` and return the executed notebook's path."""
    papermill = require("papermill", "notebook")
    if not QUICKSTART.exists():
        raise SystemExit(f"{QUICKSTART} not found: run the demo from a clone of the repository")
    workspace.mkdir(parents=True, exist_ok=True)
    output = workspace / "quickstart.executed.ipynb"
    started = time.monotonic()
    print(f"running {QUICKSTART.name} into {workspace} (Spark starts first, ~10 s)", flush=True)
    papermill.execute_notebook(
        str(QUICKSTART),
        str(output),
        parameters={"workspace": str(workspace)},
        kernel_name="python3",
        progress_bar=sys.stderr.isatty(),
        cwd=str(workspace),
    )
    print(f"done in {time.monotonic() - started:.0f} s; executed notebook: {output}")
    return output


def summarize(workspace: Path) -> None:
    from nbfeatures.catalog import Catalog

    catalog = Catalog.from_settings(load_settings(workspace, environ={}))
    print("\ncatalog (MLflow, " + catalog.tracking_uri + "):")
    for family in catalog.list():
        production = f"v{family.production_version}" if family.production_version else "-"
        print(
            f"  {family.name:<16} latest v{family.latest_version}  production {production}  "
            f"owner {family.owner}  features {', '.join(family.features)}"
        )
    _summarize_reports(workspace)


def _summarize_reports(workspace: Path) -> None:
    """The reports the quickstart's last step saved, one line each."""
    from nbfeatures.monitoring.store import ReportStore

    reports = ReportStore.from_settings(load_settings(workspace, environ={})).list(limit=10)
    if not reports:
        return
    print("\nreports (MLflow experiment of the monitoring runs):")
    for report in reports:
        version = f"v{report.version}" if report.version is not None else "-"
        print(f"  {report.family:<16} {version:<4} {report.kind:<10} {report.status.value}")
    print(f"  read them: nbfeatures --workspace {workspace} reports list")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    workspace = Path(args[0] if args else "demo-workspace").resolve()
    run(workspace)
    summarize(workspace)


if __name__ == "__main__":
    main()
