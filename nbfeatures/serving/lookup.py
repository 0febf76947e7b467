"""Answer a feature request from the online store, without any gRPC: the server's core.

A request names entity rows (join key -> one value per row) and feature references. References
are grouped per family version: production references follow the family's live pointer, pinned
ones name their version. Each group is read in one round trip: one ``MGET``, or for a packed
version one ``HMGET`` per entity in one pipeline. The live pointer and each version's key id,
packing and layout are cached and re-checked, one ``MGET`` per family, once
``live_cache_seconds`` old (``nbfeatures.serving.records``): a flip, a rewritten layout or
records lost with Redis' data are seen within that time. Every read of values also reads the
key id's owner record (``KeySpace.owner``, same slot, same round trip), so values whose key id
was drawn again for another version after a data loss are never served under this one.

Two lookups share this logic: ``AsyncFeatureLookup`` is the server's (``redis.asyncio``, one
event loop); ``FeatureLookup`` is blocking, for on-demand inputs and the rare calls that run
on a worker thread. Values are decoded into numpy columns (``Column``), which the response is
filled from directly: no Arrow array is built for a served value.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures.definitions import FeatureRef, FeatureType
from nbfeatures.errors import FeatureNotFound, InvalidRequest, OnlineStoreError, missing_text
from nbfeatures.online.codec import RecordShape, decode_columns
from nbfeatures.online.layout import FamilyLayout
from nbfeatures.serving.records import FamilyRecords, VersionRecords

if TYPE_CHECKING:
    import pyarrow as pa
    import redis.asyncio

    from nbfeatures.online import OnlineStore
    from nbfeatures.serving.redis_pipe import RedisPipe

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Caches keyed by what clients send are bounded: a client cycling through feature lists must
# not grow the server without limit (cleared whole when full; rebuilding an entry is cheap).
_CACHE_ENTRIES = 4096


class Status(enum.IntEnum):
    """The status of one served value; the numbers are the wire enum's."""

    PRESENT = 1
    NOT_FOUND = 2
    STALE = 3
    ERROR = 4


# Plain ints for the per-request code: an enum member costs an attribute lookup each time.
_PRESENT, _NOT_FOUND, _STALE, _ERROR = (int(s) for s in Status)


def now_micros() -> int:
    """Now, in microseconds since the Unix epoch (UTC)."""
    return time.time_ns() // 1000


def micros_to_datetime(micros: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=micros)


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


@dataclass(slots=True)
class Column:
    """One feature's values for every entity row.

    ``values``: a numpy array (a list of ``str`` for strings; int64 microseconds for
    timestamps) with 0, False or "" where null; ``nulls``: True where null, ``None`` when no
    value is null.
    """

    kind: FeatureType
    values: np.ndarray | list[Any]
    nulls: np.ndarray | None = None

    def python_values(self) -> list[Any]:
        """Plain Python values, ``None`` where null (timestamps as aware UTC datetimes)."""
        values: list[Any] = list(self.values) if isinstance(self.values, list) else []
        if not isinstance(self.values, list):
            values = self.values.tolist()
        if self.kind is FeatureType.TIMESTAMP:
            values = [micros_to_datetime(v) for v in values]
        if self.nulls is None:
            return values
        return [None if null else v for v, null in zip(values, self.nulls.tolist(), strict=True)]

    def to_arrow(self) -> pa.Array:
        import pyarrow as pa

        from nbfeatures.online.codec import arrow_type

        if self.kind is FeatureType.STRING:
            texts: list[str | None] = list(self.values)
            if self.nulls is not None:
                nulls = self.nulls.tolist()
                texts = [None if null else t for t, null in zip(texts, nulls, strict=True)]
            return pa.array(texts, type=pa.string())
        if self.kind is FeatureType.TIMESTAMP:
            micros = pa.array(self.values, mask=self.nulls, type=pa.int64())
            return micros.cast(arrow_type(self.kind))
        return pa.array(self.values, mask=self.nulls, type=arrow_type(self.kind))

    @classmethod
    def from_arrow(cls, kind: FeatureType, array: pa.Array | pa.ChunkedArray) -> Column:
        """An Arrow column (any type castable to ``kind``; a null-typed one is all null)."""
        import pyarrow as pa

        from nbfeatures.online.codec import arrow_type

        n = len(array)
        nulls = np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        mask = nulls if nulls.any() else None
        if pa.types.is_null(array.type):
            array = pa.nulls(n, type=arrow_type(kind))
        if kind is FeatureType.STRING:
            texts = array.cast(pa.string()).fill_null("").to_pylist()
            return cls(kind, texts, mask)
        if kind is FeatureType.TIMESTAMP:
            micros = array.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).fill_null(0)
            return cls(kind, np.asarray(micros.to_numpy(zero_copy_only=False)), mask)
        filler = False if kind is FeatureType.BOOL else 0
        filled = array.cast(arrow_type(kind)).fill_null(filler)
        return cls(kind, np.asarray(filled.to_numpy(zero_copy_only=False)), mask)

    @classmethod
    def all_null(cls, kind: FeatureType, n: int) -> Column:
        if kind is FeatureType.STRING:
            return cls(kind, [""] * n, np.ones(n, dtype=bool))
        dtype: Any = bool if kind is FeatureType.BOOL else np.int64
        if kind in (FeatureType.FLOAT32, FeatureType.FLOAT64):
            dtype = np.float64
        return cls(kind, np.zeros(n, dtype=dtype), np.ones(n, dtype=bool))


@dataclass(slots=True)
class FamilyResult:
    """One family version's answer: a status and event time per row, a column per feature."""

    family: str
    version: int
    pinned: bool
    entity_key: str
    statuses: np.ndarray
    event_us: np.ndarray
    columns: dict[str, Column]
    # Why every value is ERROR (an on-demand function raised); empty otherwise.
    error: str = ""
    # How many rows have each status (index: the status number), when already known.
    counts: list[int] | None = None

    def status_counts(self) -> list[int]:
        """Rows per status, indexed by the status number (index 0 unused)."""
        if self.counts is None:
            self.counts = np.bincount(self.statuses, minlength=len(Status) + 1).tolist()
        return self.counts

    def newest_event_us(self) -> int | None:
        """The event time of the newest value served (present or stale), if any."""
        counts = self.status_counts()
        if counts[_PRESENT] + counts[_STALE] == len(self.statuses):
            return int(self.event_us.max()) if len(self.event_us) else None
        served = (self.statuses == _PRESENT) | (self.statuses == _STALE)
        return int(self.event_us[served].max()) if served.any() else None


@dataclass(frozen=True)
class ReadPlan:
    """How to read and decode one family version's requested features (built once, reused)."""

    layout: FamilyLayout
    features: tuple[str, ...]
    pinned: bool
    shape: RecordShape
    only: frozenset[str]
    kinds: Mapping[str, FeatureType]
    ttl_us: int | None
    where: str
    # ttl + retention: older values are gone (NOT_FOUND) even while their bucket lives.
    kept_us: int | None = None

    @classmethod
    def of(cls, layout: FamilyLayout, features: Sequence[str], pinned: bool) -> ReadPlan:
        ttl = layout.ttl_seconds
        return cls(
            layout=layout,
            features=tuple(features),
            pinned=pinned,
            shape=RecordShape.of(layout),
            only=frozenset(features),
            kinds=dict(zip(layout.feature_names, layout.feature_types, strict=True)),
            ttl_us=None if ttl is None else ttl * 1_000_000,
            where=f"{layout.family} v{layout.version}",
            kept_us=None if layout.kept_seconds is None else layout.kept_seconds * 1_000_000,
        )

    def entity_keys(self, query: OnlineQuery) -> Sequence[str]:
        keys = query.entities.get(self.layout.entity_key)
        if keys is None:
            raise InvalidRequest(
                "request",
                f"family {self.layout.family} is keyed by {self.layout.entity_key!r}, which the "
                f"request's entities lack (it has: {', '.join(query.entities) or 'none'})",
            )
        return keys

    def result(self, payloads: Sequence[bytes | None], now_us: int) -> FamilyResult:
        """The block for ``payloads`` (``MGET``'s answer), staleness judged at ``now_us``."""
        layout = self.layout
        n = len(payloads)
        try:
            got = decode_columns(self.shape, payloads, self.only, self.where)
        except OnlineStoreError:
            # A value that does not decode is reported per value, not as a failed call.
            return FamilyResult(
                layout.family, layout.version, self.pinned, layout.entity_key,
                np.full(n, _ERROR, dtype=np.int8), np.zeros(n, dtype=np.int64),
                {name: Column.all_null(self.kinds[name], n) for name in self.features},
            )  # fmt: skip
        if self.kept_us is not None and n and int(got.event_us.min()) <= now_us - self.kept_us:
            gone = got.present & (got.event_us <= now_us - self.kept_us)
            if gone.any():  # rare: decode again without them, so they read NOT_FOUND
                kept = [None if g else p for p, g in zip(payloads, gone.tolist(), strict=True)]
                return self.result(kept, now_us)
        counts: list[int] | None = None
        if got.all_present:
            statuses = np.full(n, _PRESENT, dtype=np.int8)
            counts = [0, n, 0, 0, 0]
        else:
            statuses = np.where(got.present, _PRESENT, _NOT_FOUND).astype(np.int8)
        if self.ttl_us is not None and n:
            limit = now_us - self.ttl_us
            if int(got.event_us.min()) <= limit:  # the usual case skips the masking
                stale = got.event_us <= limit
                if not got.all_present:
                    stale &= got.present
                statuses[stale] = _STALE
                counts = None
        kinds, values, nulls = self.kinds, got.values, got.nulls
        columns = {name: Column(kinds[name], values[name], nulls[name]) for name in self.features}
        return FamilyResult(
            layout.family, layout.version, self.pinned, layout.entity_key,
            statuses, got.event_us, columns, "", counts,
        )  # fmt: skip


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


def _plans(
    groups: Sequence[_Group],
    versions: Sequence[int | None],
    layouts: Sequence[FamilyLayout | None],
) -> list[ReadPlan]:
    """Each group's plan; ``FeatureNotFound`` naming every unknown family, version, feature."""
    plans: list[ReadPlan] = []
    missing: list[tuple[str, int | None, str]] = []  # family, version, what is missing
    for group, version, layout in zip(groups, versions, layouts, strict=True):
        if version is None:
            missing.append((group.family, None, f"family {group.family} has no live version"))
            continue
        if layout is None:
            text = f"family {group.family}@v{version} is not in the online store"
            missing.append((group.family, version, text))
            continue
        known = layout.feature_names
        for name in group.features:
            if name not in known:
                text = missing_text(group.family, version, name, tuple(known))
                missing.append((group.family, version, text))
        features = list(known) if group.wildcard else group.features
        plans.append(ReadPlan.of(layout, features, group.version is not None))
    if missing:
        family, version, _ = missing[0]
        message = "; ".join(text for _, _, text in missing)
        raise FeatureNotFound(family, version, message=message)
    return plans


class FeatureLookup:
    """Blocking: resolves references and reads values; raises the library's errors.

    Live versions and version records are cached and re-checked as ``AsyncFeatureLookup``'s
    are (``nbfeatures.serving.records``).
    """

    def __init__(self, store: OnlineStore, live_cache_seconds: float = 0.5) -> None:
        self.store = store
        self._records = FamilyRecords(store.keys, live_cache_seconds)
        self._lock = threading.Lock()

    def _check(self, family: str) -> None:
        """Re-read the family's live pointer and cached versions' records if they are due."""
        with self._lock:
            if self._records.current(family, time.monotonic()):
                return
            keys, versions = self._records.check_keys(family)
            replies = self.store.client.mget(keys)
            self._records.checked(family, versions, replies, time.monotonic())

    def live(self, family: str) -> int | None:
        self._check(family)
        with self._lock:
            return self._records.live(family)

    def records(self, family: str, version: int) -> VersionRecords | None:
        self._check(family)
        with self._lock:
            found = self._records.version(family, version)
            if found is None:
                replies = self.store.client.mget(self.store.keys.version_records(family, version))
                found = self._records.remember(family, version, replies, time.monotonic())
        return found

    def layout(self, family: str, version: int) -> FamilyLayout | None:
        found = self.records(family, version)
        return None if found is None else found.layout

    def resolve(self, refs: Sequence[FeatureRef]) -> list[ReadPlan]:
        """Each group's plan; every unknown family, version or feature is named in one error."""
        groups = group_refs(refs)
        versions = [g.version if g.version is not None else self.live(g.family) for g in groups]
        layouts = [
            None if v is None else self.layout(g.family, v)
            for g, v in zip(groups, versions, strict=True)
        ]
        return _plans(groups, versions, layouts)

    def read(self, query: OnlineQuery, now: dt.datetime) -> list[FamilyResult]:
        """Read every family of ``query`` (one round trip each) and judge staleness at ``now``."""
        return [self.read_one(query, plan, now) for plan in self.resolve(query.refs)]

    def read_one(self, query: OnlineQuery, plan: ReadPlan, now: dt.datetime) -> FamilyResult:
        """One family version for every entity row of ``query``, in one round trip."""
        layout = plan.layout
        found = self.records(layout.family, layout.version)
        keys = plan.entity_keys(query)
        if found is None or found.stored is None:
            payloads: list[bytes | None] = [None] * len(keys)
        else:
            payloads = found.stored.read(self.store.client, [k.encode() for k in keys])
        return plan.result(payloads, (now - _EPOCH) // dt.timedelta(microseconds=1))


class AsyncFeatureLookup:
    """The server's lookup on ``redis.asyncio``: the same answers as ``FeatureLookup``.

    Parsed plans are cached per (references, versions), so a repeated request pays for a few
    dict lookups before its ``MGET``. Live versions and version records are re-checked once
    ``live_cache_seconds`` old (``nbfeatures.serving.records``); plans are dropped whenever a
    version's records changed (a rewritten layout, a key id lost with Redis' data).
    """

    def __init__(
        self,
        store: OnlineStore,
        client: redis.asyncio.Redis[Any],
        live_cache_seconds: float = 0.5,
        pipe: RedisPipe | None = None,
    ) -> None:
        self.store = store
        self.client = client
        # MGETs go through the pipelined connection when there is one (plain TCP or unix).
        self.pipe = pipe
        self._keys = store.keys
        self._records = FamilyRecords(store.keys, live_cache_seconds)
        # One check per family at a time: requests arriving meanwhile wait for it.
        self._checks: dict[str, asyncio.Future[None]] = {}
        self._groups: dict[tuple[FeatureRef, ...], list[_Group]] = {}
        self._plans: dict[tuple[tuple[FeatureRef, ...], tuple[int | None, ...]], list[ReadPlan]]
        self._plans = {}

    async def _check(self, family: str) -> None:
        while not self._records.current(family, time.monotonic()):
            running = self._checks.get(family)
            if running is not None:
                await asyncio.wait((running,))
                continue  # checked meanwhile (or that check failed: this one tries itself)
            running = self._checks[family] = asyncio.get_running_loop().create_future()
            try:
                keys, versions = self._records.check_keys(family)
                replies = await self.client.mget(keys)
                if self._records.checked(family, versions, replies, time.monotonic()):
                    self._plans.clear()
            finally:
                running.set_result(None)
                del self._checks[family]

    async def live(self, family: str) -> int | None:
        await self._check(family)
        return self._records.live(family)

    async def records(self, family: str, version: int) -> VersionRecords | None:
        await self._check(family)
        found = self._records.version(family, version)
        if found is None:
            replies = await self.client.mget(self._keys.version_records(family, version))
            found = self._records.remember(family, version, replies, time.monotonic())
        return found

    async def layout(self, family: str, version: int) -> FamilyLayout | None:
        found = await self.records(family, version)
        return None if found is None else found.layout

    async def resolve(self, refs: tuple[FeatureRef, ...]) -> list[ReadPlan]:
        groups = self._groups.get(refs)
        if groups is None:
            groups = group_refs(refs)
            _bounded(self._groups)[refs] = groups
        versions: list[int | None] = []
        for g in groups:
            await self._check(g.family)
            versions.append(g.version if g.version is not None else self._records.live(g.family))
        key = (refs, tuple(versions))
        plans = self._plans.get(key)
        if plans is None:
            layouts = [
                None if v is None else await self.layout(g.family, v)
                for g, v in zip(groups, versions, strict=True)
            ]
            plans = _plans(groups, versions, layouts)
            _bounded(self._plans)[key] = plans
        return plans

    async def read_one(self, query: OnlineQuery, plan: ReadPlan, now_us: int) -> FamilyResult:
        keys = plan.entity_keys(query)
        layout = plan.layout
        # The records checked with the plan (a dict lookup); gone if a check since found the
        # version's key id or layout vanished: then nothing is read, every value NOT_FOUND.
        found = None
        if keys:
            found = self._records.version(layout.family, layout.version)
            if found is None:
                found = await self.records(layout.family, layout.version)
        if found is None or found.stored is None:
            return plan.result([None] * len(keys), now_us)
        stored = found.stored
        entities = [k.encode() for k in keys]
        # The key id's owner record is read with the values (same slot, same round trip).
        if self.pipe is not None:
            wire, replies = stored.read_wire(entities)
            got = await self.pipe.many(wire, replies)
        else:
            got = await stored.fetch_async(self.client, entities)
        payloads = stored.payloads(got)
        if payloads is None:
            # The key id was drawn again for another version after a data loss: nothing
            # here is this version's. Checked again by the next request.
            self._records.suspect(layout.family)
            payloads = [None] * len(keys)
        return plan.result(payloads, now_us)


def _bounded(cache: dict[Any, Any]) -> dict[Any, Any]:
    if len(cache) >= _CACHE_ENTRIES:
        cache.clear()
    return cache
