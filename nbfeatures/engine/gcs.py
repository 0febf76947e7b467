"""Files of the offline store: the local disk or ``gs://``, through pyarrow or Spark's connector.

Manifests, source snapshots and the in-process join go through pyarrow (``GcsFileSystem`` for
``gs://``, the local filesystem otherwise: one code path for both). The rows themselves are
written and read by Spark when Spark can reach them: always for local paths, and for
``gs://`` when ``settings.gcs_connector`` says Spark has Google's Hadoop GCS connector (a
cluster that ships it, or a local session, which loads the connector jar that the
``pyspark-gcs`` package carries: ``connector_jar``). Without the connector, ``gs://`` rows
pass through the driver as Arrow and pyarrow writes them.

Given an emulator's URL (``settings.gcs_emulator``, which ``load_settings`` fills from
``STORAGE_EMULATOR_HOST``: tests, local development) both talk to that emulator anonymously
over plain HTTP; otherwise they use the machine's Google credentials.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nbfeatures._deps import require

GCS_SCHEME = "gs://"
# The emulator's project: GCS needs one to create buckets, the emulator accepts any.
_EMULATOR_PROJECT = "nbfeatures-test"
CONNECTOR_JAR = "gcs-connector-hadoop3-2.2.6-shaded.jar"


def is_gcs(uri: str) -> bool:
    """True for ``gs://bucket/prefix`` locations."""
    return uri.startswith(GCS_SCHEME)


def gcs_filesystem(emulator: str | None) -> Any:
    """A ``pyarrow.fs.GcsFileSystem``, pointed at ``emulator`` when one is given."""
    pafs = require("pyarrow.fs", "gcs")
    if emulator:
        scheme, _, host = emulator.rpartition("://")
        return pafs.GcsFileSystem(
            anonymous=True,
            endpoint_override=host,
            scheme=scheme or "http",
            project_id=_EMULATOR_PROJECT,
        )
    return pafs.GcsFileSystem()


def arrow_filesystem(uri: str, *, emulator: str | None) -> tuple[Any, str]:
    """The pyarrow filesystem for ``uri`` and the path inside it (``bucket/prefix`` for GCS);
    ``gs://`` through ``emulator`` if given (``settings.gcs_emulator``)."""
    if is_gcs(uri):
        return gcs_filesystem(emulator), uri[len(GCS_SCHEME) :].rstrip("/")
    pafs = require("pyarrow.fs", "gcs")
    local = uri[len("file://") :] if uri.startswith("file://") else uri
    return pafs.LocalFileSystem(), os.path.abspath(local)


def join(root: str, *parts: str) -> str:
    """Join path parts with ``/`` (also right for ``gs://`` URIs, unlike ``os.path.join``)."""
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])


def connector_jar() -> str | None:
    """The GCS connector jar the ``pyspark-gcs`` package ships, if it is installed."""
    try:
        import pyspark_gcs
    except ImportError:
        return None
    jar = Path(pyspark_gcs.__file__).parent / "jars" / CONNECTOR_JAR
    return str(jar) if jar.is_file() else None


def connector_conf(emulator: str | None) -> dict[str, str]:
    """Hadoop settings for Google's GCS connector (2.x), pointed at ``emulator`` if given."""
    conf = {
        "fs.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem",
        "fs.AbstractFileSystem.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFS",
        # Hadoop 3.4+ ships defaults for its own gs:// client written with units ("64m");
        # connector 2.x reads these keys as plain numbers and fails on them.
        "fs.gs.block.size": str(64 << 20),
        "fs.gs.rewrite.max.chunk.size": str(512 << 20),
        "fs.gs.outputstream.buffer.size": str(8 << 20),
        "fs.gs.inputstream.inplace.seek.limit": str(8 << 20),
        "fs.gs.inputstream.min.range.request.size": str(2 << 20),
    }
    if emulator:
        conf.update(
            {
                "fs.gs.storage.root.url": emulator.rstrip("/") + "/",
                "fs.gs.auth.service.account.enable": "false",
                "fs.gs.auth.null.enable": "true",
                "fs.gs.project.id": _EMULATOR_PROJECT,
            }
        )
    return conf
