"""The Arrow engine and the modules both engines share load no Spark: a pandas spine joined
in process never starts a JVM or imports pyspark."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import nbfeatures.engine.arrow

SHARED = [
    "nbfeatures.engine.offline_store",
    "nbfeatures.engine.pit_rules",
    "nbfeatures.engine.ranges",
    "nbfeatures.engine.gcs",
    "nbfeatures.engine.port",
]


def test_the_arrow_engine_and_shared_modules_load_no_spark() -> None:
    arrow = [
        m.name
        for m in pkgutil.walk_packages(nbfeatures.engine.arrow.__path__, "nbfeatures.engine.arrow.")
    ]
    assert "nbfeatures.engine.arrow.adapter" in arrow
    code = (
        "import importlib, json, sys\n"
        f"for name in {[*arrow, *SHARED]!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "                        if m.startswith(('nbfeatures.engine.spark', 'pyspark')))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
