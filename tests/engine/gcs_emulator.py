"""Runs ``gcp-storage-emulator`` with GCS's error body on a missing object.

The emulator answers a metadata request for a missing object with an empty 404. GCS answers
with a JSON error whose reason is ``notFound``, and Google's Hadoop connector (Spark's
``gs://``) reads that reason to tell "absent" from "failed": on an empty body every probe of
a path that does not exist yet (Spark probes many before writing) fails the write. This
launcher gives empty 404s that body, as the real service does; nothing else changes.

Usage: ``python gcs_emulator.py start --host H --port P --in-memory`` (the emulator's CLI).
"""

from __future__ import annotations

import json
import sys
from http import HTTPStatus
from typing import Any

from gcp_storage_emulator import server
from gcp_storage_emulator.__main__ import main

NOT_FOUND = {
    "error": {
        "code": 404,
        "message": "Not Found",
        "errors": [{"domain": "global", "reason": "notFound", "message": "Not Found"}],
    }
}
_close = server.Response.close


def _close_with_error_body(self: Any) -> None:
    if self.status == HTTPStatus.NOT_FOUND and not self._content:
        self["Content-type"] = "application/json"
        self._content = json.dumps(NOT_FOUND)
    _close(self)


server.Response.close = _close_with_error_body

if __name__ == "__main__":
    sys.exit(main())
