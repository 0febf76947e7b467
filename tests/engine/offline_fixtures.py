"""Shared fixtures of the offline-store, point-in-time and training tests.

A real Spark Connect server (from the installed pyspark) and a real GCS emulator are started
at most once per test run, on free loopback ports, and stopped when the run ends. They are
cached in this module rather than in a conftest so that the test modules importing these
fixtures share one server each.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import free_port, stop_group, wait_for_http, wait_for_port

_servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
_BIN = Path(sys.executable).parent


def connect_url() -> str:
    """Start (once) a Spark Connect server from the installed pyspark; return its sc:// URL."""
    if "connect" in _servers:
        return _servers["connect"][1]
    import pyspark

    home = Path(pyspark.__file__).parent
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="nbf-connect-"))
    log = workdir / "server.log"
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOG_DIR": str(workdir),
        "SPARK_PID_DIR": str(workdir),
        "PYSPARK_PYTHON": sys.executable,
    }
    command = [
        str(home / "sbin" / "start-connect-server.sh"),
        "--wait",
        "--master", "local[2]",
        "--driver-memory", "1g",
        "--driver-java-options", "-Duser.timezone=UTC",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", "spark.sql.session.timeZone=UTC",
        "--conf", "spark.sql.shuffle.partitions=8",
        "--conf", "spark.ui.enabled=false",
        "--conf", f"spark.sql.warehouse.dir={workdir / 'warehouse'}",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    atexit.register(stop_group, process)
    wait_for_port(process, port, log, limit=180)
    url = f"sc://127.0.0.1:{port}"
    _servers["connect"] = (process, url)
    return url


def gcs_emulator() -> str:
    """Start (once) a real in-memory GCS emulator; return its ``http://host:port``.

    Through ``gcs_emulator.py``, which gives its missing-object answers GCS's error body
    (Spark's GCS connector needs it).
    """
    if "gcs" in _servers:
        return _servers["gcs"][1]
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="nbf-gcs-")) / "emulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("gcs_emulator.py")), "start",
             "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    atexit.register(stop_group, process)
    wait_for_port(process, port, log, limit=60)
    url = f"http://127.0.0.1:{port}"
    # The port opens a moment before the API answers; wait for a real answer.
    wait_for_http(f"{url}/storage/v1/b?project=test", process, log, limit=30)
    _servers["gcs"] = (process, url)
    return url


@pytest.fixture(scope="session")
def connect_spark() -> Iterator[Any]:
    """A Spark Connect session to a real server started for this test run."""
    # The Connect builder itself: the generic one refuses while a local session runs.
    from pyspark.sql.connect.session import SparkSession

    session = SparkSession.builder.remote(connect_url()).getOrCreate()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    yield session
    session.stop()


@pytest.fixture(scope="session", params=["local", "connect"])
def any_spark(request: pytest.FixtureRequest) -> Any:
    """The local session and the Connect session in turn: suites run on both."""
    if request.param == "local":
        return request.getfixturevalue("spark")
    return request.getfixturevalue("connect_spark")


@pytest.fixture(scope="session")
def gcs_root() -> str:
    """A ``gs://`` root on a real emulator; settings reach it with ``gcs_emulator()`` as their
    ``gcs_emulator`` (the library reads no STORAGE_EMULATOR_HOST of its own)."""
    from nbfeatures.engine.gcs import gcs_filesystem

    gcs_filesystem(gcs_emulator()).create_dir("nbf-offline-tests")
    return "gs://nbf-offline-tests/offline"
