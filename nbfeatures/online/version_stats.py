"""What a live version serves: how many entities, its newest event time, the share expired.

``nbfeatures status`` prints one line per live version from these numbers, so a version made
live with data older than its ttl (serving STALE or nothing) shows at a glance. Counting
entities is one ``SCAN`` (and ``HLEN`` per bucket) on the version's node; event times are in
the values, so they are decoded from at most ``sample`` entities' records, and the line says
when they come from a sample.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nbfeatures.definitions import format_duration
from nbfeatures.online.codec import RecordShape, decode_columns

if TYPE_CHECKING:
    from nbfeatures.online.layout import FamilyLayout
    from nbfeatures.online.store import OnlineStore

#: Entities whose records are decoded for the newest event time and the expired share.
SAMPLE = 10_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SCAN_COUNT = 1000


@dataclass(frozen=True)
class VersionStats:
    """One version's keyspace: ``expired_share`` is the share of values older than the ttl."""

    family: str
    version: int
    entities: int
    newest: dt.datetime | None
    expired_share: float
    ttl_seconds: int | None
    sampled: int

    def line(self) -> str:
        """``entities 20, newest event time 2026-..., expired 0% (ttl 1d)``."""
        newest = self.newest.isoformat(timespec="seconds") if self.newest else "-"
        ttl = (
            "no ttl"
            if self.ttl_seconds is None
            else f"ttl {format_duration(dt.timedelta(seconds=self.ttl_seconds))}"
        )
        text = f"entities {self.entities}, newest event time {newest}, "
        text += f"expired {self.expired_share:.0%} ({ttl})"
        if self.sampled < self.entities:
            text += f"; newest and expired from a sample of {self.sampled}"
        return text


def version_stats(
    store: OnlineStore, family: str, version: int, sample: int = SAMPLE
) -> VersionStats | None:
    """The numbers of one version's keyspace; ``None`` when it has no layout in Redis."""
    layout = store.layout(family, version)
    if layout is None:
        return None
    entities = store.count_keys(family, version)
    payloads = _sample_payloads(store, layout, sample)
    event_us = np.zeros(0, dtype=np.int64)
    if payloads:
        got = decode_columns(RecordShape.of(layout), payloads, frozenset(), f"{family} v{version}")
        event_us = got.event_us[got.present]
    newest = None
    expired = 0.0
    if len(event_us):
        newest = _EPOCH + dt.timedelta(microseconds=int(event_us.max()))
        if layout.ttl_seconds is not None:
            limit = int(time.time() * 1_000_000) - layout.ttl_seconds * 1_000_000
            expired = float((event_us <= limit).mean())
    return VersionStats(
        family, version, entities, newest, expired, layout.ttl_seconds, len(event_us)
    )


def _sample_payloads(store: OnlineStore, layout: FamilyLayout, sample: int) -> list[bytes | None]:
    """Up to ``sample`` whole records of the version, in ``SCAN`` order."""
    key_id = store.key_id(layout.family, layout.version, fresh=True)
    if key_id is None or sample <= 0:
        return []
    client = store.client
    pattern = store.keys.values_pattern(key_id)
    packing = store.packing(layout.family, layout.version, fresh=True)
    found: list[bytes | None] = []
    keys: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=_SCAN_COUNT):
        keys.append(key)
        if packing is None and len(keys) >= sample:
            break
        if packing is not None and len(keys) * 8 >= sample:  # ~6-12 entities a bucket
            break
    if packing is None:
        for start in range(0, len(keys), _SCAN_COUNT):
            found.extend(client.mget(keys[start : start + _SCAN_COUNT]))
        return found[:sample]
    for bucket in keys:
        fields: dict[bytes, bytes] = client.hgetall(bucket)
        chunks: dict[bytes, dict[int, bytes]] = {}
        for name, value in fields.items():
            chunks.setdefault(name[:-1], {})[name[-1]] = value
        for parts in chunks.values():
            if len(parts) == packing.chunks:
                found.append(b"".join(parts[c] for c in range(packing.chunks)))
        if len(found) >= sample:
            break
    return found[:sample]
