"""Packed values: several entities of a family version share one Redis hash (a bucket).

One Redis key per entity costs the key's dictionary entry, its object, its allocations and,
with a ttl, an entry in the expiry dictionary: ~120 bytes of bookkeeping around a 91-byte
value, more than the value itself. A version whose records have a fixed width (no string
features) therefore keeps its values in buckets instead::

    nbf:{ID}<bucket>   a Redis hash; field <entity text><chunk byte> holds chunk c of that
                       entity's record (``chunk`` bytes each, the last one shorter)

``<bucket>`` is ``bucket_of(entity text)``: FNV-1a over the text's UTF-8 bytes, spread by a
multiplicative (Fibonacci) step, top ``bits`` bits. The record is cut into chunks of at most
63 bytes because Redis keeps a small hash in its compact encoding (listpack, ziplist before
7.0) only while every field and value is at most ``hash-max-listpack-value`` (64 by default)
bytes and it holds at most ``hash-max-listpack-entries`` (128) fields: then an entity costs
its bytes plus a few per entry, and the bucket's bookkeeping is shared by ~10 entities.
``bits`` is chosen once per version from its entity count (``bits_for``), so a bucket holds
6-12 entities on average; with two chunks per record (up to 126 bytes: ten 8-byte features)
the fullest buckets stay under 128 fields even after incremental runs double the entities.
A bucket that outgrows the limits is converted by Redis to a plain hash table: still
correct, only larger.

Every chunk of an entity is written by one command and read by one ``HMGET``, so a reader
never sees half a record. With a ttl, a bucket expires at the newest expiry (event time +
ttl + retention) of its members (raised, never lowered, by each write: the ``WRITE_SCRIPT``
below, which runs on Redis 6.2 and later), so a member past ttl + retention may stay until
the bucket expires; reads judge each value by its own event time, so it is reported
NOT_FOUND all the same (and STALE between ttl and ttl + retention).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures.arrow_arrays import arrow_of, dense_numpy
from nbfeatures.definitions import FeatureType
from nbfeatures.errors import OnlineStoreError
from nbfeatures.online import resp

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa

    from nbfeatures.online.layout import FamilyLayout

# A value of 64 bytes needs a 2-byte entry header in a listpack; 63 bytes needs one.
CHUNK = 63
# Average entities per bucket aimed at: the bucket's ~120 bytes of bookkeeping are shared by
# 6-12 entities, and a bucket reaches 128 fields only far out in the tail even after the
# entity count doubles.
TARGET_PER_BUCKET = 12
MAX_BITS = 28
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_FIB = 0x9E3779B1
_MASK32 = 0xFFFFFFFF

# KEYS[1]: the bucket. ARGV[1]: its members' newest expiry (Unix ms) or "" for none; then
# field, value pairs. HSET takes them 500 pairs at a time (Lua's unpack has a stack limit).
# The expiry is only ever raised: PEXPIREAT's GT option would do it, but needs Redis 7.0.
WRITE_SCRIPT = """
local n = #ARGV
local i = 2
while i <= n do
  local j = math.min(i + 999, n)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
if ARGV[1] ~= '' then
  local left = redis.call('PTTL', KEYS[1])
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  if left < 0 or tonumber(ARGV[1]) > now_ms + left then
    redis.call('PEXPIREAT', KEYS[1], ARGV[1])
  end
end
return 1
"""
WRITE_SCRIPT_SHA = hashlib.sha1(WRITE_SCRIPT.encode()).hexdigest()
# What every packed write answers per bucket, and what SCRIPT LOAD answers first.
WRITE_REPLY = resp.integer(1)
LOAD_REPLY = resp.bulk(WRITE_SCRIPT_SHA.encode())
# Sent first in every packed batch, so the script is there even after a restart or a flush.
LOAD_COMMAND = resp.command(b"SCRIPT", b"LOAD", WRITE_SCRIPT.encode())
KEYED = "keyed"


@dataclass(frozen=True)
class Packing:
    """How a version's values are packed: ``2**bits`` buckets, records cut into ``chunks``."""

    bits: int
    chunks: int
    chunk: int = CHUNK

    def __post_init__(self) -> None:
        if not 0 <= self.bits <= MAX_BITS or self.chunks < 1 or not 1 <= self.chunk <= 64:
            raise ValueError(f"not a valid packing: {self!r}")

    @classmethod
    def for_width(cls, width: int, entities: int | None) -> Packing:
        return cls(bits=bits_for(entities), chunks=math.ceil(width / CHUNK))

    @property
    def buckets(self) -> int:
        return 1 << self.bits

    def to_json(self) -> str:
        return json.dumps({"bits": self.bits, "chunks": self.chunks, "chunk": self.chunk})

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "packing") -> Packing | None:
        """The recorded packing; ``None`` for a version recorded as one key per entity.

        ``where`` names the record in the error raised when it cannot be read.
        """
        raw = text.decode(errors="replace") if isinstance(text, bytes) else text
        if raw == KEYED:
            return None
        try:
            data: dict[str, Any] = json.loads(raw)
            return cls(bits=int(data["bits"]), chunks=int(data["chunks"]), chunk=int(data["chunk"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise OnlineStoreError(
                where, f"the packing record {raw[:80]!r} is not readable ({exc})"
            ) from None

    def fields(self, entity: bytes) -> list[bytes]:
        """The hash fields holding ``entity``'s chunks, in order."""
        return [entity + bytes((c,)) for c in range(self.chunks)]

    def bucket_key(self, tag: bytes, entity: bytes) -> bytes:
        return tag + b"%d" % bucket_of(entity, self.bits)


def packable(layout: FamilyLayout) -> bool:
    """Whether a layout's records have one width (no string features), so they can be packed."""
    return FeatureType.STRING not in layout.feature_types


def bits_for(entities: int | None) -> int:
    """Bucket bits for about ``entities`` entities: 6-12 entities per bucket on average.

    ``None`` (not known) gives 4,096 buckets, right for ~50,000 entities.
    """
    if entities is None:
        return 12
    wanted = max(1, math.ceil(entities / TARGET_PER_BUCKET))
    return min(MAX_BITS, max(0, math.ceil(math.log2(wanted))))


def bucket_of(entity: bytes, bits: int) -> int:
    """The bucket of one entity (its key as UTF-8 text); equal to ``buckets_of``."""
    h = _FNV_OFFSET
    for byte in entity:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK32
    return ((h * _FIB) & _MASK32) >> (32 - bits)


def buckets_of(entities: pa.Array | pa.ChunkedArray, bits: int) -> np.ndarray:
    """``bucket_of`` for every value of a binary or string array, in numpy (int64).

    One pass per byte position of the longest key (decimal ids: at most 20), each over the
    keys that are that long: no Python work per key.
    """
    import pyarrow as pa

    array = entities.cast(pa.large_binary())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    n = len(array)
    _, offsets_buffer, data_buffer = array.buffers()
    if n == 0 or offsets_buffer is None:
        return np.zeros(n, dtype=np.int64)
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset :][: n + 1]
    starts = offsets[:-1]
    lengths = np.diff(offsets)
    data = (
        np.zeros(1, dtype=np.uint8)
        if data_buffer is None
        else np.frombuffer(data_buffer, dtype=np.uint8)
    )
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    prime, mask = np.uint64(_FNV_PRIME), np.uint64(_MASK32)
    for place in range(int(lengths.max(initial=0))):
        longer = lengths > place
        if longer.all():
            h = ((h ^ data[starts + place]) * prime) & mask
        else:
            at = np.flatnonzero(longer)
            h[at] = ((h[at] ^ data[starts[at] + place]) * prime) & mask
    spread = (h * np.uint64(_FIB)) & mask
    return np.asarray(spread >> np.uint64(32 - bits), dtype=np.int64)


def joined(replies: Sequence[Sequence[bytes | None]]) -> list[bytes | None]:
    """``HMGET`` answers (one list of chunks per entity) as whole records (``None``: absent)."""
    out: list[bytes | None] = []
    for chunks in replies:
        if len(chunks) == 1:
            out.append(chunks[0])
        elif any(c is None for c in chunks):
            # Every chunk is written by one command, so one missing means the entity is.
            out.append(None)
        else:
            out.append(b"".join(chunks))  # type: ignore[arg-type]
    return out


def read_commands(packing: Packing, tag: bytes, entities: Sequence[bytes]) -> bytes:
    """The RESP bytes of one ``HMGET`` per entity, ready to be written to a connection."""
    parts = []
    # The command's head and each field's length prefix are the same for every entity's
    # chunks: built once, not per chunk.
    count = resp.array_head(packing.chunks + 2) + resp.bulk(b"HMGET")
    bulk, bulk_head, crlf, chunks = resp.bulk, resp.bulk_head, resp.CRLF, range(packing.chunks)
    for entity in entities:
        parts.append(count)
        parts.append(bulk(packing.bucket_key(tag, entity)))
        width = bulk_head(len(entity) + 1)
        for c in chunks:
            parts.append(width + entity + bytes((c,)) + crlf)
    return b"".join(parts)


@dataclass(frozen=True)
class PackedCommands:
    """A batch's packed writes: the RESP bytes and how many buckets (replies) they touch."""

    parts: list[bytes | memoryview]
    buckets: int
    first_key: bytes
    owner: Any  # the Arrow array ``payload`` points into


def write_commands(
    packing: Packing,
    tag: bytes,
    entities: pa.Array,
    values: pa.Array,
    width: int,
    expire_ms: np.ndarray | None,
) -> PackedCommands:
    """``SCRIPT LOAD`` then one ``EVALSHA WRITE_SCRIPT`` per bucket of the batch, as bytes.

    ``entities`` is the entity keys as text (binary), ``values`` the encoded records (all of
    ``width`` bytes each), ``expire_ms`` each row's expiry or ``None`` without a ttl. The rows are
    grouped by bucket with one stable sort; everything else is Arrow kernels over the whole
    batch, no Python work per row. A repeated entity's last row wins (HSET order).
    """
    import pyarrow.compute as pc

    n = len(entities)
    bucket = buckets_of(entities, packing.bits)
    order = np.argsort(bucket, kind="stable")
    bucket = bucket[order]
    take = arrow_of(order)
    entities = pc.take(entities, take)
    values = pc.take(values, take)
    first = np.ones(n, dtype=bool)
    first[1:] = bucket[1:] != bucket[:-1]
    starts = np.flatnonzero(first)
    sizes = np.diff(np.append(starts, n))

    def text(numbers: np.ndarray | pa.Array) -> pa.Array:
        return resp.as_text(arrow_of(numbers) if isinstance(numbers, np.ndarray) else numbers)

    piece, bulk = resp.literal, resp.bulk_columns
    keys = pc.binary_join_element_wise(piece(tag), text(bucket), piece(b""))
    arguments = 5 + 2 * packing.chunks * np.repeat(sizes, sizes)
    call = resp.bulk(b"EVALSHA") + resp.bulk(WRITE_SCRIPT_SHA.encode()) + resp.bulk(b"1")
    header = [piece(b"*"), text(arguments), piece(resp.CRLF + call), *bulk(keys)]
    if expire_ms is None:
        header.append(piece(resp.bulk(b"")))
    else:
        newest = np.maximum.reduceat(expire_ms[order], starts)
        header += bulk(text(np.repeat(newest, sizes)))
    empty = piece(b"")
    heads = pc.if_else(arrow_of(first), pc.binary_join_element_wise(*header, empty), empty)
    field_length = text(dense_numpy(pc.binary_length(entities)).astype(np.int64) + 1)
    body: list[Any] = []
    for c in range(packing.chunks):
        field = pc.binary_join_element_wise(entities, piece(bytes((c,))), empty)
        start, stop = c * packing.chunk, min((c + 1) * packing.chunk, width)
        chunk = pc.binary_slice(values, start, stop)
        body += bulk(field, field_length) + bulk(chunk, piece(b"%d" % (stop - start)))
    body_bytes, commands = resp.joined([heads, *body], n)
    return PackedCommands([LOAD_COMMAND, body_bytes], int(starts.size), keys[0].as_py(), commands)
