"""What a server knows about each family's versions, and how it checks that it still holds.

A server caches, per family, the live pointer and, per version it has read, the version's key
id, packing and layout (what it needs to build value keys and decode values). None of them is
trusted for ever: Redis can lose its data (``FLUSHALL``, a restart without persistence, a
failover to an empty replica) and the key id counter then starts again at 1, so a cached key
id may come to name another version's values; and a layout may be rewritten (a new ttl). So
once a family's entry is ``max_age`` seconds old, the next request re-reads the live pointer
and the records of every version cached for the family in one ``MGET`` (they share the
``{family}`` hash tag: one slot, one node), and a version whose records changed is re-read
from what was just fetched, or forgotten when they vanished. A request between two checks
costs what it did before: dict lookups.

This module does no I/O: the async server lookup and the blocking one send the keys it names
and hand it the replies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nbfeatures.online.layout import FamilyLayout
from nbfeatures.online.packing import Packing
from nbfeatures.online.stored import StoredVersion

if TYPE_CHECKING:
    from collections.abc import Sequence

    from nbfeatures.online.layout import KeySpace

Raw = bytes | str | None
_FAMILIES = 4096


def _text(raw: Raw) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw


def _bytes(raw: Raw) -> bytes | None:
    return raw.encode() if isinstance(raw, str) else raw


@dataclass(frozen=True)
class VersionRecords:
    """One version's key id, packing and layout records as read, and what they mean.

    ``stored`` is its stored form, where its values are read (``None``: no key id, so every
    value reads NOT_FOUND).
    """

    raw: tuple[bytes | None, bytes | None, bytes | None]
    layout: FamilyLayout
    stored: StoredVersion | None

    @classmethod
    def parse(
        cls, keys: KeySpace, family: str, version: int, replies: Sequence[Raw]
    ) -> VersionRecords | None:
        """The records from ``MGET`` of ``keys.version_records``; ``None`` without a layout."""
        key_id, packing, layout = (_bytes(r) for r in replies)
        if layout is None:
            return None
        parsed = FamilyLayout.from_json(layout)
        stored = None
        if key_id is not None:
            where = f"{family} v{version}"
            packed = None if packing is None else Packing.from_json(packing, where)
            stored = StoredVersion.at(keys, parsed, _text(key_id) or "", packed)
        return cls((key_id, packing, layout), parsed, stored)


@dataclass
class _Family:
    live: int | None
    checked: float
    versions: dict[int, VersionRecords] = field(default_factory=dict)


class FamilyRecords:
    """Per family: the live version and the cached versions' records, with their age."""

    def __init__(self, keys: KeySpace, max_age: float) -> None:
        self.keys = keys
        self.max_age = max_age
        self._families: dict[str, _Family] = {}

    def current(self, family: str, now: float) -> bool:
        """Whether ``family`` was checked less than ``max_age`` seconds before ``now``."""
        known = self._families.get(family)
        return known is not None and now - known.checked < self.max_age

    def live(self, family: str) -> int | None:
        known = self._families.get(family)
        return None if known is None else known.live

    def version(self, family: str, version: int) -> VersionRecords | None:
        known = self._families.get(family)
        return None if known is None else known.versions.get(version)

    def check_keys(self, family: str) -> tuple[list[str], list[int]]:
        """The keys to read to check ``family``: its live pointer, then each cached version's
        ``version_records``; and those versions, in order."""
        known = self._families.get(family)
        versions = sorted(known.versions) if known is not None else []
        keys = [self.keys.live(family)]
        for version in versions:
            keys.extend(self.keys.version_records(family, version))
        return keys, versions

    def checked(
        self, family: str, versions: Sequence[int], replies: Sequence[Raw], now: float
    ) -> bool:
        """Apply the replies to ``check_keys``; whether any cached version changed or vanished.

        A version whose records are byte for byte the same is kept as it is; one whose
        records changed is rebuilt from them (a vanished layout forgets it: the next request
        reads it afresh, and finds it or reports it not in the online store).
        """
        raw_live = _text(replies[0])
        known = self._families.get(family)
        if known is None:
            if len(self._families) >= _FAMILIES:
                self._families.clear()  # clients choose the names: bounded
            known = self._families[family] = _Family(None, now)
        known.live = None if raw_live is None else int(raw_live)
        known.checked = now
        changed = False
        for i, version in enumerate(versions):
            got = tuple(_bytes(r) for r in replies[1 + 3 * i : 4 + 3 * i])
            cached = known.versions.get(version)
            if cached is not None and cached.raw == got:
                continue
            changed = True
            fresh = VersionRecords.parse(self.keys, family, version, got)
            if fresh is None:
                known.versions.pop(version, None)
            else:
                known.versions[version] = fresh
        return changed

    def remember(
        self, family: str, version: int, replies: Sequence[Raw], now: float
    ) -> VersionRecords | None:
        """A version read for the first time (``MGET`` of ``version_records``); cached if it
        has a layout, so the family's next check covers it."""
        found = VersionRecords.parse(self.keys, family, version, replies)
        if found is not None:
            known = self._families.get(family)
            if known is None:
                # Never checked: the live pointer is read with the first check.
                known = self._families[family] = _Family(None, now - self.max_age)
            known.versions[version] = found
        return found

    def suspect(self, family: str) -> None:
        """Have ``family`` checked by the next request (its values were not its own)."""
        known = self._families.get(family)
        if known is not None:
            known.checked = float("-inf")
