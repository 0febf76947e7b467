"""Files of the offline store through pyarrow: the local disk, or ``gs://`` without Spark.

Spark here has no GCS connector, so every ``gs://`` read and write of the offline store goes
through ``pyarrow.fs.GcsFileSystem``. With ``STORAGE_EMULATOR_HOST`` set (tests, local
development) the filesystem talks to that emulator anonymously over plain HTTP; otherwise it
uses the machine's Google credentials. Local paths use pyarrow's local filesystem, so the
manifest and source-snapshot code is one code path for both.
"""

from __future__ import annotations

import os
from typing import Any

from nbfeatures._deps import require

GCS_SCHEME = "gs://"
EMULATOR_VARIABLE = "STORAGE_EMULATOR_HOST"
# The emulator's project: GCS needs one to create buckets, the emulator accepts any.
_EMULATOR_PROJECT = "nbfeatures-test"


def is_gcs(uri: str) -> bool:
    """True for ``gs://bucket/prefix`` locations."""
    return uri.startswith(GCS_SCHEME)


def gcs_filesystem() -> Any:
    """A ``pyarrow.fs.GcsFileSystem``, pointed at the emulator when one is configured."""
    pafs = require("pyarrow.fs", "gcs")
    emulator = os.environ.get(EMULATOR_VARIABLE)
    if emulator:
        scheme, _, host = emulator.rpartition("://")
        return pafs.GcsFileSystem(
            anonymous=True,
            endpoint_override=host,
            scheme=scheme or "http",
            project_id=_EMULATOR_PROJECT,
        )
    return pafs.GcsFileSystem()


def arrow_filesystem(uri: str) -> tuple[Any, str]:
    """The pyarrow filesystem for ``uri`` and the path inside it (``bucket/prefix`` for GCS)."""
    if is_gcs(uri):
        return gcs_filesystem(), uri[len(GCS_SCHEME) :].rstrip("/")
    pafs = require("pyarrow.fs", "gcs")
    local = uri[len("file://") :] if uri.startswith("file://") else uri
    return pafs.LocalFileSystem(), os.path.abspath(local)


def join(root: str, *parts: str) -> str:
    """Join path parts with ``/`` (also right for ``gs://`` URIs, unlike ``os.path.join``)."""
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])
