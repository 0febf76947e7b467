"""Fixtures of the monitoring tests."""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from runner_fixtures import promoted_workspace  # noqa: E402, F401
from servers import redis_server  # noqa: E402, F401  (the session fixture)
