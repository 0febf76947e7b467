"""What the catalog returns, and how it is written into MLflow tags.

These values are plain frozen dataclasses and import no MLflow, so callers can type against
them cheaply. The tag layout below is the contract with the MLflow UI:

* registered model ``{prefix}{family}``: tags ``owner``, ``description``, ``tags``
  (comma-joined), ``ttl``, ``retention`` and ``freshness`` (durations like ``7d``; empty for
  none; absent on families registered before they were metadata: then each version's own
  definition says), ``deprecation.reason``, ``deprecation.replacement``,
  ``deprecation.sunset`` (ISO date) and ``status`` (the family-level status);
* model version: tags ``family``, ``version``, ``hash``, ``owner``, ``status``, plus
  ``nbfeatures.definition`` (the definition as JSON) and ``nbfeatures.stats`` (the preview
  statistics as JSON) so listing and history need no artifact downloads.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nbfeatures.definitions import (
    Deprecation,
    FeatureFamily,
    format_duration,
    parse_duration,
    parse_tags,
)

STATUS_DRAFT = "draft"
STATUS_PRODUCTION = "production"
STATUS_DEPRECATED = "deprecated"
PRODUCTION_ALIAS = "production"

# Registered-model tags (current metadata).
TAG_KIND = "nbfeatures.kind"
KIND_FAMILY = "family"
TAG_OWNER = "owner"
TAG_DESCRIPTION = "description"
TAG_TAGS = "tags"
TAG_TTL = "ttl"
TAG_RETENTION = "retention"
TAG_FRESHNESS = "freshness"
# The durations that are family metadata (serving settings), not part of a version.
DURATION_TAGS = (TAG_TTL, TAG_RETENTION, TAG_FRESHNESS)
TAG_STATUS = "status"
TAG_DEPRECATION_REASON = "deprecation.reason"
TAG_DEPRECATION_REPLACEMENT = "deprecation.replacement"
TAG_DEPRECATION_SUNSET = "deprecation.sunset"

# Model-version tags (what was registered).
TAG_FAMILY = "family"
TAG_VERSION = "version"
TAG_HASH = "hash"
TAG_DEFINITION = "nbfeatures.definition"
TAG_STATS = "nbfeatures.stats"
TAG_STATS_ARTIFACT = "nbfeatures.stats_artifact"

# MLflow keeps model-registry tag values up to 100,000 characters; a registered model's own
# tags and description are stored in 5,000-character columns on SQL backends.
MAX_VERSION_TAG_VALUE = 100_000
MAX_MODEL_TAG_VALUE = 5_000


class FamilyDeprecatedWarning(UserWarning):
    """A deprecated family was resolved; the message names the reason and any replacement."""


@dataclass(frozen=True)
class FamilyVersion:
    """One registered version of a family, with the family's current metadata overlaid."""

    family: FeatureFamily
    version: int
    hash: str
    status: str
    aliases: tuple[str, ...]
    created_at: dt.datetime
    run_id: str
    deprecation: Deprecation | None
    stats: dict[str, Any] | None

    @property
    def name(self) -> str:
        return self.family.name

    @property
    def ref(self) -> str:
        """The pinned reference prefix, e.g. ``user_activity@v3``."""
        return f"{self.family.name}@v{self.version}"


@dataclass(frozen=True)
class Registration:
    """The result of ``Catalog.register``."""

    version: FamilyVersion
    created: bool
    previous: FamilyVersion | None
    changes: tuple[str, ...]
    # Same content registered again: the metadata it changed (``ttl 1h -> 2h``), if any.
    updated: tuple[str, ...] = ()


@dataclass(frozen=True)
class FamilySummary:
    """One line of the catalog listing."""

    name: str
    latest_version: int
    production_version: int | None
    owner: str
    description: str
    tags: tuple[str, ...]
    status: str
    entity: str
    features: tuple[str, ...]
    # The family's freshness SLA (metadata), so a listing can judge staleness without a
    # call per family.
    freshness: dt.timedelta | None = None


def metadata_tags(family: FeatureFamily) -> dict[str, str]:
    """The registered-model tags that carry a family's current, version-less metadata."""
    return {
        TAG_KIND: KIND_FAMILY,
        TAG_OWNER: family.owner,
        TAG_DESCRIPTION: family.description,
        TAG_TAGS: ",".join(family.tags),
        **{tag: format_duration(getattr(family, tag)) or "" for tag in DURATION_TAGS},
    }


def deprecation_tags(deprecation: Deprecation) -> dict[str, str]:
    return {
        TAG_STATUS: STATUS_DEPRECATED,
        TAG_DEPRECATION_REASON: deprecation.reason,
        TAG_DEPRECATION_REPLACEMENT: deprecation.replacement or "",
        TAG_DEPRECATION_SUNSET: deprecation.sunset.isoformat() if deprecation.sunset else "",
    }


def read_deprecation(model_tags: Mapping[str, str]) -> Deprecation | None:
    reason = model_tags.get(TAG_DEPRECATION_REASON, "")
    if not reason:
        return None
    sunset = model_tags.get(TAG_DEPRECATION_SUNSET) or None
    return Deprecation(
        reason=reason,
        replacement=model_tags.get(TAG_DEPRECATION_REPLACEMENT) or None,
        sunset=dt.date.fromisoformat(sunset) if sunset else None,
    )


def overlay_metadata(family: FeatureFamily, model_tags: Mapping[str, str]) -> FeatureFamily:
    """The version's definition with the family's current metadata (durations included)."""
    from dataclasses import replace

    overlaid = family.with_metadata(
        owner=model_tags.get(TAG_OWNER) or None,
        description=model_tags.get(TAG_DESCRIPTION),
        tags=parse_tags(model_tags[TAG_TAGS]) if TAG_TAGS in model_tags else None,
    )
    if not any(tag in model_tags for tag in DURATION_TAGS):
        return overlaid

    def duration(tag: str) -> dt.timedelta | None:
        if tag not in model_tags:
            return getattr(overlaid, tag)  # type: ignore[no-any-return]
        return parse_duration(model_tags[tag] or None, tag)

    return replace(
        overlaid,
        ttl=duration(TAG_TTL),
        retention=duration(TAG_RETENTION),
        freshness=duration(TAG_FRESHNESS),
    )


def metadata_changes(old: FeatureFamily, new: FeatureFamily) -> tuple[str, ...]:
    """The metadata ``new`` changes from ``old``, e.g. ``("ttl 1h -> 2h",)``."""
    out = [
        f"{tag} {format_duration(getattr(old, tag)) or 'none'} -> "
        f"{format_duration(getattr(new, tag)) or 'none'}"
        for tag in DURATION_TAGS
        if getattr(old, tag) != getattr(new, tag)
    ]
    if old.owner != new.owner:
        out.append(f"owner {old.owner} -> {new.owner}")
    if old.description != new.description:
        out.append("description changed")
    if old.tags != new.tags:
        out.append(f"tags {','.join(old.tags) or 'none'} -> {','.join(new.tags) or 'none'}")
    return tuple(out)


def version_status(aliases: tuple[str, ...], deprecation: Deprecation | None) -> str:
    """Deprecation is family-wide; otherwise the ``production`` alias decides."""
    if deprecation is not None:
        return STATUS_DEPRECATED
    return STATUS_PRODUCTION if PRODUCTION_ALIAS in aliases else STATUS_DRAFT


def family_status(production: int | None, deprecation: Deprecation | None) -> str:
    if deprecation is not None:
        return STATUS_DEPRECATED
    return STATUS_PRODUCTION if production is not None else STATUS_DRAFT


def _json_default(value: Any) -> Any:
    """Numpy scalars, dates and other plain values that preview statistics often hold."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    return str(value)


def encode_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def utc_from_millis(millis: int | None) -> dt.datetime:
    return dt.datetime.fromtimestamp((millis or 0) / 1000, tz=dt.UTC)
