"""The panel's HTTP handlers: authenticated, XSRF-checked jupyter_server handlers that
translate requests into ``reads`` calls and our errors into JSON ``{"message"}`` replies.

The blocking work (MLflow, Redis, a job's start) runs in a worker thread so the server's
event loop keeps serving notebooks meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler, JupyterHandler

from nbfeatures.errors import (
    DefinitionError,
    FeatureNotFound,
    InvalidInput,
    NbfeaturesError,
    PromotionInProgress,
    ReportNotFound,
    ReviewRefused,
)
from nbfeatures.jupyter import reads, reports

if TYPE_CHECKING:
    from nbfeatures.jupyter.panel import Panel

T = TypeVar("T")


def status_of(exc: BaseException) -> int:
    """The HTTP status an error is answered with."""
    if isinstance(exc, InvalidInput | DefinitionError | ReviewRefused):
        return 400
    if isinstance(exc, FeatureNotFound | ReportNotFound):
        return 404
    if isinstance(exc, PromotionInProgress):
        return 409
    return 500


class PanelHandler(APIHandler):
    """Base of the JSON handlers: the panel's state, a JSON body, errors as ``{"message"}``."""

    @property
    def panel(self) -> Panel:
        panel: Panel = self.settings["nbfeatures_panel"]
        return panel

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread (it blocks on MLflow or Redis)."""
        return await asyncio.to_thread(fn, *args)

    def body(self) -> dict[str, Any]:
        """The request's JSON object (an empty body is ``{}``)."""
        raw = self.request.body.decode("utf-8", "replace").strip()
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InvalidInput("body", f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidInput("body", "must be a JSON object")
        return data

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    async def answer(self, call: Awaitable[Any], status: int = 200) -> None:
        """Reply with what ``call`` returns, or with the error it raised as a message."""
        try:
            data = await call
        except NbfeaturesError as exc:
            code = status_of(exc)
            if code == 500:
                self.log.error("nbfeatures panel: %s", exc)
            self.reply({"message": str(exc)}, code)
            return
        except ModuleNotFoundError as exc:
            self.log.error("nbfeatures panel: %s", exc)
            self.reply({"message": f"{exc}; is nbfeatures installed with its extras?"}, 500)
            return
        except Exception as exc:
            # Anything else is a bug or a part failing in a way we did not foresee: the panel
            # still gets a message saying what failed, and the log keeps the traceback.
            self.log.exception(
                "nbfeatures panel: %s %s failed", self.request.method, self.request.path
            )
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.reply({"message": f"{type(exc).__name__}: {text}".rstrip(": ")}, 500)
            return
        self.reply(data, status)


class FamiliesHandler(PanelHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        text, owner, tag = (self.get_argument(k, None) for k in ("q", "owner", "tag"))
        await self.answer(self.run(reads.list_families, self.panel, text, owner, tag))


class FamilyHandler(PanelHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        await self.answer(self.run(reads.family_detail, self.panel, name))


class PromoteHandler(PanelHandler):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        await self.answer(self._start(name), 202)

    async def _start(self, name: str) -> dict[str, Any]:
        job = await self.run(reads.start_promotion, self.panel, name, self.body())
        return {"job": job}


class RollbackHandler(PanelHandler):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        await self.answer(self._start(name), 202)

    async def _start(self, name: str) -> dict[str, Any]:
        return {"job": await self.run(reads.start_rollback, self.panel, name)}


class DeprecateHandler(PanelHandler):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        await self.answer(self._deprecate(name))

    async def _deprecate(self, name: str) -> dict[str, Any]:
        return await self.run(reads.deprecate, self.panel, name, self.body())


class JobHandler(PanelHandler):
    @tornado.web.authenticated
    async def get(self, job_id: str) -> None:
        job = self.panel.jobs.get(job_id)
        if job is None:  # jobs live as long as the server that ran them
            self.reply({"message": f"no job {job_id} in this Jupyter server"}, 404)
            return
        self.reply(job)


class ReportsHandler(PanelHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        family, kind, status = (
            self.get_argument(k, None) or None for k in ("family", "kind", "status")
        )
        await self.answer(self._list(family, kind, status))

    async def _list(self, family: str | None, kind: str | None, status: str | None) -> Any:
        found = await self.run(reports.list_reports, self.panel.reports, family, kind, status)
        return {"reports": found}


class ReportHandler(PanelHandler):
    @tornado.web.authenticated
    async def get(self, report_id: str) -> None:
        await self.answer(self._get(report_id))

    async def _get(self, report_id: str) -> dict[str, Any]:
        return await self.run(reports.get_report, self.panel.reports, report_id)


class ReviewHandler(PanelHandler):
    @tornado.web.authenticated
    async def post(self, report_id: str) -> None:
        await self.answer(self._review(report_id))

    async def _review(self, report_id: str) -> Any:
        comment = self.body().get("comment", "")
        user = self.current_user
        reviewer = getattr(user, "name", None) or getattr(user, "username", None) or "jupyter"
        store = self.panel.reports
        return await self.run(reports.review_report, store, report_id, reviewer, comment)


class ReportPageHandler(JupyterHandler):
    """The Evidently page of a report, as HTML for an iframe in JupyterLab's main area.

    A plain (not API) handler, so the page's own scripts may run; like Jupyter's file
    handler, the policy sandboxes them into a unique origin that cannot call the server.
    """

    @property
    def content_security_policy(self) -> str:
        return str(super().content_security_policy) + "; sandbox allow-scripts"

    def get_login_url(self) -> str:
        # Part of the API: without credentials it is refused (403), as API routes are,
        # rather than redirected to the login page.
        raise tornado.web.HTTPError(403)

    @tornado.web.authenticated
    async def get(self, report_id: str) -> None:
        panel: Panel = self.settings["nbfeatures_panel"]
        try:
            page = await asyncio.to_thread(reports.report_page, panel.reports, report_id)
        except NbfeaturesError as exc:
            self.set_status(status_of(exc))
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(str(exc))
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page)
