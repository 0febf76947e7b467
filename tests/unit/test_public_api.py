"""The public surface: what ``__all__`` names exists, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import nbfeatures

HEAVY = (
    "pyspark",
    "mlflow",
    "grpc",
    "IPython",
    "ipywidgets",
    "jupyter_server",
    "evidently",
    "redis",
)


def test_all_names_resolve() -> None:
    missing = [name for name in nbfeatures.__all__ if not hasattr(nbfeatures, name)]
    assert missing == []


def test_import_loads_no_heavy_dependency() -> None:
    probe = (
        "import sys, nbfeatures, nbfeatures.definitions, nbfeatures.config, nbfeatures.errors;"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""
