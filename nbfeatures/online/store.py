"""The Redis online store: write a family version's rows, read them back, flip the live pointer.

Keys are laid out as ``nbfeatures.online.layout`` describes, values as ``nbfeatures.online.codec``
describes. A version whose records have a fixed width is packed several entities to a Redis
hash (``nbfeatures.online.packing``): its writes are one script call per bucket of a batch,
its reads one ``HMGET`` per entity in one pipeline. Other versions keep one key per entity:
writes are ``SET key value PXAT expiry``, reads one ``MGET``. Either way a batch's wire bytes
are built with Arrow string kernels and sent on one connection, and values are decoded
column-wise. Both work unchanged on Redis Cluster because a family version's keys share one
hash slot, so each batch goes to a single node.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures.config import DEFAULT_KEY_PREFIX
from nbfeatures.errors import LiveVersionChanged, OnlineStoreError
from nbfeatures.online.codec import decode
from nbfeatures.online.layout import FamilyLayout, KeySpace, key_id_text
from nbfeatures.online.packing import Packing
from nbfeatures.online.rows import OnlineRows, utc
from nbfeatures.online.stored import StoredKeys, StoredVersion, packing_record, writable
from nbfeatures.online.write_pipeline import PipelinedWriter, send_batch

if TYPE_CHECKING:
    import pyarrow as pa
    import redis

    from nbfeatures.config import Settings
    from nbfeatures.online.connect import RedisClient

__all__ = ["FamilyLayout", "OnlineStore", "WriteTarget"]

_SCAN_COUNT = 1000
# How long a key id or packing read for reads is trusted (the servers' default live cache).
_RECORDS_MAX_AGE = 0.5
_HISTORY_KEPT = 100
# KEYS: live pointer, history list, layout of the target version.
# ARGV: expected current version ("" for none), target version, history length kept.
_FLIP_SCRIPT = """
if redis.call('EXISTS', KEYS[3]) == 0 then return {-1, ''} end
local current = redis.call('GET', KEYS[1])
if not current then current = '' end
if current ~= ARGV[1] then return {0, current} end
redis.call('SET', KEYS[1], ARGV[2])
if current ~= '' and current ~= ARGV[2] then
  redis.call('LPUSH', KEYS[2], current)
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
end
return {1, current}
"""


@dataclass(frozen=True)
class WriteTarget:
    """Where a version's values go: its key id and packing (``None``: one key per entity)."""

    key_id: str
    packing: Packing | None


def _gone(layout: FamilyLayout, present: np.ndarray, event_us: np.ndarray) -> np.ndarray | None:
    """Where a present value is older than ttl + retention (``None`` when none is)."""
    kept = layout.kept_seconds
    if kept is None or not len(present):
        return None
    gone = present & (event_us <= int(time.time() * 1_000_000) - kept * 1_000_000)
    return gone if gone.any() else None


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class OnlineStore:
    """Redis (standalone, TLS/AUTH through the URL) or Redis Cluster, one client per store."""

    def __init__(
        self, client: RedisClient, prefix: str = DEFAULT_KEY_PREFIX, *, url: str | None = None
    ) -> None:
        self.client = client
        self.keys = KeySpace(prefix)
        self.prefix = prefix
        # How executors reconnect (materialization ships the URL, never the client).
        self.url = url
        # Key ids and packings read for reads, with when (monotonic): trusted for
        # ``_RECORDS_MAX_AGE`` seconds only, since Redis may lose its data and hand a
        # version's key id to another version (the counter starts again at 1).
        self._key_ids: dict[tuple[str, int], tuple[str, float]] = {}
        self._packings: dict[tuple[str, int], tuple[Packing | None, float]] = {}

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_KEY_PREFIX) -> OnlineStore:
        from nbfeatures.online.connect import client_from_url

        return cls(client_from_url(url), prefix, url=url)

    @classmethod
    def from_settings(cls, settings: Settings) -> OnlineStore:
        """``settings.redis_url``, or the workspace's embedded server (started if needed), with
        keys under ``settings.key_prefix``."""
        if settings.redis_url:
            return cls.from_url(settings.redis_url, settings.key_prefix)
        from nbfeatures.online.embedded import ensure_embedded

        return cls.from_url(ensure_embedded(settings).url, settings.key_prefix)

    # -- layouts and watermarks -------------------------------------------------------------

    def write_layout(self, layout: FamilyLayout, entities: int | None = None) -> WriteTarget:
        """Record a version's layout so readers decode its values without the catalog.

        The version's packing is decided here, once: records of a fixed width (no string
        features) are packed into buckets sized for ``entities`` (about how many entities the
        version will hold; ``None`` if not known), others get one key per entity. A version
        materialized again keeps the packing it has. The packing is recorded before the
        layout, so a reader that finds the layout finds the packing. Returns where the
        version's values are written.
        """
        target = self.write_target(layout, entities)
        self.client.set(self.keys.layout(layout.family, layout.version), layout.to_json())
        return target

    def key_id(
        self, family: str, version: int, *, create: bool = False, fresh: bool = False
    ) -> str | None:
        """The short id in a version's value keys; drawn from the counter when ``create``.

        Two writers racing to create it agree: only the first ``SET NX`` wins and the other
        reads the winner's id (the counter value it drew is simply skipped). Ids are cached per
        store for reads, for ``_RECORDS_MAX_AGE`` seconds; writers ask with ``fresh`` so that a
        flushed database, whose counter starts over, can never make them write under another
        version's id.
        """
        cached = self._key_ids.get((family, version))
        now = time.monotonic()
        if cached is not None and not fresh and now - cached[1] < _RECORDS_MAX_AGE:
            return cached[0]
        name = self.keys.key_id(family, version)
        found = _text(self.client.get(name))
        if found is None and create:
            found = self._draw_key_id(family, version)
        if found is None:
            self._key_ids.pop((family, version), None)
        else:
            self._key_ids[(family, version)] = (found, now)
        return found

    def _draw_key_id(self, family: str, version: int) -> str | None:
        """Draw a key id; its owner record first, so readers never find values without it.

        A writer that loses the race leaves an owner record for an id no one uses.
        """
        import redis

        name = self.keys.key_id(family, version)
        try:
            drawn = key_id_text(int(self.client.incr(self.keys.key_id_counter())))
            self.client.set(self.keys.owner(drawn), self.keys.owner_text(family, version))
            if self.client.set(name, drawn, nx=True):
                return drawn
        except redis.ResponseError as exc:
            raise OnlineStoreError(
                f"{family} v{version}", f"Redis refused a write: {exc}"
            ) from None
        return _text(self.client.get(name))

    def packing(self, family: str, version: int, *, fresh: bool = False) -> Packing | None:
        """How a version's values are packed; ``None``: one key per entity.

        A version recorded before packings were (or not yet materialized) has one key per
        entity. Cached per store like key ids (``key_id``); writers ask with ``fresh``.
        """
        where = (family, version)
        cached = self._packings.get(where)
        if cached is not None and not fresh and time.monotonic() - cached[1] < _RECORDS_MAX_AGE:
            return cached[0]
        raw = self.client.get(self.keys.packing(family, version))
        if raw is None:
            self._packings.pop(where, None)
            return None
        return self._remember_packing(where, raw)

    def _remember_packing(self, where: tuple[str, int], raw: bytes | str) -> Packing | None:
        packing = Packing.from_json(raw, f"{where[0]} v{where[1]}")
        self._packings[where] = (packing, time.monotonic())
        return packing

    def write_target(self, layout: FamilyLayout, entities: int | None = None) -> WriteTarget:
        """Where ``layout``'s values go, read fresh; the key id and packing decided if new.

        The packing is recorded once (``SET NX``), whoever writes first: ``write_layout``, or
        ``write_rows`` without one (then sized for an unknown number of entities).
        """
        import redis

        key_id = self.key_id(layout.family, layout.version, create=True, fresh=True) or ""
        name = self.keys.packing(layout.family, layout.version)
        raw = self.client.get(name)
        try:
            # A key id drawn before owner records were has none: recorded now.
            owner_key = self.keys.owner(key_id)
            if self.client.get(owner_key) is None:
                owner = self.keys.owner_text(layout.family, layout.version)
                self.client.set(owner_key, owner, nx=True)
            if raw is None:
                record = packing_record(layout, entities)
                self.client.set(name, record, nx=True)
                raw = self.client.get(name) or record  # another writer's record if it won
        except redis.ResponseError as exc:
            where = f"{layout.family} v{layout.version}"
            raise OnlineStoreError(where, f"Redis refused a write: {exc}") from None
        packing = self._remember_packing((layout.family, layout.version), raw)
        return WriteTarget(key_id, packing)

    def stored(self, layout: FamilyLayout, target: WriteTarget) -> StoredVersion:
        """``layout``'s stored form at ``target`` (``write_target``)."""
        return StoredVersion.at(self.keys, layout, target.key_id, target.packing)

    def stored_for_reads(self, layout: FamilyLayout) -> StoredVersion | None:
        """``layout``'s stored form from its cached key id and packing (``None`` while it has
        no key id: nothing is stored)."""
        family, version = layout.family, layout.version
        key_id = self.key_id(family, version)
        if key_id is None:
            return None
        return StoredVersion.at(self.keys, layout, key_id, self.packing(family, version))

    def value_key(self, family: str, version: int, entity: str | int) -> str | None:
        """The Redis key holding one entity's value (``None`` while the version has no key id).

        For a packed version that is the entity's bucket, shared with other entities.
        """
        stored = self._stored_by_name(family, version)
        return None if stored is None else stored.value_key(str(entity).encode()).decode()

    def delete_entity(self, family: str, version: int, entity: str | int) -> bool:
        """Remove one entity's value from a version; whether there was one."""
        stored = self._stored_by_name(family, version)
        return False if stored is None else stored.delete(self.client, str(entity).encode())

    def _stored_by_name(self, family: str, version: int) -> StoredKeys | None:
        """Where a version's values are, from its cached key id and packing (no layout read)."""
        key_id = self.key_id(family, version)
        if key_id is None:
            return None
        return StoredKeys.of(self.keys, family, version, key_id, self.packing(family, version))

    def layout(self, family: str, version: int) -> FamilyLayout | None:
        raw = self.client.get(self.keys.layout(family, version))
        return None if raw is None else FamilyLayout.from_json(raw)

    def watermark(self, family: str, version: int) -> dt.datetime | None:
        raw = _text(self.client.get(self.keys.watermark(family, version)))
        return None if raw is None else dt.datetime.fromisoformat(raw)

    def set_watermark(self, family: str, version: int, when: dt.datetime) -> None:
        self.client.set(self.keys.watermark(family, version), utc(when).isoformat())

    # -- values ----------------------------------------------------------------------------

    def write_rows(
        self, layout: FamilyLayout, batch: pa.RecordBatch, *, target: WriteTarget | None = None
    ) -> int:
        """Write one value per row (the last row wins for a repeated entity); return how many.

        ``target`` is where the version's values go when the caller already has it
        (materialization resolves it once on the driver); otherwise it is read, or the key id
        drawn, in Redis.

        With a ttl, each value expires at event time + ttl + retention (``PXAT``; a packed
        bucket at its newest member's): between ttl and that it is read STALE. Rows already
        past it are not written at all. The batch's wire
        bytes are built with Arrow kernels and sent as one pipeline on the connection of the
        node that owns the version's slot.
        """
        rows = writable(layout, batch)
        if rows is None:
            return 0
        if target is None:
            target = self.write_target(layout)
        stored = self.stored(layout, target)
        send_batch(self.node_client(stored.tag), stored.write_commands(rows), stored.where)
        return rows.rows

    def pipelined_writer(self, layout: FamilyLayout, target: WriteTarget) -> PipelinedWriter:
        """A writer that keeps one batch in flight: see ``PipelinedWriter``."""
        stored = self.stored(layout, target)
        return PipelinedWriter(self.node_client(stored.tag), stored)

    def node_client(self, key: bytes | str) -> redis.Redis[Any]:
        """The client of the node owning ``key``'s slot (the store's client when standalone)."""
        import redis

        if isinstance(self.client, redis.RedisCluster):
            node = self.client.get_node_from_key(key)
            if node is None:
                raise OnlineStoreError(str(key), "no cluster node serves this key's slot")
            found: redis.Redis[Any] = self.client.get_redis_connection(node)
            return found
        return self.client

    def read(
        self,
        layout: FamilyLayout,
        keys: Sequence[str | int],
        features: Collection[str] | None = None,
    ) -> OnlineRows:
        """Read one family version for many entities in one round trip.

        ``features`` limits the decoded columns to those (default: every feature).
        """
        wanted = tuple(keys)
        payloads = self.payloads(layout, [str(k) for k in wanted])
        decoded = decode(layout, payloads, features)
        gone = _gone(layout, decoded.present, decoded.event_us)
        if gone is not None:  # past ttl + retention but still in a live bucket: absent
            payloads = [None if g else p for p, g in zip(payloads, gone.tolist(), strict=True)]
            decoded = decode(layout, payloads, features)
        event_time = decoded.event_us.astype("datetime64[us]")
        event_time[~decoded.present] = np.datetime64("NaT")
        return OnlineRows(
            keys=wanted,
            present=decoded.present,
            event_time=event_time,
            columns=decoded.columns,
            ttl_seconds=layout.ttl_seconds,
        )

    def payloads(self, layout: FamilyLayout, entities: Sequence[str]) -> list[bytes | None]:
        """The stored records of ``entities`` (as text), ``None`` where absent; one round trip.

        One ``MGET``, or for a packed version one ``HMGET`` per entity in one pipeline; the
        key id's owner record is read with them, and when it names another version (the key
        id was drawn again after a data loss) all are absent.
        """
        stored = self.stored_for_reads(layout) if entities else None
        if stored is None:
            return [None] * len(entities)
        return stored.read(self.client, [e.encode() for e in entities])

    # -- live pointer ----------------------------------------------------------------------

    def live_version(self, family: str) -> int | None:
        raw = _text(self.client.get(self.keys.live(family)))
        return None if raw is None else int(raw)

    def flip(self, family: str, version: int, expected: int | None) -> int | None:
        """Point ``family`` at ``version`` if it still points at ``expected``; return the old.

        One Lua script, so it is atomic against other flips; the version's layout must have
        been written first. Raises ``LiveVersionChanged`` when the pointer moved meanwhile.
        """
        keys = [
            self.keys.live(family),
            self.keys.history(family),
            self.keys.layout(family, version),
        ]
        args = ["" if expected is None else str(expected), str(version), str(_HISTORY_KEPT)]
        # Both clients run scripts; the cluster routes this one by its keys' common slot.
        run: Any = self.client.eval  # type: ignore[union-attr]
        outcome, previous = run(_FLIP_SCRIPT, 3, *keys, *args)
        previous_version = int(previous) if previous else None
        if int(outcome) == -1:
            raise OnlineStoreError(
                f"{family} v{version}", "has no layout in Redis; materialize it before a flip"
            )
        if int(outcome) == 0:
            raise LiveVersionChanged(family, expected, previous_version)
        return previous_version

    def live_history(self, family: str) -> list[int]:
        return [int(v) for v in self.client.lrange(self.keys.history(family), 0, -1)]

    def live_versions(self) -> dict[str, int]:
        """Every family with a live pointer and its live version (scans every primary)."""
        found: dict[str, int] = {}
        for key in self.client.scan_iter(match=self.keys.live_pattern(), count=_SCAN_COUNT):
            family = self.keys.family_of_live_key(_text(key) or "")
            version = self.live_version(family)
            if version is not None:
                found[family] = version
        return found

    # -- keyspaces -------------------------------------------------------------------------

    def _scan_version(self, family: str, version: int) -> Any:
        key_id = self.key_id(family, version, fresh=True)
        if key_id is None:
            return self.client, iter(())
        node = self.node_client(self.keys.value_tag(key_id))
        return node, node.scan_iter(match=self.keys.values_pattern(key_id), count=_SCAN_COUNT)

    def count_keys(self, family: str, version: int) -> int:
        """How many entities a version holds (``SCAN`` on the node owning its slot).

        For a packed version, its buckets' field counts (``HLEN``) over its chunks.
        """
        node, keys = self._scan_version(family, version)
        packing = self.packing(family, version, fresh=True)
        if packing is None:
            return sum(1 for _ in keys)
        return self._packed_entities(node, list(keys), packing)

    @staticmethod
    def _packed_entities(node: Any, buckets: list[bytes], packing: Packing) -> int:
        fields = 0
        for start in range(0, len(buckets), _SCAN_COUNT):
            pipe = node.pipeline(transaction=False)
            for bucket in buckets[start : start + _SCAN_COUNT]:
                pipe.hlen(bucket)
            fields += sum(int(n) for n in pipe.execute())
        return fields // packing.chunks

    def delete_version(self, family: str, version: int) -> int:
        """Remove a version's values, layout and watermark; never the live version.

        Returns how many entities' values were removed.
        """
        live = self.live_version(family)
        if live == version:
            raise OnlineStoreError(
                f"{family} v{version}", "is the live version; flip to another version first"
            )
        node, keys = self._scan_version(family, version)
        packing = self.packing(family, version, fresh=True)
        deleted = 0
        chunk: list[bytes] = []
        for key in keys:
            chunk.append(key)
            if len(chunk) >= _SCAN_COUNT:
                deleted += self._unlink(node, chunk, packing)
                chunk = []
        if chunk:
            deleted += self._unlink(node, chunk, packing)
        self.client.delete(self.keys.layout(family, version))
        self.client.delete(self.keys.watermark(family, version))
        self.client.delete(self.keys.packing(family, version))
        self._packings.pop((family, version), None)
        return deleted

    def _unlink(self, node: Any, keys: list[bytes], packing: Packing | None) -> int:
        entities = len(keys) if packing is None else self._packed_entities(node, keys, packing)
        node.unlink(*keys)
        return entities

    def close(self) -> None:
        self.client.close()
