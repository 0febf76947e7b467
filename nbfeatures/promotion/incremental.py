"""Scheduled refreshes: bring each live version's keyspace up to date, within its SLA.

``refresh`` computes the live version's offline rows from its watermark (the newest event
time already in Redis) to now, and writes only entities with newer events into the live
keyspace (``materialize(..., since=watermark)``). A family is due when its watermark is older
than half its freshness SLA (so a schedule at that interval keeps every family within its
SLA); families without an SLA are always due. It runs in the caller's process (the CLI
starts Spark in-process) under the promotion lock, so it never races a flip.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbfeatures.config import Settings


@dataclass(frozen=True)
class RefreshResult:
    """One family's refresh: what was written, or why it was skipped (``skipped``)."""

    family: str
    version: int
    since: dt.datetime | None
    watermark: dt.datetime | None
    rows: int = 0
    entities: int = 0
    seconds: float = 0.0
    skipped: str | None = None

    def line(self) -> str:
        if self.skipped:
            return f"{self.family} v{self.version}: skipped ({self.skipped})"
        mark = self.watermark.isoformat() if self.watermark else "-"
        return (
            f"{self.family} v{self.version}: {self.entities} entities refreshed in "
            f"{self.seconds:.1f} s; watermark {mark}"
        )


def is_due(watermark: dt.datetime | None, freshness: dt.timedelta | None, now: dt.datetime) -> bool:
    """Whether a keyspace with ``watermark`` needs a refresh to stay within ``freshness``."""
    if watermark is None or freshness is None:
        return True
    return now - watermark >= freshness / 2


def refresh(
    settings: Settings,
    family: str,
    *,
    force: bool = False,
    now: dt.datetime | None = None,
    lock_ttl: float = 60.0,
    lock_wait: float = 0.0,
    engine: str = "auto",
) -> RefreshResult | None:
    """Refresh ``family``'s live keyspace incrementally; None when nothing is live.

    ``engine`` chooses the writer as ``materialization.materialize`` does."""
    from nbfeatures.catalog import Catalog
    from nbfeatures.engine.spark.offline import compute_offline
    from nbfeatures.materialization import materialize_version
    from nbfeatures.online.store import FamilyLayout, OnlineStore
    from nbfeatures.promotion.lock import PromotionLock
    from nbfeatures.promotion.steps import spark_for

    now = now or dt.datetime.now(dt.UTC)
    store = OnlineStore.from_settings(settings)
    with PromotionLock(store.client, store.prefix, family, lock_ttl).hold(lock_wait):
        live = store.live_version(family)
        if live is None:
            return None
        fv = Catalog.from_settings(settings).get(family, live)
        since = store.watermark(family, live)
        if not force and not is_due(since, fv.family.freshness, now):
            return RefreshResult(family, live, since, since, skipped="within its freshness SLA")
        started = time.perf_counter()
        if since is not None:
            compute_offline(spark_for(settings), settings, fv, since, now)
        layout = FamilyLayout.of(fv.family, live)
        # materialize records the new watermark itself, after the values are written.
        stats = materialize_version(settings, layout, since=since, incremental=True, engine=engine)
        return RefreshResult(
            family,
            live,
            since,
            stats.watermark or since,
            stats.rows,
            stats.entities,
            time.perf_counter() - started,
        )


def refresh_all(
    settings: Settings,
    *,
    force: bool = False,
    now: dt.datetime | None = None,
    engine: str = "auto",
) -> list[RefreshResult]:
    """``refresh`` every family that has a live version."""
    from nbfeatures.online.store import OnlineStore

    families = sorted(OnlineStore.from_settings(settings).live_versions())
    results = [refresh(settings, name, force=force, now=now, engine=engine) for name in families]
    return [r for r in results if r is not None]
