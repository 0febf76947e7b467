"""The copy of each report under ``monitoring.report_root`` (a local folder or ``gs://``).

    <report_root>/<family>/<kind>/<UTC time>-<run id>/report.html
                                                      summary.json
                                                      report.ipynb   (when the run had one)

MLflow stays the record (reviews live there); the copy is for readers outside MLflow, e.g. a
bucket served to a team's browser, and sorts by time within a family and kind. Files are
written through pyarrow's filesystem, so one code path serves the disk and GCS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

from nbfeatures.engine.gcs import GCS_SCHEME, arrow_filesystem, is_gcs, join


def copy_folder(root: str, family: str, kind: str, created: dt.datetime, run_id: str) -> str:
    """Where one report's copy goes: ``<root>/<family>/<kind>/<YYYYmmddTHHMMSSZ>-<run id>``."""
    stamp = created.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return join(root, family, kind, f"{stamp}-{run_id}")


def copy_report(folder: str, files: Mapping[str, Path], emulator: str | None = None) -> str:
    """Write ``files`` (name in the copy -> local file) into ``folder``; returns its URI.
    A ``gs://`` folder is written through ``emulator`` if given (``settings.gcs_emulator``).

    Raises what the filesystem raises (OSError and pyarrow's errors); the store catches it,
    because the MLflow run is already complete by then.
    """
    fs, path = arrow_filesystem(folder, emulator=emulator)
    fs.create_dir(path, recursive=True)
    for name, local in files.items():
        with fs.open_output_stream(f"{path}/{name}") as out:
            out.write(local.read_bytes())
    return f"{GCS_SCHEME}{path}" if is_gcs(folder) else path
