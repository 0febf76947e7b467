"""One family version as Redis holds it: its keys, read and write commands, and their replies.

A version's values live one key per entity (``keyed``: ``nbf:{ID}<entity>``, read with one
``MGET``, written with ``SET``) or several entities to a Redis hash (``packed``, see
``nbfeatures.online.packing``: one ``HMGET`` per entity, one script call per bucket). Which
of the two is recorded once per version (``nbf:pack:...``) and decided here, once: the store,
the serving lookups and the pipelined writer go through ``StoredVersion`` and never branch on
it themselves. Every read also reads the key id's owner record (same slot, same round trip)
so that values are served only under their own version.

The bytes are those of ``codec`` (values) and ``resp`` (commands). The native front
(``native/src``) reads the same bytes with its own C++ decoder: ``tests/golden/stored_version``
holds the exact keys, fields and values of a few cases, and this module, the Python server
and the native front are all tested against them, which keeps the two in step.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures.arrow_arrays import arrow_of, event_micros
from nbfeatures.online import resp
from nbfeatures.online.codec import (
    DecodedColumns,
    RecordShape,
    decode_columns,
    encode,
)
from nbfeatures.online.layout import FamilyLayout, KeySpace
from nbfeatures.online.packing import (
    KEYED,
    LOAD_REPLY,
    WRITE_REPLY,
    Packing,
    joined,
    packable,
    read_commands,
    write_commands,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["BuiltBatch", "StoredKeys", "StoredVersion", "Writable", "packing_record", "writable"]


@dataclass(frozen=True)
class BuiltBatch:
    """A batch's write commands: the bytes, the rows they write and the replies they expect.

    Every reply is known in advance: ``head`` once, then ``unit`` per command.
    """

    parts: list[bytes | memoryview]
    rows: int
    commands: int
    head: bytes
    unit: bytes
    owner: Any  # what ``parts`` point into, kept alive until they are sent


@dataclass(frozen=True)
class Writable:
    """A batch's rows to write: entity keys as text, encoded values, expiries (Unix ms)."""

    rows: int
    entities: pa.Array
    values: pa.Array
    expire_ms: np.ndarray | None


def writable(layout: FamilyLayout, batch: pa.RecordBatch) -> Writable | None:
    """The rows of ``batch`` to write, encoded; ``None`` when none is left.

    Rows without an entity are dropped. With a ttl each value expires at event time + ttl +
    retention (a packed bucket at its newest member's): rows already past it are dropped.
    Needs nothing from Redis, so a batch with nothing to write never draws a key id.
    """
    import pyarrow as pa

    if batch.num_rows == 0:
        return None
    entity = batch.column(layout.entity_key)
    if entity.null_count:
        batch = batch.filter(entity.is_valid())
    expire_ms: np.ndarray | None = None
    kept = layout.kept_seconds
    if kept is not None:
        event_us = event_micros(batch.column(layout.timestamp), layout.family, layout.timestamp)
        expire_ms = event_us // 1000 + kept * 1000
        alive = expire_ms > int(time.time() * 1000)
        if not alive.all():
            batch = batch.filter(arrow_of(alive))
            expire_ms = expire_ms[alive]
    n = int(batch.num_rows)
    if n == 0:
        return None
    values = encode(layout, batch)
    entities = batch.column(layout.entity_key).cast(pa.string()).cast(pa.binary())
    return Writable(n, entities, values, expire_ms)


def packing_record(layout: FamilyLayout, entities: int | None) -> str:
    """The packing a new version gets (``nbf:pack:...``): records of one width (no strings)
    are packed into buckets sized for about ``entities`` entities, others are keyed."""
    if not packable(layout):
        return KEYED
    return Packing.for_width(RecordShape.of(layout).width, entities).to_json()


@dataclass(frozen=True)
class StoredKeys:
    """Where a version's values are and how to read them: all a reader needs but the layout.

    ``packing`` is ``None`` for one key per entity. Entities are given as their key's text
    (UTF-8 bytes), as they appear in keys and hash fields.
    """

    family: str
    version: int
    packing: Packing | None
    # The start of every value key (``KeySpace.value_tag``: its hash tag picks the node).
    tag: bytes
    # The key id's owner record and the text it must hold (``KeySpace.owner``).
    owner_key: bytes
    owner: bytes

    @classmethod
    def of(
        cls, keys: KeySpace, family: str, version: int, key_id: str, packing: Packing | None
    ) -> StoredKeys:
        return cls(
            family=family,
            version=version,
            packing=packing,
            tag=keys.value_tag(key_id).encode(),
            owner_key=keys.owner(key_id).encode(),
            owner=keys.owner_text(family, version).encode(),
        )

    @property
    def where(self) -> str:
        return f"{self.family} v{self.version}"

    # -- keys ---------------------------------------------------------------------------------

    def value_key(self, entity: bytes) -> bytes:
        """The key holding ``entity``'s value (for a packed version, its shared bucket)."""
        if self.packing is None:
            return self.tag + entity
        return self.packing.bucket_key(self.tag, entity)

    def entity_fields(self, entity: bytes) -> list[bytes] | None:
        """The hash fields of ``entity``'s chunks in its bucket; ``None`` when keyed."""
        return None if self.packing is None else self.packing.fields(entity)

    # -- reads --------------------------------------------------------------------------------

    def read_wire(self, entities: Sequence[bytes]) -> tuple[bytes, int]:
        """The RESP bytes reading ``entities`` and the owner record, and how many replies they
        get (0: one reply, the ``MGET``'s); ``payloads`` reads the reply or replies."""
        if self.packing is None:
            return resp.command(b"MGET", self.owner_key, *[self.tag + e for e in entities]), 0
        wire = resp.command(b"GET", self.owner_key)
        return wire + read_commands(self.packing, self.tag, entities), len(entities) + 1

    def queue_reads(self, pipeline: Any, entities: Sequence[bytes]) -> None:
        """Queue the reads of ``read_wire`` on a redis-py pipeline (blocking or asyncio)."""
        if self.packing is None:
            pipeline.mget([self.owner_key, *[self.tag + e for e in entities]])
            return
        pipeline.get(self.owner_key)
        for entity in entities:
            pipeline.hmget(self.packing.bucket_key(self.tag, entity), self.packing.fields(entity))

    def payloads(self, replies: Sequence[Any]) -> list[bytes | None] | None:
        """The records in the replies to ``read_wire`` (or ``queue_reads``'s pipeline), one per
        entity, ``None`` where absent; ``None`` for all when the owner record names another
        version (its key id was drawn again after a data loss: nothing read is this one's).

        A keyed read has one reply, the ``MGET``'s list (a pipeline's: a list of that list).
        """
        payloads: list[bytes | None]
        if self.packing is None:
            got: Any = replies[0] if replies and isinstance(replies[0], list) else replies
            recorded, payloads = got[0], got[1:]
        else:
            recorded, payloads = replies[0], joined(replies[1:])
        if not owned(recorded, self.owner):
            return None
        return payloads

    def fetch(self, client: Any, entities: Sequence[bytes]) -> Any:
        """The replies to the reads of ``entities`` from a blocking redis-py client (one round
        trip), for ``payloads``."""
        if self.packing is None:  # one command: no pipeline to build
            return client.mget([self.owner_key, *[self.tag + e for e in entities]])
        pipe = client.pipeline(transaction=False)
        self.queue_reads(pipe, entities)
        return pipe.execute()

    async def fetch_async(self, client: Any, entities: Sequence[bytes]) -> Any:
        """``fetch`` with a ``redis.asyncio`` client."""
        if self.packing is None:
            return await client.mget([self.owner_key, *[self.tag + e for e in entities]])
        pipe = client.pipeline(transaction=False)
        self.queue_reads(pipe, entities)
        return await pipe.execute()

    def read(self, client: Any, entities: Sequence[bytes]) -> list[bytes | None]:
        """The records of ``entities`` from a blocking client, ``None`` where absent (all
        absent when the owner record names another version)."""
        if not entities:
            return []
        found = self.payloads(self.fetch(client, entities))
        return [None] * len(entities) if found is None else found

    def delete(self, client: Any, entity: bytes) -> bool:
        """Remove one entity's value; whether there was one."""
        key = self.value_key(entity)
        if self.packing is None:
            return bool(client.delete(key))
        return bool(client.hdel(key, *self.packing.fields(entity)))


@dataclass(frozen=True)
class StoredVersion(StoredKeys):
    """A version's stored form: its keys (``StoredKeys``) and its layout, which its values'
    bytes follow (``codec``): what writers build commands with and readers decode with."""

    layout: FamilyLayout = field(kw_only=True)

    @classmethod
    def at(
        cls, keys: KeySpace, layout: FamilyLayout, key_id: str, packing: Packing | None
    ) -> StoredVersion:
        found = StoredKeys.of(keys, layout.family, layout.version, key_id, packing)
        return cls(**{f.name: getattr(found, f.name) for f in fields(StoredKeys)}, layout=layout)

    @functools.cached_property
    def shape(self) -> RecordShape:
        return RecordShape.of(self.layout)

    def decode(
        self, payloads: Sequence[bytes | None], only: Collection[str] | None = None
    ) -> DecodedColumns:
        """Records read (``payloads``) as numpy columns (``codec.decode_columns``)."""
        return decode_columns(self.shape, payloads, only, self.where)

    # -- writes -------------------------------------------------------------------------------

    def write_batch(self, batch: pa.RecordBatch) -> BuiltBatch | None:
        """The write commands of ``batch``'s rows and the replies they will get; ``None`` when
        nothing is left to write (see ``writable``)."""
        rows = writable(self.layout, batch)
        return None if rows is None else self.write_commands(rows)

    def write_commands(self, rows: Writable) -> BuiltBatch:
        """Keyed: one ``SET key value [PXAT expiry]`` per row; packed: ``SCRIPT LOAD`` and one
        script call per bucket. Built with Arrow kernels over the whole batch."""
        import pyarrow.compute as pc

        n, values, expire_ms = rows.rows, rows.values, rows.expire_ms
        if self.packing is not None:
            width = self.shape.width
            packed = write_commands(self.packing, self.tag, rows.entities, values, width, expire_ms)
            return BuiltBatch(
                packed.parts, n, packed.buckets, LOAD_REPLY, WRITE_REPLY, packed.owner
            )
        piece, bulk = resp.literal, resp.bulk_columns
        keys = pc.binary_join_element_wise(piece(self.tag), rows.entities, piece(b""))
        if expire_ms is None:
            parts = [piece(resp.array_head(3) + resp.bulk(b"SET")), *bulk(keys), *bulk(values)]
        else:
            expiry = resp.as_text(arrow_of(expire_ms))
            parts = [piece(resp.array_head(5) + resp.bulk(b"SET")), *bulk(keys), *bulk(values)]
            parts += [piece(resp.bulk(b"PXAT")), *bulk(expiry)]
        payload, commands = resp.joined(parts, n)
        return BuiltBatch([payload], n, n, b"", resp.OK_REPLY, commands)


def owned(recorded: bytes | None, owner: bytes) -> bool:
    """Whether values read with the owner record ``recorded`` belong to the version ``owner``.

    No record: a key id drawn before owner records were (a key id drawn since has its record
    written before any value, so values never lack it).
    """
    return recorded is None or recorded == owner
