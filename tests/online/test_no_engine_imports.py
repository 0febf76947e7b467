"""The online store imports no engine: materialization wires an engine to it from above."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import nbfeatures.online


def test_online_modules_load_no_engine_module() -> None:
    names = [
        m.name for m in pkgutil.walk_packages(nbfeatures.online.__path__, "nbfeatures.online.")
    ]
    assert "nbfeatures.online.arrow_writer" in names
    code = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('nbfeatures.engine'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
