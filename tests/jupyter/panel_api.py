"""Calling the panel's API from tests: JSON in, ``(status, JSON)`` out."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from jupyter_server.serverapp import ServerApp
from tornado.httpclient import HTTPResponse

Fetch = Callable[..., Awaitable[HTTPResponse]]
#: Overrides the token header jp_fetch adds: the request carries no credentials.
NO_TOKEN = {"Authorization": ""}


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


@dataclass(frozen=True)
class BrowserSession:
    """The cookies a browser holds after logging in to Jupyter (one user for all calls)."""

    cookies: dict[str, str]

    def headers(self, xsrf: bool = False) -> dict[str, str]:
        """Cookie headers without a token; with ``xsrf`` the header a POST must carry too."""
        jar = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        found = {**NO_TOKEN, "Cookie": jar}
        return {**found, "X-XSRFToken": self.cookies["_xsrf"]} if xsrf else found


def _cookies(response: HTTPResponse) -> dict[str, str]:
    found = {}
    for header in response.headers.get_list("Set-Cookie"):
        name, _, rest = header.partition("=")
        found[name] = rest.split(";", 1)[0]
    return found


async def browser_session(fetch: Fetch, serverapp: ServerApp) -> BrowserSession:
    """Log in through Jupyter's login form with the server's token, as a browser does."""
    page = await fetch("login", headers=dict(NO_TOKEN))
    cookies = _cookies(page)
    form = {"password": serverapp.identity_provider.token, "_xsrf": cookies["_xsrf"]}
    done = await fetch(
        "login",
        method="POST",
        body=urllib.parse.urlencode(form),
        headers={**NO_TOKEN, "Cookie": f"_xsrf={cookies['_xsrf']}"},
        follow_redirects=False,
        raise_error=False,
    )
    assert done.code == 302, done.body
    cookies.update(_cookies(done))
    assert any(name.startswith("username-") for name in cookies), cookies
    return BrowserSession(cookies)
