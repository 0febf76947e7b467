"""The panel's API is guarded like every Jupyter endpoint: no token, no answer; a cookie-
authenticated POST must carry the XSRF token as well."""

from __future__ import annotations

import re
import urllib.parse

import pytest
from jupyter_server.serverapp import ServerApp
from panel_api import Fetch, api

pytestmark = pytest.mark.integration

NO_TOKEN = {"Authorization": ""}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ("families",)),
        ("GET", ("families", "any_family")),
        ("POST", ("families", "any_family", "promote")),
        ("GET", ("jobs", "abc")),
        ("GET", ("reports",)),
        ("GET", ("reports", "abc", "html")),
    ],
)
async def test_without_a_token_every_route_is_403(
    jp_fetch: Fetch, method: str, path: tuple[str, ...]
) -> None:
    status, _ = await api(jp_fetch, *path, method=method, headers=dict(NO_TOKEN))
    assert status == 403


async def test_a_wrong_token_is_403(jp_fetch: Fetch) -> None:
    status, _ = await api(jp_fetch, "families", headers={"Authorization": "token wrong"})
    assert status == 403


def _cookies(response: object) -> dict[str, str]:
    found = {}
    for header in response.headers.get_list("Set-Cookie"):  # type: ignore[attr-defined]
        name, _, rest = header.partition("=")
        found[name] = rest.split(";", 1)[0]
    return found


async def _log_in(jp_fetch: Fetch, jp_serverapp: ServerApp) -> dict[str, str]:
    """Log in through Jupyter's login form, as a browser does; returns the cookies it set."""
    page = await jp_fetch("login", headers=dict(NO_TOKEN))
    cookies = _cookies(page)
    xsrf = cookies["_xsrf"]
    form = urllib.parse.urlencode(
        {"password": jp_serverapp.identity_provider.token, "_xsrf": xsrf}
    )
    done = await jp_fetch(
        "login",
        method="POST",
        body=form,
        headers={**NO_TOKEN, "Cookie": f"_xsrf={xsrf}"},
        follow_redirects=False,
        raise_error=False,
    )
    assert done.code == 302, done.body
    cookies.update(_cookies(done))
    assert any(re.match(r"username-", name) for name in cookies), cookies
    return cookies


async def test_a_cookie_session_may_read_but_must_send_xsrf_to_post(
    jp_fetch: Fetch, jp_serverapp: ServerApp
) -> None:
    cookies = _log_in(jp_fetch, jp_serverapp)
    jar = "; ".join(f"{k}={v}" for k, v in (await cookies).items())
    xsrf = dict(item.split("=", 1) for item in jar.split("; "))["_xsrf"]

    status, reply = await api(jp_fetch, "families", headers={**NO_TOKEN, "Cookie": jar})
    assert status == 200 and isinstance(reply["families"], list)

    path = ("families", "no_family", "deprecate")
    body = {"reason": "old"}
    refused, _ = await api(
        jp_fetch, *path, method="POST", body=body, headers={**NO_TOKEN, "Cookie": jar}
    )
    assert refused == 403
    headers = {**NO_TOKEN, "Cookie": jar, "X-XSRFToken": xsrf}
    status, reply = await api(jp_fetch, *path, method="POST", body=body, headers=headers)
    # Past the XSRF check, the handler itself answers: there is no such family.
    assert status == 404 and reply["message"] == "feature family no_family not found"
