"""What a promotion returns and reports, and the options that tune it.

Plain frozen dataclasses: no Spark, MLflow or Redis is imported here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: The template's steps, in order; each is one tagged cell of ``templates/promote.ipynb``.
STEPS = ("load", "compute", "materialize", "verify", "flip", "record")

#: The MLflow experiment that holds one run per promotion and rollback.
PROMOTION_EXPERIMENT = "nbfeatures-promotions"


@dataclass(frozen=True)
class PromotionOptions:
    """How a promotion runs; the defaults suit production, tests shorten the waits.

    ``lock_ttl``: seconds a holder keeps the family lock without renewing it (a killed
    promotion blocks the next one at most this long). ``lock_wait``: seconds to wait for a
    busy lock before ``PromotionInProgress``. ``grace``: how long a keyspace that stopped
    being live is kept before ``cleanup`` may delete it. ``sample_size``: entities whose
    online values verification compares with the offline ones. ``start``/``end``: the
    event-time range to compute (default: everything the sources hold). ``engine``: which
    writer materializes (``auto``: the Arrow writer for local Spark, the executors otherwise).
    ``recompute``: compute the offline set even when a current one can be reused
    (``promotion.reuse``). ``restore``: put the catalog's production version back into the
    online store after data loss, from its offline set, leaving the alias as it is.
    """

    lock_ttl: float = 60.0
    lock_wait: float = 0.0
    grace: dt.timedelta = dt.timedelta(hours=24)
    sample_size: int = 100
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    kernel_name: str = "python3"
    #: The materialization writer: ``auto``, ``arrow`` or ``spark`` (``materialization``).
    engine: str = "auto"
    #: Accept an empty or mostly-expired keyspace (its data older than the family's ttl),
    #: which verification refuses otherwise.
    allow_expired: bool = False
    recompute: bool = False
    restore: bool = False


@dataclass(frozen=True)
class StepEvent:
    """One step starting (``seconds`` is None) or ending (``ok`` says how)."""

    step: str
    index: int
    total: int
    seconds: float | None = None
    ok: bool = True

    def line(self) -> str:
        """``step 3/6 materialize: 12.3 s`` (or ``started`` / ``failed after``)."""
        head = f"step {self.index}/{self.total} {self.step}"
        if self.seconds is None:
            return f"{head}: started"
        return (
            f"{head}: {self.seconds:.1f} s"
            if self.ok
            else f"{head}: failed after {self.seconds:.1f} s"
        )


ProgressCallback = Callable[[StepEvent], None]


@dataclass(frozen=True)
class PromotionRecord:
    """A finished promotion: what went live, what it replaced, and where it is recorded."""

    family: str
    version: int
    previous: int | None
    run_id: str
    notebook: str
    started_at: dt.datetime
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)

    def keyspace_line(self) -> str:
        """What the new version serves: ``entities online 20, newest event time ..., expired
        share 0%`` (from the verify step), or ``""`` when it did not run."""
        found = self.results.get("verify") or {}
        if "entities_online" not in found:
            return ""
        share = found.get("expired_share") or 0.0
        return (
            f"entities online {found['entities_online']}, newest event time "
            f"{found.get('newest_event_time') or '-'}, expired share {share:.0%}"
        )
