"""The panel's API is guarded like every Jupyter endpoint: no token, no answer; a cookie-
authenticated POST must carry the XSRF token as well."""

from __future__ import annotations

import pytest
from jupyter_server.serverapp import ServerApp
from panel_api import NO_TOKEN, Fetch, api, browser_session

pytestmark = pytest.mark.integration


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


async def test_a_cookie_session_may_read_but_must_send_xsrf_to_post(
    jp_fetch: Fetch, jp_serverapp: ServerApp
) -> None:
    session = await browser_session(jp_fetch, jp_serverapp)

    status, reply = await api(jp_fetch, "families", headers=session.headers())
    assert status == 200 and isinstance(reply["families"], list)

    path = ("families", "no_family", "deprecate")
    body = {"reason": "old"}
    refused, _ = await api(jp_fetch, *path, method="POST", body=body, headers=session.headers())
    assert refused == 403
    headers = session.headers(xsrf=True)
    status, reply = await api(jp_fetch, *path, method="POST", body=body, headers=headers)
    # Past the XSRF check, the handler itself answers: there is no such family.
    assert status == 404 and reply["message"] == "feature family no_family not found"
