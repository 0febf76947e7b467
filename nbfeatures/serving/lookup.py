"""Answer a feature request from the online store, without any gRPC: the server's core.

A request names entity rows (join key -> one value per row) and feature references. References
are grouped per family version: production references follow the family's live pointer (cached
for ``live_cache_seconds`` so a flip is seen within that time), pinned ones name their version.
Each group is read with one ``MGET``. Layouts never change once written, so they are cached.
"""

from __future__ import annotations

import datetime as dt
import enum
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures.definitions import FeatureRef, FeatureType
from nbfeatures.errors import FeatureNotFound, InvalidRequest, OnlineStoreError

if TYPE_CHECKING:
    import pyarrow as pa

    from nbfeatures.online import FamilyLayout, OnlineStore


class Status(enum.IntEnum):
    """The status of one served value; the numbers are the wire enum's."""

    PRESENT = 1
    NOT_FOUND = 2
    STALE = 3
    ERROR = 4


@dataclass(frozen=True)
class OnlineQuery:
    """Entity rows as columns of text keys, and the references asked for, in order."""

    entities: Mapping[str, Sequence[str]]
    refs: tuple[FeatureRef, ...]
    request_id: str = ""
    omit_event_times: bool = False
    # Request-time inputs of on-demand families: field name -> one value per entity row.
    request_data: Mapping[str, Sequence[Any]] = field(default_factory=dict)

    @property
    def row_count(self) -> int:
        return len(next(iter(self.entities.values()))) if self.entities else 0


@dataclass(frozen=True)
class FamilyResult:
    """One family version's answer: a status and event time per row, a column per feature."""

    family: str
    version: int
    pinned: bool
    entity_key: str
    statuses: np.ndarray
    event_us: np.ndarray
    columns: dict[str, tuple[FeatureType, pa.Array]]
    # Why every value is ERROR (an on-demand function raised); empty otherwise.
    error: str = ""

    def newest_event_us(self) -> int | None:
        """The event time of the newest value served (present or stale), if any."""
        served = self.statuses != Status.NOT_FOUND
        served &= self.statuses != Status.ERROR
        return int(self.event_us[served].max()) if served.any() else None


@dataclass
class _Group:
    family: str
    version: int | None
    features: list[str] = field(default_factory=list)
    wildcard: bool = False


def group_refs(refs: Sequence[FeatureRef]) -> list[_Group]:
    """References grouped by (family, pinned version or production), in first-seen order."""
    groups: dict[tuple[str, int | None], _Group] = {}
    for ref in refs:
        group = groups.setdefault((ref.family, ref.version), _Group(ref.family, ref.version))
        if ref.is_wildcard:
            group.wildcard = True
        elif ref.feature not in group.features:
            group.features.append(ref.feature)
    return list(groups.values())


class LiveVersions:
    """Each family's live version, re-read from Redis once ``max_age`` seconds have passed."""

    def __init__(self, store: OnlineStore, max_age: float) -> None:
        self._store = store
        self._max_age = max_age
        self._cache: dict[str, tuple[int | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, family: str) -> int | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(family)
        if cached is not None and now - cached[1] < self._max_age:
            return cached[0]
        version = self._store.live_version(family)
        with self._lock:
            self._cache[family] = (version, now)
        return version


class FeatureLookup:
    """Resolves references and reads values; raises the library's errors, never gRPC's."""

    def __init__(self, store: OnlineStore, live_cache_seconds: float = 0.5) -> None:
        self.store = store
        self.live = LiveVersions(store, live_cache_seconds)
        self._layouts: dict[tuple[str, int], FamilyLayout] = {}

    def layout(self, family: str, version: int) -> FamilyLayout | None:
        cached = self._layouts.get((family, version))
        if cached is None:
            cached = self.store.layout(family, version)
            if cached is not None:
                self._layouts[(family, version)] = cached
        return cached

    def resolve(self, refs: Sequence[FeatureRef]) -> list[tuple[FamilyLayout, list[str], bool]]:
        """Each group's layout, the features to serve and whether it was pinned.

        Every unknown family, version or feature is collected first, so one error names them all.
        """
        resolved: list[tuple[FamilyLayout, list[str], bool]] = []
        missing: list[str] = []
        for group in group_refs(refs):
            version = group.version if group.version is not None else self.live.get(group.family)
            if version is None:
                missing.append(f"{group.family} (no live version)")
                continue
            layout = self.layout(group.family, version)
            if layout is None:
                missing.append(f"{group.family}@v{version} (not in the online store)")
                continue
            known = layout.feature_names
            unknown = [name for name in group.features if name not in known]
            missing.extend(f"{group.family}@v{version}:{name}" for name in unknown)
            features = list(known) if group.wildcard else group.features
            resolved.append((layout, features, group.version is not None))
        if missing:
            raise FeatureNotFound(
                missing[0].split(" ")[0].split(":")[0],
                detail="not servable: " + ", ".join(missing),
            )
        return resolved

    def read(self, query: OnlineQuery, now: dt.datetime) -> list[FamilyResult]:
        """Read every family of ``query`` (one round trip each) and judge staleness at ``now``."""
        return [
            self.read_one(query, layout, features, pinned, now)
            for layout, features, pinned in self.resolve(query.refs)
        ]

    def read_one(
        self,
        query: OnlineQuery,
        layout: FamilyLayout,
        features: list[str],
        pinned: bool,
        now: dt.datetime,
    ) -> FamilyResult:
        """One family version for every entity row of ``query``: a single ``MGET``."""
        import pyarrow as pa

        keys = query.entities.get(layout.entity_key)
        if keys is None:
            raise InvalidRequest(
                "request",
                f"family {layout.family} is keyed by {layout.entity_key!r}, which the "
                f"request's entities lack (it has: {', '.join(query.entities) or 'none'})",
            )
        kinds = dict(zip(layout.feature_names, layout.feature_types, strict=True))
        try:
            rows = self.store.read(layout, keys, features)
        except OnlineStoreError as exc:
            if isinstance(exc, ConnectionError):
                raise
            # A value that does not decode is reported per value, not as a failed call.
            statuses = np.full(len(keys), Status.ERROR, dtype=np.int8)
            empty = {name: (kinds[name], pa.nulls(len(keys))) for name in features}
            return FamilyResult(
                layout.family, layout.version, pinned, layout.entity_key,
                statuses, np.zeros(len(keys), dtype=np.int64), empty,
            )  # fmt: skip
        statuses = np.where(rows.present, Status.PRESENT, Status.NOT_FOUND).astype(np.int8)
        statuses[rows.stale(now)] = Status.STALE
        event_us = np.where(
            rows.present, rows.event_time.astype("datetime64[us]").view(np.int64), 0
        )
        columns = {name: (kinds[name], rows.columns[name]) for name in features}
        return FamilyResult(
            layout.family, layout.version, pinned, layout.entity_key, statuses, event_us, columns
        )
