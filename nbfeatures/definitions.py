"""What a feature is: entities, sources, features, families, references and version identity.

Everything here is a frozen, typed value validated when it is built; a bad field raises
``DefinitionError`` naming the field. The only other module of ours imported is ``errors``,
a leaf, so magics, Spark, the catalog and serving can all take these objects without cycles.

A family's *version identity* is a hash of its semantic fields (normalized transformation
text, sources, entity, timestamp column, feature names and types). Owner, description, tags,
ttl, retention and freshness are metadata: changing them never makes a new version. The ttl
is how old a served value may be before it is STALE; it does not change what is computed
(point-in-time joins apply the catalog's current ttl when a training set is built), so a new
ttl needs no new version, only the online layouts rewritten (``nbfeatures set``).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nbfeatures.errors import DefinitionError

# \Z, not $: "$" also matches before a trailing newline, which would let "name\n" through.
# [0-9], not \d: \d also matches other scripts' digits ("٧d").
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")
_DURATION_PATTERN = re.compile(r"\s*([0-9]+)\s*([smhdw])\s*\Z", re.ASCII)
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Durations end up as microseconds in 64-bit integers (Arrow, Redis layouts): keep them far
# below that limit (about 292 years).
MAX_DURATION = dt.timedelta(days=36500)
# The definition format written to the catalog; bump it when the YAML layout changes.
SCHEMA_VERSION = 1


def check_name(value: str, field_name: str) -> str:
    """Return ``value`` if it is a valid identifier for families, features and entities."""
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise DefinitionError(
            field_name,
            f"{value!r} is not a valid name: use 1-63 lowercase letters, digits and "
            "underscores, starting with a letter",
        )
    return value


def parse_duration(text: str | dt.timedelta | None, field_name: str) -> dt.timedelta | None:
    """Parse ``30s``, ``15m``, ``1h``, ``7d`` or ``2w`` into a positive timedelta."""
    if text is None or isinstance(text, dt.timedelta):
        if isinstance(text, dt.timedelta) and text <= dt.timedelta(0):
            raise DefinitionError(field_name, "must be positive")
        if isinstance(text, dt.timedelta) and text > MAX_DURATION:
            raise DefinitionError(field_name, f"{format_duration(text)} is longer than 36500d")
        return text
    match = _DURATION_PATTERN.match(str(text))
    if not match:
        raise DefinitionError(
            field_name, f"{text!r} is not a duration; write a number and a unit s, m, h, d or w"
        )
    amount = int(match.group(1))
    if amount == 0:
        raise DefinitionError(field_name, "must be positive")
    try:
        value = dt.timedelta(**{_DURATION_UNITS[match.group(2)]: amount})
    except OverflowError:  # past timedelta's own limit of 999999999 days
        value = None
    if value is None or value > MAX_DURATION:
        raise DefinitionError(field_name, f"{text!r} is longer than 36500d (100 years)")
    return value


def format_duration(value: dt.timedelta | None) -> str | None:
    """Render a timedelta in the largest unit that divides it exactly (the inverse of parse)."""
    if value is None:
        return None
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class FeatureType(enum.StrEnum):
    """The value types a feature may have; each maps to one Spark, Arrow and wire type."""

    INT32 = "int32"
    INT64 = "int64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"
    BOOL = "bool"
    TIMESTAMP = "timestamp"

    @classmethod
    def from_spark(cls, spark_type: str, column: str) -> FeatureType:
        """Map a Spark ``simpleString`` type to a FeatureType, or refuse it by name."""
        mapped = _SPARK_TYPES.get(spark_type.lower())
        if mapped is None:
            raise DefinitionError(
                f"features.{column}",
                f"type {spark_type} is not supported; supported Spark types are "
                + ", ".join(sorted(_SPARK_TYPES)),
            )
        return mapped

    @property
    def is_numeric(self) -> bool:
        return self in (
            FeatureType.INT32,
            FeatureType.INT64,
            FeatureType.FLOAT32,
            FeatureType.FLOAT64,
        )


_SPARK_TYPES: dict[str, FeatureType] = {
    "int": FeatureType.INT32,
    "smallint": FeatureType.INT32,
    "tinyint": FeatureType.INT32,
    "bigint": FeatureType.INT64,
    "float": FeatureType.FLOAT32,
    "double": FeatureType.FLOAT64,
    "string": FeatureType.STRING,
    "boolean": FeatureType.BOOL,
    "timestamp": FeatureType.TIMESTAMP,
    "timestamp_ntz": FeatureType.TIMESTAMP,
}


@dataclass(frozen=True)
class Entity:
    """What features describe, e.g. ``Entity("user", "user_id")``."""

    name: str
    join_key: str

    def __post_init__(self) -> None:
        check_name(self.name, "entity.name")
        check_name(self.join_key, "entity.join_key")


class SourceFormat(enum.StrEnum):
    PARQUET = "parquet"
    CSV = "csv"
    TABLE = "table"


@dataclass(frozen=True)
class Source:
    """A named input the transformation reads: a Parquet/CSV path or a Spark table."""

    name: str
    location: str
    format: SourceFormat
    timestamp: str | None = None

    def __post_init__(self) -> None:
        check_name(self.name, "source.name")
        if not self.location or not self.location.strip():
            raise DefinitionError(f"sources.{self.name}.location", "must not be empty")
        object.__setattr__(self, "format", SourceFormat(self.format))
        if self.timestamp is not None:
            check_name(self.timestamp, f"sources.{self.name}.timestamp")

    @classmethod
    def infer(cls, name: str, location: str, timestamp: str | None = None) -> Source:
        """Build a source, taking the format from the location's suffix (else a table)."""
        lowered = location.lower().rstrip("/")
        if lowered.endswith(".csv"):
            fmt = SourceFormat.CSV
        elif lowered.endswith(".parquet") or "/" in lowered or lowered.startswith("gs:"):
            fmt = SourceFormat.PARQUET
        else:
            fmt = SourceFormat.TABLE
        return cls(name=name, location=location, format=fmt, timestamp=timestamp)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "location": self.location,
            "format": self.format.value,
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True)
class Feature:
    """One named, typed column of a family."""

    name: str
    dtype: FeatureType
    description: str = ""

    def __post_init__(self) -> None:
        check_name(self.name, "features.name")
        try:
            object.__setattr__(self, "dtype", FeatureType(self.dtype))
        except ValueError:
            raise DefinitionError(
                f"features.{self.name}.dtype",
                f"{self.dtype!r} is not supported; use one of "
                + ", ".join(t.value for t in FeatureType),
            ) from None


class TransformationKind(enum.StrEnum):
    SQL = "sql"
    PYTHON = "python"


@dataclass(frozen=True)
class Transformation:
    """The body of a ``%%feature`` cell: Spark SQL, or Python defining one function."""

    kind: TransformationKind
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", TransformationKind(self.kind))
        if not self.text or not self.text.strip():
            raise DefinitionError("transformation", "the cell body is empty")

    @property
    def normalized(self) -> str:
        """The text that identity hashes: formatting and comments do not make a new version."""
        if self.kind is TransformationKind.SQL:
            return normalize_sql(self.text)
        return normalize_python(self.text)


def normalize_sql(text: str) -> str:
    """Drop comments and collapse whitespace outside quoted strings and identifiers."""
    out: list[str] = []
    i, n = 0, len(text)
    pending_space = False
    while i < n:
        ch = text[i]
        if ch in ("'", '"', "`"):
            end = i + 1
            while end < n and text[end] != ch:
                end += 2 if text[end] == "\\" else 1
            if pending_space and out:
                out.append(" ")
            pending_space = False
            out.append(text[i : end + 1])
            i = end + 1
        elif text.startswith("--", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
            pending_space = True
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = n if close < 0 else close + 2
            pending_space = True
        elif ch.isspace():
            pending_space = True
            i += 1
        else:
            if pending_space and out:
                out.append(" ")
            pending_space = False
            out.append(ch)
            i += 1
    return "".join(out).rstrip(";").strip()


def normalize_python(text: str) -> str:
    """Dedent, strip trailing whitespace and blank edge lines; indentation is meaning."""
    lines = [line.rstrip() for line in textwrap.dedent(text).splitlines()]
    return "\n".join(lines).strip("\n")


@dataclass(frozen=True)
class Deprecation:
    """Why a family is deprecated, what replaces it, and when new work must stop using it."""

    reason: str
    replacement: str | None = None
    sunset: dt.date | None = None

    def __post_init__(self) -> None:
        if not self.reason or not self.reason.strip():
            raise DefinitionError("deprecation.reason", "say why the family is deprecated")

    def is_past_sunset(self, today: dt.date) -> bool:
        return self.sunset is not None and today > self.sunset


@dataclass(frozen=True)
class FeatureFamily:
    """A named set of features computed together by one transformation, keyed by an entity."""

    name: str
    entity: Entity
    timestamp: str
    features: tuple[Feature, ...]
    transformation: Transformation
    sources: tuple[Source, ...] = ()
    owner: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    ttl: dt.timedelta | None = None
    freshness: dt.timedelta | None = None
    on_demand: bool = False
    # How long past its ttl a value is still kept online and served STALE (default: the ttl
    # again); past ttl + retention it is gone (NOT_FOUND). Only meaningful with a ttl.
    retention: dt.timedelta | None = None
    # On-demand families only: the features their function reads (``family:feature`` text)
    # and the typed fields each request (or training spine row) supplies.
    inputs: tuple[str, ...] = ()
    request: tuple[Feature, ...] = ()

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        check_name(self.timestamp, "timestamp")
        if not self.owner or not self.owner.strip():
            raise DefinitionError(
                "owner",
                "a family needs an owner; pass --owner or set `owner` in nbfeatures.yaml",
            )
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "tags", tuple(sorted({t.strip() for t in self.tags if t.strip()})))
        object.__setattr__(self, "ttl", parse_duration(self.ttl, "ttl"))
        object.__setattr__(self, "freshness", parse_duration(self.freshness, "freshness"))
        object.__setattr__(self, "retention", parse_duration(self.retention, "retention"))
        if self.retention is not None and self.ttl is None:
            raise DefinitionError(
                "retention", "a retention window extends the ttl; set --ttl as well"
            )
        if not self.features:
            raise DefinitionError("features", "a family needs at least one feature column")
        seen: set[str] = set()
        reserved = {self.entity.join_key, self.timestamp}
        for feature in self.features:
            if feature.name in seen:
                raise DefinitionError("features", f"duplicate feature name {feature.name!r}")
            if feature.name in reserved:
                raise DefinitionError(
                    "features", f"{feature.name!r} is the entity key or timestamp, not a feature"
                )
            seen.add(feature.name)
        source_names = [s.name for s in self.sources]
        if len(set(source_names)) != len(source_names):
            raise DefinitionError("sources", "duplicate source names")
        self._check_on_demand()

    def _check_on_demand(self) -> None:
        """Inputs and request fields belong to on-demand families, which run Python."""
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "request", tuple(self.request))
        if not self.on_demand:
            if self.inputs or self.request:
                raise DefinitionError(
                    "inputs" if self.inputs else "request",
                    "only an on-demand family reads input features and request fields",
                )
            return
        if self.transformation.kind is not TransformationKind.PYTHON:
            raise DefinitionError("transformation", "an on-demand family is a Python function")
        if not self.inputs and not self.request:
            raise DefinitionError("inputs", "an on-demand family needs inputs or request fields")
        for text in self.inputs:
            ref = FeatureRef.parse(text)
            if ref.is_wildcard or ref.family == self.name:
                raise DefinitionError(
                    "inputs", f"{text!r}: name one feature (not *) of another family"
                )
        if len(set(self.inputs)) != len(self.inputs):
            raise DefinitionError("inputs", "an input is listed twice")
        names = [field.name for field in self.request]
        if len(set(names)) != len(names):
            raise DefinitionError("request", "a request field is listed twice")

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def kept_for(self) -> dt.timedelta | None:
        """How long after its event time a value stays online: ttl + retention (default 2 x ttl)."""
        if self.ttl is None:
            return None
        return self.ttl + (self.retention if self.retention is not None else self.ttl)

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise DefinitionError("features", f"family {self.name!r} has no feature {name!r}")

    def semantic_fields(self) -> dict[str, Any]:
        """The fields that make a version; anything else is metadata."""
        fields: dict[str, Any] = {
            "transformation": {
                "kind": self.transformation.kind.value,
                "text": self.transformation.normalized,
            },
            "sources": sorted((s.to_dict() for s in self.sources), key=lambda s: s["name"]),
            "entity": {"name": self.entity.name, "join_key": self.entity.join_key},
            "timestamp": self.timestamp,
            "features": sorted([f.name, f.dtype.value] for f in self.features),
            "on_demand": self.on_demand,
        }
        if self.on_demand:  # only here, so batch families keep the hashes they always had
            fields["inputs"] = sorted(self.inputs)
            fields["request"] = sorted([f.name, f.dtype.value] for f in self.request)
        return fields

    @property
    def version_hash(self) -> str:
        """A stable hash of the semantic fields: same content, same hash, same version."""
        canonical = json.dumps(self.semantic_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """A plain, YAML-friendly form; ``from_dict`` rebuilds an equal family."""
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "entity": {"name": self.entity.name, "join_key": self.entity.join_key},
            "timestamp": self.timestamp,
            "features": [
                {"name": f.name, "dtype": f.dtype.value, "description": f.description}
                for f in self.features
            ],
            "transformation": {
                "kind": self.transformation.kind.value,
                "text": self.transformation.text,
            },
            "sources": [s.to_dict() for s in self.sources],
            "owner": self.owner,
            "description": self.description,
            "tags": list(self.tags),
            "ttl": format_duration(self.ttl),
            "freshness": format_duration(self.freshness),
            **({"retention": format_duration(self.retention)} if self.retention else {}),
            "on_demand": self.on_demand,
            **(
                {
                    "inputs": list(self.inputs),
                    "request": [{"name": f.name, "dtype": f.dtype.value} for f in self.request],
                }
                if self.on_demand
                else {}
            ),
            "hash": self.version_hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureFamily:
        try:
            return cls(
                name=data["name"],
                entity=Entity(**data["entity"]),
                timestamp=data["timestamp"],
                features=tuple(Feature(**f) for f in data["features"]),
                transformation=Transformation(**data["transformation"]),
                sources=tuple(Source(**s) for s in data.get("sources", [])),
                owner=data.get("owner", ""),
                description=data.get("description", ""),
                tags=tuple(data.get("tags", [])),
                ttl=parse_duration(data.get("ttl"), "ttl"),
                freshness=parse_duration(data.get("freshness"), "freshness"),
                retention=parse_duration(data.get("retention"), "retention"),
                on_demand=bool(data.get("on_demand", False)),
                inputs=tuple(data.get("inputs", [])),
                request=tuple(Feature(**f) for f in data.get("request", [])),
            )
        except KeyError as missing:
            raise DefinitionError(str(missing.args[0]), "missing from the definition") from None

    def with_metadata(
        self,
        owner: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        ttl: str | dt.timedelta | None = None,
        retention: str | dt.timedelta | None = None,
        freshness: str | dt.timedelta | None = None,
    ) -> FeatureFamily:
        """A copy with new metadata; its ``version_hash`` is unchanged by construction.

        ``None`` keeps a field as it is (metadata is changed, never cleared, here).
        """
        from dataclasses import replace

        return replace(
            self,
            owner=self.owner if owner is None else owner,
            description=self.description if description is None else description,
            tags=self.tags if tags is None else tuple(tags),
            ttl=self.ttl if ttl is None else parse_duration(ttl, "ttl"),
            retention=self.retention
            if retention is None
            else parse_duration(retention, "retention"),
            freshness=self.freshness
            if freshness is None
            else parse_duration(freshness, "freshness"),
        )


_REF_PATTERN = re.compile(
    r"(?P<family>[a-z][a-z0-9_]{0,62})(?:@v(?P<version>[1-9][0-9]*))?:(?P<feature>\*|[a-z][a-z0-9_]{0,62})\Z"
)


@dataclass(frozen=True)
class FeatureRef:
    """``family:feature`` (production version), ``family@v3:feature`` (pinned), ``family:*``."""

    family: str
    feature: str
    version: int | None = None
    _text: str = field(default="", compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> FeatureRef:
        match = _REF_PATTERN.match(text.strip()) if isinstance(text, str) else None
        if not match:
            raise DefinitionError(
                "reference",
                f"{text!r} is not a feature reference; write family:feature, "
                "family@v3:feature or family:*",
            )
        version = match.group("version")
        return cls(
            family=match.group("family"),
            feature=match.group("feature"),
            version=int(version) if version else None,
            _text=text.strip(),
        )

    @property
    def is_wildcard(self) -> bool:
        return self.feature == "*"

    def __str__(self) -> str:
        pinned = f"@v{self.version}" if self.version is not None else ""
        return f"{self.family}{pinned}:{self.feature}"


def parse_refs(refs: Iterable[str | FeatureRef]) -> list[FeatureRef]:
    """Parse many references, keeping their order and refusing duplicates."""
    parsed = [r if isinstance(r, FeatureRef) else FeatureRef.parse(r) for r in refs]
    seen: set[str] = set()
    for ref in parsed:
        if str(ref) in seen:
            raise DefinitionError("reference", f"{ref} is listed twice")
        seen.add(str(ref))
    return parsed


def parse_tags(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"a,b"`` or ``["a", "b"]`` to a sorted tuple of unique, stripped tags."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(sorted({t.strip() for t in items if t.strip()}))
