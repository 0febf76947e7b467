"""The Redis online store: write a family version's rows, read them back, flip the live pointer.

Keys are laid out as ``nbfeatures.online.layout`` describes, values as ``nbfeatures.online.codec``
describes. Writes build the whole pipeline of ``SET key value PXAT expiry`` commands for a batch
with Arrow string kernels (the wire bytes of a batch are one Arrow buffer) and send it on one
connection; reads are one ``MGET`` decoded column-wise. Both work unchanged on Redis Cluster
because a family version's keys share one hash slot, so each batch goes to a single node.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures.errors import LiveVersionChanged, OnlineStoreError
from nbfeatures.online.codec import arrow_of, binary_scalar, decode, encode, event_micros
from nbfeatures.online.layout import DEFAULT_PREFIX, FamilyLayout, KeySpace, key_id_text

if TYPE_CHECKING:
    import pyarrow as pa
    import redis

    from nbfeatures.config import Settings
    from nbfeatures.online.connect import RedisClient

__all__ = ["FamilyLayout", "OnlineRows", "OnlineStore"]

_SCAN_COUNT = 1000
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
class OnlineRows:
    """What a read found, aligned with the keys asked for.

    ``present[i]`` says whether key ``i`` had a value; ``event_time`` is NaT where absent;
    ``columns`` are Arrow arrays, null where absent or where the feature itself was null.
    """

    keys: tuple[str | int, ...]
    present: np.ndarray
    event_time: np.ndarray
    columns: dict[str, pa.Array]
    ttl_seconds: int | None

    def __len__(self) -> int:
        return len(self.keys)

    def stale(self, now: dt.datetime) -> np.ndarray:
        """True where a present value is older than the family's ttl at ``now`` (aware UTC)."""
        if self.ttl_seconds is None:
            return np.zeros(len(self.keys), dtype=bool)
        now_us = np.datetime64(_utc(now).replace(tzinfo=None), "us")
        limit = np.timedelta64(self.ttl_seconds * 1_000_000, "us")
        return self.present & (self.event_time + limit <= now_us)

    def to_arrow(self) -> pa.Table:
        """Entity keys, ``present``, ``event_time`` and the feature columns as one table."""
        import pyarrow as pa

        event = pa.array(self.event_time, mask=~self.present).cast(pa.timestamp("us", tz="UTC"))
        data: dict[str, Any] = {
            "key": pa.array([str(k) for k in self.keys]),
            "present": pa.array(self.present),
            "event_time": event,
        }
        data.update(self.columns)
        return pa.table(data)


_OK = b"+OK\r\n"


def _read_ok_replies(connection: Any, count: int) -> str | None:
    """Read ``count`` replies to ``SET``; ``None`` if all were ``+OK``, else the first error.

    Parsing 10,000 identical ``+OK`` replies one by one costs more than building and sending
    the batch, so they are read as raw bytes from the socket and compared in one step. Any
    other reply (an error is longer than ``+OK``) leaves the stream out of step: the connection
    is dropped and the first error is reported.
    """
    sock = getattr(connection, "_sock", None)
    if sock is None or _parser_holds_data(getattr(connection, "_parser", None)):
        return _read_replies_parsed(connection, count)
    expected = len(_OK) * count
    received = bytearray(expected)
    view = memoryview(received)
    filled = 0
    while filled < expected:
        got = sock.recv_into(view[filled:], expected - filled)
        if got == 0:
            raise OSError("the server closed the connection while replying")
        filled += got
    if received == _OK * count:
        return None
    connection.disconnect()
    replies = np.frombuffer(received, dtype=np.uint8).reshape(count, len(_OK))
    first_bad = int((replies != np.frombuffer(_OK, dtype=np.uint8)).any(axis=1).argmax())
    error = bytes(received[first_bad * len(_OK) :]).split(b"\r\n", 1)[0]
    return error.decode(errors="replace").lstrip("-")


def _parser_holds_data(parser: Any) -> bool:
    """Whether redis-py's parser already buffered bytes the socket will not return again.

    The pure-Python parser keeps them in a ``SocketBuffer`` (``_buffer.unread_bytes()``);
    the hiredis parser in its ``hiredis.Reader`` (``_reader.has_data()``; its ``_buffer`` is
    only a scratch ``bytearray`` for ``recv_into``). Anything unknown counts as holding data,
    which only costs the slower parsed path.
    """
    if parser is None:
        return False
    buffer = getattr(parser, "_buffer", None)
    if buffer is not None and hasattr(buffer, "unread_bytes"):
        return bool(buffer.unread_bytes())
    reader = getattr(parser, "_reader", None)
    if reader is not None:
        has_data = getattr(reader, "has_data", None)
        return True if has_data is None else bool(has_data())
    return buffer is not None and not isinstance(buffer, bytearray)


def _read_replies_parsed(connection: Any, count: int) -> str | None:
    import redis

    failure: str | None = None
    for _ in range(count):
        try:
            connection.read_response()
        except redis.ResponseError as exc:
            failure = failure or str(exc)  # keep reading: the stream must stay in step
    return failure


def _utc(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None:
        return when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class OnlineStore:
    """Redis (standalone, TLS/AUTH through the URL) or Redis Cluster, one client per store."""

    def __init__(
        self, client: RedisClient, prefix: str = DEFAULT_PREFIX, *, url: str | None = None
    ) -> None:
        self.client = client
        self.keys = KeySpace(prefix)
        self.prefix = prefix
        # How executors reconnect (materialization ships the URL, never the client).
        self.url = url
        # Key ids never change once drawn, so each is read from Redis once per store.
        self._key_ids: dict[tuple[str, int], str] = {}

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> OnlineStore:
        from nbfeatures.online.connect import client_from_url

        return cls(client_from_url(url), prefix, url=url)

    @classmethod
    def from_settings(cls, settings: Settings) -> OnlineStore:
        """``settings.redis_url``, or the workspace's embedded server (started if needed)."""
        if settings.redis_url:
            return cls.from_url(settings.redis_url)
        from nbfeatures.online.embedded import ensure_embedded

        return cls.from_url(ensure_embedded(settings).url)

    # -- layouts and watermarks -------------------------------------------------------------

    def write_layout(self, layout: FamilyLayout) -> None:
        """Record a version's layout so readers decode its values without the catalog."""
        self.key_id(layout.family, layout.version, create=True, fresh=True)
        self.client.set(self.keys.layout(layout.family, layout.version), layout.to_json())

    def key_id(
        self, family: str, version: int, *, create: bool = False, fresh: bool = False
    ) -> str | None:
        """The short id in a version's value keys; drawn from the counter when ``create``.

        Two writers racing to create it agree: only the first ``SET NX`` wins and the other
        reads the winner's id (the counter value it drew is simply skipped). Ids are cached per
        store for reads; writers ask with ``fresh`` so that a flushed database, whose counter
        starts over, can never make them write under another version's id.
        """
        cached = self._key_ids.get((family, version))
        if cached is not None and not fresh:
            return cached
        name = self.keys.key_id(family, version)
        found = _text(self.client.get(name))
        if found is None and create:
            found = self._draw_key_id(name, f"{family} v{version}")
        if found is not None:
            self._key_ids[(family, version)] = found
        return found

    def _draw_key_id(self, name: str, where: str) -> str | None:
        import redis

        try:
            drawn = key_id_text(int(self.client.incr(self.keys.key_id_counter())))
            if self.client.set(name, drawn, nx=True):
                return drawn
        except redis.ResponseError as exc:
            raise OnlineStoreError(where, f"Redis refused a write: {exc}") from None
        return _text(self.client.get(name))

    def value_key(self, family: str, version: int, entity: str | int) -> str | None:
        """The Redis key of one entity's value (``None`` while the version has no key id)."""
        key_id = self.key_id(family, version)
        return None if key_id is None else self.keys.value(key_id, entity)

    def layout(self, family: str, version: int) -> FamilyLayout | None:
        raw = self.client.get(self.keys.layout(family, version))
        return None if raw is None else FamilyLayout.from_json(raw)

    def watermark(self, family: str, version: int) -> dt.datetime | None:
        raw = _text(self.client.get(self.keys.watermark(family, version)))
        return None if raw is None else dt.datetime.fromisoformat(raw)

    def set_watermark(self, family: str, version: int, when: dt.datetime) -> None:
        self.client.set(self.keys.watermark(family, version), _utc(when).isoformat())

    # -- values ----------------------------------------------------------------------------

    def write_rows(
        self, layout: FamilyLayout, batch: pa.RecordBatch, *, key_id: str | None = None
    ) -> int:
        """Write one value per row (the last row wins for a repeated entity); return how many.

        ``key_id`` is the version's key id when the caller already has it (materialization
        resolves it once on the driver); otherwise it is looked up, or drawn, in Redis.

        With a ttl, each key expires at event time + ttl (``PXAT``), and rows already past it
        are not written at all. The batch's wire bytes are built with Arrow kernels and sent as
        one pipeline on the connection of the node that owns the version's slot.
        """
        built = self._commands(layout, batch, key_id)
        if built is None:
            return 0
        payload, n, first_key, _ = built
        self._send_pipeline(self._node_client(first_key), payload, n, layout)
        return n

    def _commands(
        self, layout: FamilyLayout, batch: pa.RecordBatch, key_id: str | None
    ) -> tuple[memoryview, int, bytes, Any] | None:
        """The packed ``SET`` commands of a batch: payload, count, first key, owning array."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if batch.num_rows == 0:
            return None
        entity = batch.column(layout.entity_key)
        if entity.null_count:
            batch = batch.filter(entity.is_valid())
        expire_ms: np.ndarray | None = None
        if layout.ttl_seconds is not None:
            event_us = event_micros(batch.column(layout.timestamp), layout.family, layout.timestamp)
            expire_ms = event_us // 1000 + layout.ttl_seconds * 1000
            alive = expire_ms > int(time.time() * 1000)
            if not alive.all():
                batch = batch.filter(arrow_of(alive))
                expire_ms = expire_ms[alive]
        n = int(batch.num_rows)
        if n == 0:
            return None
        values = encode(layout, batch)
        if key_id is None:
            key_id = self.key_id(layout.family, layout.version, create=True, fresh=True)
        # Literals as Arrow scalars built from buffers: a Python str or bytes handed to a
        # compute function goes through ``pa.scalar``, which loads pandas into the writer.
        piece = binary_scalar
        tag = piece(self.keys.value_tag(key_id or "").encode())
        entity_text = batch.column(layout.entity_key).cast(pa.string()).cast(pa.binary())
        keys = pc.binary_join_element_wise(tag, entity_text, piece(b""))
        dollar, crlf = piece(b"$"), piece(b"\r\n")

        def bulk(array: pa.Array) -> list[Any]:
            """RESP bulk-string pieces: ``$<length>\\r\\n<bytes>\\r\\n``."""
            length = pc.binary_length(array).cast(pa.string()).cast(pa.binary())
            return [dollar, length, crlf, array, crlf]

        if expire_ms is None:
            parts = [piece(b"*3\r\n$3\r\nSET\r\n"), *bulk(keys), *bulk(values)]
        else:
            expiry = arrow_of(expire_ms).cast(pa.string()).cast(pa.binary())
            parts = [piece(b"*5\r\n$3\r\nSET\r\n"), *bulk(keys), *bulk(values)]
            parts += [piece(b"$4\r\nPXAT\r\n"), *bulk(expiry)]
        commands = pc.binary_join_element_wise(*parts, piece(b""))
        offsets = np.frombuffer(commands.buffers()[1], dtype=np.int32)
        start, end = int(offsets[commands.offset]), int(offsets[commands.offset + n])
        payload = memoryview(commands.buffers()[2])[start:end]
        return payload, n, keys[0].as_py(), commands

    def pipelined_writer(self, layout: FamilyLayout, key_id: str) -> PipelinedWriter:
        """A writer that keeps one batch in flight: see ``PipelinedWriter``."""
        return PipelinedWriter(self, layout, key_id)

    def _node_client(self, key: bytes | str) -> redis.Redis[Any]:
        """The client of the node owning ``key``'s slot (the store's client when standalone)."""
        import redis

        if isinstance(self.client, redis.RedisCluster):
            node = self.client.get_node_from_key(key)
            if node is None:
                raise OnlineStoreError(str(key), "no cluster node serves this key's slot")
            found: redis.Redis[Any] = self.client.get_redis_connection(node)
            return found
        return self.client

    @staticmethod
    def _send_pipeline(
        client: redis.Redis[Any], payload: memoryview, count: int, layout: FamilyLayout
    ) -> None:
        """Send ``count`` packed commands and check every reply; on error drop the connection."""
        import redis

        pool = client.connection_pool
        connection = pool.get_connection()
        where = f"{layout.family} v{layout.version}"
        try:
            connection.send_packed_command([payload], check_health=False)
            refusal = _read_ok_replies(connection, count)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            connection.disconnect()
            raise OnlineStoreError(where, f"writing values failed: {exc}") from None
        finally:
            pool.release(connection)
        if refusal is not None:
            raise OnlineStoreError(where, f"Redis refused a write: {refusal}")

    def read(
        self,
        layout: FamilyLayout,
        keys: Sequence[str | int],
        features: Collection[str] | None = None,
    ) -> OnlineRows:
        """Read one family version for many entities with a single ``MGET``.

        ``features`` limits the decoded columns to those (default: every feature).
        """
        wanted = tuple(keys)
        key_id = self.key_id(layout.family, layout.version) if wanted else None
        if key_id is not None:
            payloads: list[bytes | None] = self.client.mget(
                [self.keys.value(key_id, k) for k in wanted]
            )
        else:
            payloads = [None] * len(wanted)
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
        node = self._node_client(self.keys.value_tag(key_id))
        return node, node.scan_iter(match=self.keys.values_pattern(key_id), count=_SCAN_COUNT)

    def count_keys(self, family: str, version: int) -> int:
        """How many entities a version holds (``SCAN`` on the node owning its slot)."""
        _, keys = self._scan_version(family, version)
        return sum(1 for _ in keys)

    def delete_version(self, family: str, version: int) -> int:
        """Remove a version's values, layout and watermark; never the live version."""
        live = self.live_version(family)
        if live == version:
            raise OnlineStoreError(
                f"{family} v{version}", "is the live version; flip to another version first"
            )
        node, keys = self._scan_version(family, version)
        deleted = 0
        chunk: list[bytes] = []
        for key in keys:
            chunk.append(key)
            if len(chunk) >= _SCAN_COUNT:
                deleted += int(node.unlink(*chunk))
                chunk = []
        if chunk:
            deleted += int(node.unlink(*chunk))
        self.client.delete(self.keys.layout(family, version))
        self.client.delete(self.keys.watermark(family, version))
        return deleted

    def close(self) -> None:
        self.client.close()


class PipelinedWriter:
    """Writes batches on one connection with the previous batch's replies still unread.

    ``OnlineStore.write_rows`` sends a batch and waits for all its replies, so Redis idles
    while the caller reads and encodes the next one. Here batch k+1 is sent before the
    replies of batch k are read: Redis always has a batch to work on while this process
    reads its replies and encodes the next batch. The bytes sent are those of
    ``write_rows``. Use it as a context manager; leaving reads the last replies, and any
    refusal or connection error is raised as ``OnlineStoreError``.
    """

    def __init__(self, store: OnlineStore, layout: FamilyLayout, key_id: str) -> None:
        self.store = store
        self.layout = layout
        self.key_id = key_id
        self.where = f"{layout.family} v{layout.version}"
        self._pool: Any = None
        self._connection: Any = None
        self._unread = 0
        self.written = 0

    def __enter__(self) -> PipelinedWriter:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if kind is None:
            self._drain()
        elif self._connection is not None:
            self._connection.disconnect()  # replies still queued: the stream is out of step
        self._release()

    def write(self, batch: pa.RecordBatch) -> int:
        """Send ``batch``'s ``SET``s, then read the previous batch's replies; return its rows."""
        import redis

        built = self.store._commands(self.layout, batch, self.key_id)
        if built is None:
            return 0
        payload, n, first_key, _ = built
        if self._connection is None:
            client = self.store._node_client(first_key)
            self._pool = client.connection_pool
            self._connection = self._pool.get_connection()
        try:
            self._connection.send_packed_command([payload], check_health=False)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._connection.disconnect()
            raise OnlineStoreError(self.where, f"writing values failed: {exc}") from None
        self._drain()
        self._unread = n
        return n

    def _drain(self) -> None:
        import redis

        if not self._unread:
            return
        count, self._unread = self._unread, 0
        try:
            refusal = _read_ok_replies(self._connection, count)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._connection.disconnect()
            raise OnlineStoreError(self.where, f"writing values failed: {exc}") from None
        if refusal is not None:
            raise OnlineStoreError(self.where, f"Redis refused a write: {refusal}")
        self.written += count

    def _release(self) -> None:
        if self._connection is not None:
            self._pool.release(self._connection)
            self._connection = None
