"""One Spark session per process (the notebook kernel, a test session, a promotion run).

Local mode by default, sized for the machine; a Spark Connect cluster when ``spark_master``
is ``sc://host:port``. The session is started once and reused: starting Spark costs seconds.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.config import Settings
from nbfeatures.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_lock = threading.Lock()
_session: SparkSession | None = None
_session_key: tuple[str, str, bool] | None = None


def check_java() -> None:
    """Fail early, and clearly, when local Spark has no Java 17+ to run on."""
    # JAVA_HOME, not a setting: Spark's launcher (spark-class) reads it from the environment,
    # so the check looks where Spark will.
    java = shutil.which("java", path=os.path.join(os.environ.get("JAVA_HOME", ""), "bin"))
    java = java or shutil.which("java")
    if java is None:
        raise ConfigError("java", "Spark needs Java 17 or newer; install it (e.g. openjdk-17-jre)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    first = out.splitlines()[0] if out else ""
    try:
        major = int(first.split('"')[1].split(".")[0])
    except (IndexError, ValueError):
        return
    if major < 17:
        raise ConfigError("java", f"Spark needs Java 17 or newer; found: {first}")


def get_spark(settings: Settings) -> SparkSession:
    """The process-wide session for ``settings``; built on first use, reused after."""
    global _session, _session_key
    key = (settings.spark_master, settings.spark_driver_memory, settings.gcs_connector)
    with _lock:
        if _session is not None and _session_key == key and _is_alive(_session):
            return _session
        sql = require("pyspark.sql", "spark")
        builder = sql.SparkSession.builder.appName("nbfeatures")
        if settings.uses_spark_connect:
            builder = builder.remote(settings.spark_master)
        else:
            check_java()
            builder = (
                builder.master(settings.spark_master)
                .config("spark.driver.memory", settings.spark_driver_memory)
                # Few cores here: default 200 shuffle partitions would be 200 tiny tasks.
                .config("spark.sql.shuffle.partitions", "8")
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.ui.enabled", "false")
                # Notebooks and promotion runs show their own progress; Spark's console bar
                # would interleave with it on the kernel's stderr.
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
                .config("spark.sql.warehouse.dir", str(settings.home / "spark-warehouse"))
            )
            if settings.gcs_connector:
                builder = _with_gcs_connector(builder, settings.gcs_emulator)
        session: SparkSession = builder.getOrCreate()
        # PySpark logs every failed query with its JVM stack trace before raising; we turn
        # those errors into one clear message, so the dump would only bury it.
        logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
        if settings.uses_spark_connect:
            session.conf.set("spark.sql.session.timeZone", "UTC")
        else:
            session.sparkContext.setLogLevel("ERROR")
            # PySpark starts Python workers (UDFs, mapInArrow) with `python3` from PATH unless
            # told otherwise; from an unactivated virtual environment that interpreter lacks
            # nbfeatures and pyarrow. Local workers run on this interpreter instead.
            session.sparkContext.pythonExec = settings.spark_python or sys.executable
        _session, _session_key = session, key
        return session


def current_spark() -> SparkSession | None:
    """The process-wide session if one was started and still runs; never starts one."""
    with _lock:
        return _session if _session is not None and _is_alive(_session) else None


def _with_gcs_connector(builder: Any, emulator: str | None = None) -> Any:
    """A local session that reads and writes ``gs://`` with Google's connector jar (pointed
    at ``emulator`` if given)."""
    from nbfeatures.engine.gcs import connector_conf, connector_jar

    jar = connector_jar()
    if jar is None:
        raise ConfigError(
            "gcs_connector",
            "a local Spark session needs the GCS connector jar: pip install 'nbfeatures[gcs]' "
            "(the pyspark-gcs package ships it), or set gcs_connector: false to write gs:// "
            "through pyarrow",
        )
    builder = builder.config("spark.jars", jar)
    for key, value in connector_conf(emulator).items():
        builder = builder.config(f"spark.hadoop.{key}", value)
    return builder


def _is_alive(session: SparkSession) -> bool:
    """Cheap check that a cached session was not stopped behind our back (no Spark job)."""
    stopped = getattr(session, "is_stopped", None)
    if isinstance(stopped, bool):
        return not stopped
    context = getattr(session, "_sc", None)
    return context is not None and getattr(context, "_jsc", None) is not None


def stop_spark() -> None:
    """Stop the process-wide session, if any."""
    global _session, _session_key
    with _lock:
        if _session is not None:
            _session.stop()
        _session, _session_key = None, None


def configure_connector(spark: Any, emulator: str | None) -> None:
    """Set a local session's connector settings now, pointed at ``emulator`` if given.

    The session may have been built by settings without ``gcs_connector``, or before the
    emulator started (tests, notebooks); Hadoop reads these settings when Spark first opens
    a ``gs://`` path. The connector's jar must be on the session's classpath (loaded when a
    session is built with ``gcs_connector``). A Spark Connect cluster configures its own.
    """
    from nbfeatures.engine.gcs import connector_conf
    from nbfeatures.engine.spark.spark_api import is_connect

    if is_connect(spark):
        return
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in connector_conf(emulator).items():
        hadoop.set(key, value)
