"""The public surface: what ``__all__`` names exists, and importing it stays light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

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


def test_every_public_name_works_twice_in_one_process(tmp_path: Path) -> None:
    """A fresh process: ``nbfeatures.compute`` used to become the submodule after one call."""
    probe = textwrap.dedent(
        f"""
        import nbfeatures
        from nbfeatures.errors import NbfeaturesError

        for _ in range(2):
            for name in nbfeatures.__all__:
                assert getattr(nbfeatures, name) is not None, name
        settings = nbfeatures.load_settings({str(tmp_path)!r}, environ={{}}, owner="t")
        outcomes = []
        for _ in range(2):
            assert callable(nbfeatures.compute), type(nbfeatures.compute)
            try:
                nbfeatures.compute("no_such_family", settings=settings, progress=False)
            except NbfeaturesError as exc:
                outcomes.append(type(exc).__name__)
        import nbfeatures.compute  # importing the submodule again does not rebind the name
        from nbfeatures.compute import build_join_index
        assert callable(nbfeatures.compute) and callable(build_join_index)
        print(",".join(outcomes))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "FeatureNotFound,FeatureNotFound"


def test_serving_and_client_load_no_spark_mlflow_ipython_or_pandas() -> None:
    """A serving container installs ``nbfeatures[serving]``: the server's modules must not
    need the batch, catalog or notebook stacks, nor pandas (every request would pay for it)."""
    modules = (
        "nbfeatures.serving",
        "nbfeatures.serving.factory",
        "nbfeatures.serving.server",
        "nbfeatures.serving.native",
        "nbfeatures.serving.lookup",
        "nbfeatures.serving.main",
        "nbfeatures.client",
    )
    probe = (
        f"import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        f"    importlib.import_module(name)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    roots = set(json.loads(loaded))
    assert {"nbfeatures", "grpc"} <= roots  # the probe really imported the server
    assert roots & {"pyspark", "mlflow", "IPython", "pandas"} == set()
