"""The alert webhook: a report in alert POSTs its summary to one URL of the workspace's.

    POST <monitoring.webhook>   Content-Type: application/json
    {"family": ..., "kind": ..., "version": ..., "status": "alert",
     "report_id": <MLflow run id>, "summary": <ReportSummary.to_dict()>}

A webhook is a courtesy on top of the report, never a reason to lose it: a slow or dead
receiver is given a short timeout and one retry, and then the failure is returned as text
(the store records it on the report's run and warns) instead of raised.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from nbfeatures.monitoring.summary import ReportSummary

TIMEOUT_SECONDS = 5.0
ATTEMPTS = 2  # the first try and one retry
RETRY_PAUSE_SECONDS = 0.5


def alert_payload(summary: ReportSummary, report_id: str) -> dict[str, Any]:
    """The JSON body a receiver gets: who alerted, where to find the report, and why."""
    return {
        "family": summary.family,
        "kind": summary.kind,
        "version": summary.version,
        "status": summary.status.value,
        "report_id": report_id,
        "summary": summary.to_dict(),
    }


def post_json(
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout: float = TIMEOUT_SECONDS,
    attempts: int = ATTEMPTS,
) -> str | None:
    """POST ``payload`` to ``url``; None when a 2xx came back, else why not (never raises).

    A receiver answering 4xx refused the payload itself, so it is not asked again; network
    errors, timeouts and 5xx answers are retried once after a short pause.
    """
    body = json.dumps(dict(payload), default=str).encode()
    problem = "not attempted"
    for attempt in range(attempts):
        if attempt:
            time.sleep(RETRY_PAUSE_SECONDS)
        try:
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", "User-Agent": "nbfeatures-monitoring"},
            )
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
                return None
        except urllib.error.HTTPError as exc:
            problem = f"{url} answered {exc.code} {exc.reason}"
            if exc.code < 500:
                return problem
        except (OSError, ValueError) as exc:
            # URLError, refused connections and timeouts are OSErrors; a malformed URL a
            # ValueError. Either way the report stands and the failure is recorded.
            problem = f"{url}: {getattr(exc, 'reason', exc)}"
    return f"{problem} (after {attempts} attempts)"
