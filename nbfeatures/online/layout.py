"""What the online store needs to know about a family version, and where its keys live.

Key layout (``prefix`` defaults to ``nbf:``; a ``{...}`` part is a Redis Cluster hash tag):

    nbf:{ID}<entity>             one value per entity: every feature plus the event time, in the
                                 binary format of ``nbfeatures.online.codec``. ``ID`` is the
                                 version's short key id (below) and ``<entity>`` the entity key
                                 as text. The hash tag puts all keys of one family version in
                                 one cluster slot, so reading a family for many entities is a
                                 single ``MGET`` on one node.
    nbf:{ID}<bucket>             instead, for a packed version: a Redis hash holding the values
                                 of several entities (``nbfeatures.online.packing``), read with
                                 one ``HMGET`` per entity in one pipeline on that node.
    nbf:kid:{family}:vN          the version's key id: a base-36 number drawn once from
                                 ``nbf:kid:next`` and never removed. The counter starts
                                 again at 1 when Redis loses its data, so an id can come to
                                 name another version: readers re-check the ids they cache
                                 and check ``nbf:own:{ID}`` on every read
    nbf:own:{ID}                 the version the key id ``ID`` was drawn for (``family:vN``),
                                 in the slot of its values: read with them, so that values
                                 are served only under the version they belong to
    nbf:kid:next                 the key id counter
    nbf:pack:{family}:vN         how the version's values are packed: ``keyed`` (one key per
                                 entity, as above) or the JSON of a
                                 ``nbfeatures.online.packing.Packing`` (entities grouped into
                                 Redis hashes ``nbf:{ID}<bucket>``; that module says why)
    nbf:layout:{family}:vN       this ``FamilyLayout`` as JSON: the server decodes values with it
                                 and needs no catalog
    nbf:wm:{family}:vN           the incremental-materialization watermark (ISO-8601, UTC)
    nbf:live:{family}            the production version number (the live pointer)
    nbf:history:{family}         previous live versions, newest first (rollback targets)

Value keys are kept short on purpose: a Redis string key costs its dictionary entry, its
object and its allocation, and an allocation is rounded up to a jemalloc size class (16, 32,
48... bytes). ``nbf:{7}1234567`` (14 bytes, a 1-byte header and a terminator) takes 16 bytes
where ``nbf:{family@v1}:1234567`` would take 48: 32 bytes of every entity's ~200.
The key id ends at ``}``, so no separator is needed before the entity.

The live pointer and the history share the ``{family}`` tag, so a flip that updates both is one
atomic script even on a cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbfeatures.config import DEFAULT_KEY_PREFIX
from nbfeatures.definitions import FeatureType, check_name
from nbfeatures.errors import DefinitionError

if TYPE_CHECKING:
    from nbfeatures.definitions import FeatureFamily


@dataclass(frozen=True)
class FamilyLayout:
    """The encoding-relevant part of a family version; JSON-serializable."""

    family: str
    version: int
    hash: str
    entity_key: str
    timestamp: str
    features: tuple[tuple[str, str], ...]
    ttl_seconds: int | None = None
    # How long past the ttl values are kept and served STALE; ``None``: the ttl again.
    retention_seconds: int | None = None

    def __post_init__(self) -> None:
        check_name(self.family, "layout.family")
        if not isinstance(self.version, int) or self.version < 1:
            raise DefinitionError("layout.version", f"{self.version!r} is not a version >= 1")
        if not self.features:
            raise DefinitionError("layout.features", "a layout needs at least one feature")
        pairs = tuple((str(name), FeatureType(kind).value) for name, kind in self.features)
        object.__setattr__(self, "features", pairs)
        if self.ttl_seconds is not None and self.ttl_seconds <= 0:
            raise DefinitionError("layout.ttl_seconds", "must be positive")
        if self.retention_seconds is not None and self.retention_seconds <= 0:
            raise DefinitionError("layout.retention_seconds", "must be positive")

    @classmethod
    def of(cls, family: FeatureFamily, version: int) -> FamilyLayout:
        """The layout of ``family`` registered as ``version``."""
        ttl = int(family.ttl.total_seconds()) if family.ttl is not None else None
        kept = family.retention
        return cls(
            family=family.name,
            version=version,
            hash=family.version_hash,
            entity_key=family.entity.join_key,
            timestamp=family.timestamp,
            features=tuple((f.name, f.dtype.value) for f in family.features),
            ttl_seconds=ttl,
            retention_seconds=int(kept.total_seconds()) if kept is not None else None,
        )

    @property
    def kept_seconds(self) -> int | None:
        """How long after its event time a value stays online: ttl + retention, else None.

        A value older than the ttl reads STALE; older than this it is gone (NOT_FOUND). Its
        Redis expiry is set to this age when written, and readers apply it too (a packed
        bucket lives as long as its newest member).
        """
        if self.ttl_seconds is None:
            return None
        retention = self.retention_seconds
        return self.ttl_seconds + (self.ttl_seconds if retention is None else retention)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.features)

    @property
    def feature_types(self) -> tuple[FeatureType, ...]:
        return tuple(FeatureType(kind) for _, kind in self.features)

    def to_json(self) -> str:
        return json.dumps(
            {
                "family": self.family,
                "version": self.version,
                "hash": self.hash,
                "entity_key": self.entity_key,
                "timestamp": self.timestamp,
                "features": [list(pair) for pair in self.features],
                "ttl_seconds": self.ttl_seconds,
                "retention_seconds": self.retention_seconds,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> FamilyLayout:
        data: dict[str, Any] = json.loads(text)
        try:
            return cls(
                family=data["family"],
                version=int(data["version"]),
                hash=data["hash"],
                entity_key=data["entity_key"],
                timestamp=data["timestamp"],
                features=tuple((str(n), str(t)) for n, t in data["features"]),
                ttl_seconds=data.get("ttl_seconds"),
                retention_seconds=data.get("retention_seconds"),
            )
        except KeyError as missing:
            raise DefinitionError(f"layout.{missing.args[0]}", "missing from the layout") from None


def key_id_text(number: int) -> str:
    """A key id counter value as base-36 text (``1`` -> ``"1"``, ``36`` -> ``"10"``)."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text


@dataclass(frozen=True)
class KeySpace:
    """Builds every key of the layout above for one prefix."""

    prefix: str = DEFAULT_KEY_PREFIX

    def value_tag(self, key_id: str) -> str:
        """The common start of every value key of the version with ``key_id`` (its hash tag)."""
        return f"{self.prefix}{{{key_id}}}"

    def value(self, key_id: str, entity: str | int) -> str:
        return f"{self.value_tag(key_id)}{entity}"

    def values_pattern(self, key_id: str) -> str:
        """A ``SCAN MATCH`` pattern for one version's values (key ids are ``[0-9a-z]``)."""
        return f"{self.value_tag(key_id)}*"

    def key_id(self, family: str, version: int) -> str:
        """Where a version's key id is recorded."""
        return f"{self.prefix}kid:{{{family}}}:v{version}"

    def packing(self, family: str, version: int) -> str:
        """Where a version's packing is recorded (written before its layout, never changed)."""
        return f"{self.prefix}pack:{{{family}}}:v{version}"

    def owner(self, key_id: str) -> str:
        """Which version a key id was drawn for (``owner_text``), in the slot of its values.

        Written before the version's key id record and values, and read with every read of
        values: a reader serves them only when it names the version asked for (a data loss
        restarts the key id counter, so an id cached by a reader may have been drawn again).
        """
        return f"{self.prefix}own:{{{key_id}}}"

    @staticmethod
    def owner_text(family: str, version: int) -> str:
        return f"{family}:v{version}"

    def key_id_counter(self) -> str:
        return f"{self.prefix}kid:next"

    def layout(self, family: str, version: int) -> str:
        return f"{self.prefix}layout:{{{family}}}:v{version}"

    def version_records(self, family: str, version: int) -> tuple[str, str, str]:
        """What a reader needs of a version, in one slot: its key id, packing and layout.

        Readers cache them and re-read them together (``nbfeatures.serving.records``): after
        a data loss the key id counter starts again, so a cached key id may come to name
        another version's values.
        """
        return (
            self.key_id(family, version),
            self.packing(family, version),
            self.layout(family, version),
        )

    def watermark(self, family: str, version: int) -> str:
        return f"{self.prefix}wm:{{{family}}}:v{version}"

    def live(self, family: str) -> str:
        return f"{self.prefix}live:{{{family}}}"

    def history(self, family: str) -> str:
        return f"{self.prefix}history:{{{family}}}"

    def live_pattern(self) -> str:
        return f"{self.prefix}live:*"

    def family_of_live_key(self, key: str) -> str:
        """``nbf:live:{name}`` -> ``name``."""
        return key[len(self.prefix) + len("live:") :].strip("{}")
