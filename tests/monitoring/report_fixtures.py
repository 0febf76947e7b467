"""Fixtures of the report-store tests: a real MLflow workspace, reports built from summaries,
and a real HTTP server that records what the alert webhook sends.

Reports here are made directly from ``ReportSummary`` values and a small HTML page: that is
the store's input contract, so these tests need neither Evidently nor served logs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nbfeatures.config import Settings, load_settings
from nbfeatures.monitoring.summary import FeatureCheck, ReportResult, ReportSummary, Status

PAGE = "<html><body><h1>{family} {kind}</h1><p>a small report page</p></body></html>"


@pytest.fixture(scope="session")
def report_workspace(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One workspace (SQLite MLflow) for the run; tests keep apart by unique family names."""
    root = tmp_path_factory.mktemp("reports-workspace")
    return load_settings(root, environ={}, owner="tests")


def with_monitoring(settings: Settings, **monitoring: Any) -> Settings:
    """The same workspace with a ``monitoring:`` mapping (report_root, webhook...)."""
    return dataclasses.replace(settings, monitoring=monitoring or None)


def unique_family(stem: str = "fam") -> str:
    return f"{stem}_{uuid.uuid4().hex[:10]}"


def make_summary(
    family: str,
    kind: str = "drift",
    status: Status = Status.OK,
    version: int | None = 1,
    notes: tuple[str, ...] = ("window sampled: 1,000 of 5,000 vectors",),
) -> ReportSummary:
    """A summary with one check per verdict, as a drift report would write it."""
    end = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    return ReportSummary(
        kind=kind,
        family=family,
        version=version,
        status=status,
        created_at=end,
        window_start=end - dt.timedelta(days=1),
        window_end=end,
        rows=1000,
        rows_total=5000,
        checks=(
            FeatureCheck("spend", status, "psi", 0.31 if status is Status.ALERT else 0.02, 0.2),
            FeatureCheck("txn_count", Status.OK, "psi", 0.01, 0.2, {"null_share": 0.0}),
        ),
        notes=notes,
    )


@pytest.fixture
def make_result(tmp_path: Path) -> Callable[..., ReportResult]:
    """``make_result(family, kind=..., status=..., version=...)``: a summary and its page."""

    def build(
        family: str, kind: str = "drift", status: Status = Status.OK, **kw: Any
    ) -> ReportResult:
        page = tmp_path / f"{family}-{kind}-{uuid.uuid4().hex[:6]}.html"
        page.write_text(PAGE.format(family=family, kind=kind))
        return ReportResult(make_summary(family, kind, status, **kw), page)

    return build


@dataclass
class Receiver:
    """A real HTTP server on loopback; it records each POST and answers from ``answers``."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # status codes to give next; then 200

    def clear(self) -> None:
        self.requests.clear()
        self.answers.clear()


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            state.requests.append(
                {
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "json": json.loads(body),
                }
            )
            code = state.answers.pop(0) if state.answers else 200
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep test output quiet

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/nbf"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
