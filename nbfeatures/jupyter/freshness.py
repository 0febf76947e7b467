"""The freshness badge of the family list: how old the live version's newest value is.

The age is now minus the newest event time in the live version's keyspace (read from Redis
by ``online.version_stats``, from a sample of entities), judged against the family's
freshness SLA: ``ok`` within it, ``warn`` up to twice it, ``alert`` beyond. Opening the list
must never fail or hang because Redis is away, so the store is reached with short timeouts
and any failure leaves the measured fields null; a workspace on the embedded Redis is only
read when that server is already running (the list never starts one).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbfeatures.config import Settings
    from nbfeatures.online.store import OnlineStore

log = logging.getLogger(__name__)

#: Entities whose records are decoded for the newest event time: enough for a badge, cheap
#: enough to do for every family each time the list opens.
SAMPLE = 1_000
#: Seconds to connect to, and to wait for, the online store before the badge gives up.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0


@dataclass(frozen=True)
class Freshness:
    """The badge's numbers; fields are None when unknown (no SLA, nothing live, no Redis)."""

    sla_seconds: int | None = None
    newest_event_time: dt.datetime | None = None
    age_seconds: float | None = None
    status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        newest = self.newest_event_time
        return {
            "sla_seconds": self.sla_seconds,
            "newest_event_time": newest.isoformat() if newest else None,
            "age_seconds": self.age_seconds,
            "status": self.status,
        }


def judge(age_seconds: float, sla_seconds: int) -> str:
    """``ok`` within the SLA, ``warn`` up to twice the SLA, ``alert`` beyond."""
    if age_seconds <= sla_seconds:
        return "ok"
    return "warn" if age_seconds <= 2 * sla_seconds else "alert"


def connect_online(settings: Settings) -> OnlineStore | None:
    """The workspace's online store with short timeouts, or None when it cannot be reached."""
    try:
        from nbfeatures.online.connect import client_from_url
        from nbfeatures.online.embedded import running_embedded
        from nbfeatures.online.store import OnlineStore

        url = settings.redis_url
        if not url:
            embedded = running_embedded(settings)
            if embedded is None:
                return None
            url = embedded.url
        client = client_from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=READ_TIMEOUT
        )
        return OnlineStore(client, settings.key_prefix, url=url)
    except Exception as exc:  # the badge is optional: no Redis means no numbers, not an error
        log.info("freshness badges without numbers: the online store is unavailable: %s", exc)
        return None


def family_freshness(
    store: OnlineStore | None,
    family: str,
    sla: dt.timedelta | None,
    now: dt.datetime | None = None,
) -> Freshness:
    """The badge of ``family``'s live version (fields None where unknown)."""
    from nbfeatures.online.version_stats import version_stats

    sla_seconds = None if sla is None else int(sla.total_seconds())
    if store is None:
        return Freshness(sla_seconds)
    try:
        live = store.live_version(family)
        stats = None if live is None else version_stats(store, family, live, sample=SAMPLE)
    except Exception as exc:  # Redis went away mid-list, or a keyspace cannot be decoded
        log.info("no freshness for %s: %s", family, exc)
        return Freshness(sla_seconds)
    if stats is None or stats.newest is None:
        return Freshness(sla_seconds)
    age = ((now or dt.datetime.now(dt.UTC)) - stats.newest).total_seconds()
    status = None if sla_seconds is None else judge(age, sla_seconds)
    return Freshness(sla_seconds, stats.newest, round(age, 3), status)
