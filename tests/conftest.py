"""Session-wide fixtures: one real Spark session and one workspace settings per test run.

Services are started once per test session, never per test: starting Spark or MLflow costs
seconds, and CI has a time budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nbfeatures.config import Settings, load_settings


@pytest.fixture(scope="session")
def spark_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for a throwaway workspace, used by every Spark test.

    The shared session loads Google's GCS connector, so gs:// tests can run Spark's own
    reads and writes too; a workspace uses it only when its settings say ``gcs_connector``.
    """
    root: Path = tmp_path_factory.mktemp("spark-workspace")
    return load_settings(root, environ={}, owner="tests", spark_memory="2g", gcs_connector=True)


@pytest.fixture(scope="session")
def spark(spark_settings: Settings) -> Iterator[object]:
    """The real, process-wide local Spark session (started once per test run)."""
    from nbfeatures.engine.spark.session import get_spark, stop_spark

    session = get_spark(spark_settings)
    yield session
    stop_spark()
