"""Calling the panel's API from tests: JSON in, ``(status, JSON)`` out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from tornado.httpclient import HTTPResponse

Fetch = Callable[..., Awaitable[HTTPResponse]]


async def api(
    fetch: Fetch, *path: str, method: str = "GET", body: Any = None, **kwargs: Any
) -> tuple[int, Any]:
    """``(status, JSON reply)`` of a panel API call; never raises for an error status."""
    if body is not None:
        kwargs["body"] = json.dumps(body)
    elif method == "POST":
        kwargs["body"] = ""
    # A first call creates the workspace's MLflow database, which takes a while on a busy
    # machine: a generous limit, so only a hang fails.
    kwargs.setdefault("request_timeout", 300)
    response = await fetch("nbfeatures", "api", *path, method=method, raise_error=False, **kwargs)
    text = response.body.decode() if response.body else ""
    if "json" not in response.headers.get("Content-Type", ""):
        return response.code, text  # an HTML page, or Jupyter's own error page
    return response.code, json.loads(text) if text else None


async def finished_job(fetch: Fetch, job_id: str, polls: int = 900) -> dict[str, Any]:
    """Poll ``jobs/ID`` as the panel does until the job is no longer running."""
    for _ in range(polls):
        status, job = await api(fetch, "jobs", job_id)
        assert status == 200, job
        if job["state"] != "running":
            return dict(job)
        await asyncio.sleep(1)  # polling for the end, not asserting on time
    raise AssertionError(f"job {job_id} still running after {polls} polls: {job}")
