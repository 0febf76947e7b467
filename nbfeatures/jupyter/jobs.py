"""Background jobs of the panel: promotions and rollbacks run in the server process.

A promotion takes minutes (papermill, a kernel with its own Spark), far longer than an HTTP
request may wait, so a POST starts a ``Job`` on a small thread pool and answers at once; the
panel polls the job's state and progress lines. One job per family runs at a time in this
server: a second one is refused with ``PromotionInProgress`` (409) before it starts. Other
processes (the CLI, another server) are kept out by the promotion's own lock in Redis, which
the job then reports as its error.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from nbfeatures.errors import NbfeaturesError, PromotionInProgress

log = logging.getLogger(__name__)

Action = Literal["promote", "rollback"]
State = Literal["running", "succeeded", "failed"]

#: Finished jobs kept for polling; older ones are forgotten first.
KEEP_FINISHED = 200


@dataclass
class Job:
    """One promotion or rollback and what it reported so far (read by the polling panel).

    The worker thread appends ``lines`` and sets the outcome fields; readers take
    ``to_dict()`` under the registry's lock, so they never see a half-written outcome.
    """

    id: str
    action: Action
    family: str
    version: int | None
    started_at: dt.datetime
    state: State = "running"
    ended_at: dt.datetime | None = None
    lines: list[str] = field(default_factory=list)
    error: str | None = None
    notebook: str | None = None
    production_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "family": self.family,
            "version": self.version,
            "state": self.state,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "lines": list(self.lines),
            "error": self.error,
            "notebook": self.notebook,
            "production_version": self.production_version,
        }


@dataclass(frozen=True)
class Outcome:
    """What a finished job's work returns: the version now live, the notebook to show (a
    path relative to the server root) and closing lines for the panel."""

    production_version: int | None
    notebook: str | None = None
    lines: tuple[str, ...] = ()


class JobFailed(NbfeaturesError):
    """A job's work failed, with a notebook to show: the promotion's executed one, as a
    path relative to the server root (None when there is none to open)."""

    def __init__(self, message: str, notebook: str | None) -> None:
        self.notebook = notebook
        super().__init__(message)


#: The work of a job: gets a ``report(line)`` callback, returns the outcome or raises.
Work = Callable[[Callable[[str], None]], Outcome]


class JobRegistry:
    """Starts jobs on a thread pool and keeps them, by id, for the panel to poll."""

    def __init__(self, workers: int = 2) -> None:
        # Two workers: promotions of different families may overlap, but each starts a kernel
        # with its own Spark, so more would only make them all slower on a small machine.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nbf-job")
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    def start(self, action: Action, family: str, version: int | None, work: Work) -> Job:
        """Run ``work`` in the background as a new job; refused while ``family`` has one."""
        with self._lock:
            busy = next(
                (j for j in self._jobs.values() if j.family == family and j.state == "running"),
                None,
            )
            if busy is not None:
                holder = f"job {busy.id} of this Jupyter server ({busy.action})"
                raise PromotionInProgress(family, holder, None)
            job = Job(uuid.uuid4().hex[:12], action, family, version, _now())
            job.lines.append(
                f"{action} {family}" + (f" v{version}" if version else "") + ": queued"
            )
            self._jobs[job.id] = job
            self._forget_old()
        self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job's current state as JSON-ready data, or None for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else job.to_dict()

    def shutdown(self) -> None:
        """Stop taking jobs; running ones finish (a promotion is not cut off midway)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, job: Job, work: Work) -> None:
        def report(line: str) -> None:
            with self._lock:
                job.lines.append(line)

        try:
            outcome = work(report)
        except Exception as exc:
            # Every failure becomes the job's error, shown in the panel: a worker thread has
            # nobody else to raise to.
            if not isinstance(exc, NbfeaturesError):
                log.exception("nbfeatures %s job %s of %s failed", job.action, job.id, job.family)
            with self._lock:
                job.state, job.error, job.ended_at = "failed", _message(exc), _now()
                job.notebook = exc.notebook if isinstance(exc, JobFailed) else None
            return
        with self._lock:
            job.lines.extend(outcome.lines)
            job.production_version = outcome.production_version
            if job.version is None:  # a rollback learns its version when it is done
                job.version = outcome.production_version
            job.notebook = outcome.notebook
            job.state, job.ended_at = "succeeded", _now()

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state != "running"]
        for job in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.id]


def _message(exc: BaseException) -> str:
    if isinstance(exc, NbfeaturesError):
        return str(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
