"""Run the quickstart with papermill and keep its outputs in the committed notebook.

    python notebooks/save_outputs.py

The saved copy drops what a reader cannot use or what changes run to run: the live-widget
outputs (ipywidgets need a kernel; the same preview is kept as HTML), widget state,
stderr (Spark's start-up log), papermill's timings and paths, and the temporary workspace
path (shown as ``<workspace>``).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill

NOTEBOOK = Path(__file__).resolve().parent / "quickstart.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WORKSPACE = re.compile(r"/(?:[^\s/'\"]+/)*nbf-quickstart-[a-z0-9_]+")


def clean(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    notebook.metadata.pop("papermill", None)
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        for key in ("papermill", "execution"):
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                if output.name == "stderr":
                    continue
                output.text = WORKSPACE.sub("<workspace>", output.text)
            data = output.get("data")
            if data is not None:
                data.pop(WIDGET_VIEW, None)
                for mime, value in data.items():
                    if isinstance(value, str):
                        data[mime] = WORKSPACE.sub("<workspace>", value)
            outputs.append(output)
        cell.outputs = outputs
    return notebook


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "quickstart.ipynb"
        papermill.execute_notebook(str(NOTEBOOK), str(out), kernel_name="python3", cwd=scratch)
        executed = nbformat.read(out, as_version=4)
    nbformat.write(clean(executed), NOTEBOOK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
