"""Fixtures of the monitoring tests; the GCS emulator is the engine tests' (started once)."""

from __future__ import annotations

import sys
from pathlib import Path

# The engine tests' fixture module starts the emulator at most once per run; import that
# same module (by the same name) rather than a second copy of it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

# The catalog tests' MLflow tracking server on PostgreSQL (one test runs the store on it).
from catalog.conftest import server_backend  # noqa: F401
from offline_fixtures import gcs_root  # noqa: F401
from report_fixtures import make_result, receiver, report_workspace  # noqa: F401
