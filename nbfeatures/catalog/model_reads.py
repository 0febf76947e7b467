"""Reading the catalog's MLflow records: registered models and versions into our records.

``ModelReads`` finds models and versions and turns them into ``FamilyVersion`` and
``FamilySummary``; it caches definitions by (model, content hash), since versions never
change. ``Catalog`` (``store``) writes and answers questions through it.
"""

from __future__ import annotations

import builtins
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from nbfeatures.catalog.connection import Connection, error_code
from nbfeatures.catalog.records import (
    PRODUCTION_ALIAS,
    TAG_DEFINITION,
    TAG_HASH,
    TAG_STATS,
    TAG_STATS_ARTIFACT,
    FamilySummary,
    FamilyVersion,
    family_status,
    overlay_metadata,
    read_deprecation,
    utc_from_millis,
    version_status,
)
from nbfeatures.definitions import NAME_PATTERN, FeatureFamily
from nbfeatures.errors import FeatureNotFound


class ModelReads:
    """Registered models and versions under one name prefix, read as catalog records."""

    def __init__(self, connection: Connection, model_prefix: str) -> None:
        self._connection = connection
        self.model_prefix = model_prefix
        # Versions are immutable, so a definition cached by (model, hash) is never stale.
        self._definitions: dict[str, FeatureFamily] = {}

    def family_of(self, model_name: str) -> str | None:
        """The family a registered model holds, or None for lock and foreign models."""
        if not model_name.startswith(self.model_prefix):
            return None
        family = model_name[len(self.model_prefix) :]
        return family if is_name(family) else None

    def find_model(self, model_name: str) -> Any | None:
        client = self._connection.client
        try:
            return self._connection.call(client.get_registered_model, model_name)
        except Exception as exc:
            if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def require_model(self, name: str) -> Any:
        if not is_name(name):
            raise FeatureNotFound(name, None, "not a valid family name")
        model = self.find_model(f"{self.model_prefix}{name}")
        if model is None:
            raise FeatureNotFound(name)
        return model

    def search_versions(self, model_name: str) -> builtins.list[Any]:
        client = self._connection.client
        found = self._connection.search_all(
            client.search_model_versions, filter_string=f"name = '{model_name}'"
        )
        return sorted(found, key=lambda v: int(v.version))

    def latest_version(self, model_name: str) -> Any | None:
        client = self._connection.client
        found = self._connection.call(
            client.search_model_versions,
            filter_string=f"name = '{model_name}'",
            order_by=["version_number DESC"],
            max_results=1,
        )
        return found[0] if found else None

    def definition(self, version: Any) -> FeatureFamily:
        # The hash covers content, not the family name: two families may share it.
        key = f"{version.name}:{version.tags.get(TAG_HASH, '')}"
        cached = self._definitions.get(key)
        if cached is not None:
            return cached
        raw = version.tags.get(TAG_DEFINITION)
        if raw:
            data = json.loads(raw)
        else:
            data = yaml.safe_load(self.download(str(version.run_id), "definition.yaml"))
        family = FeatureFamily.from_dict(data)
        if version.tags.get(TAG_HASH):
            self._definitions[key] = family
        return family

    def download(self, run_id: str, path: str) -> str:
        client = self._connection.client
        with tempfile.TemporaryDirectory(prefix="nbf-catalog-") as tmp:
            local = self._connection.call(client.download_artifacts, run_id, path, tmp)
            return Path(local).read_text()

    def stats(self, version: Any) -> dict[str, Any] | None:
        raw = version.tags.get(TAG_STATS)
        if raw is None and version.tags.get(TAG_STATS_ARTIFACT):
            raw = self.download(str(version.run_id), version.tags[TAG_STATS_ARTIFACT])
        if raw is None:
            return None
        loaded = json.loads(raw)
        return loaded if isinstance(loaded, dict) else {"value": loaded}

    def record(self, model: Any, version: Any) -> FamilyVersion:
        tags = dict(model.tags)
        number = int(version.version)
        deprecation = read_deprecation(tags)
        held = tuple(sorted(a for a, v in aliases(model).items() if v == number))
        return FamilyVersion(
            family=overlay_metadata(self.definition(version), tags),
            version=number,
            hash=str(version.tags.get(TAG_HASH, "")),
            status=version_status(held, deprecation),
            aliases=held,
            created_at=utc_from_millis(version.creation_timestamp),
            run_id=str(version.run_id or ""),
            deprecation=deprecation,
            stats=self.stats(version),
        )

    def summary(self, model: Any) -> FamilySummary | None:
        latest_versions = list(model.latest_versions or [])
        if not latest_versions:
            latest = self.latest_version(model.name)  # a store that omits latest_versions
            if latest is None:
                return None
            latest_versions = [latest]
        latest = max(latest_versions, key=lambda v: int(v.version))
        tags = dict(model.tags)
        family = overlay_metadata(self.definition(latest), tags)
        production = aliases(model).get(PRODUCTION_ALIAS)
        return FamilySummary(
            name=family.name,
            latest_version=int(latest.version),
            production_version=production,
            owner=family.owner,
            description=family.description,
            tags=family.tags,
            status=family_status(production, read_deprecation(tags)),
            entity=family.entity.name,
            features=family.feature_names,
            freshness=family.freshness,
        )


def aliases(model: Any) -> dict[str, int]:
    """A registered model's aliases as ``{alias: version}``, whichever form MLflow returns."""
    raw = getattr(model, "aliases", None) or {}
    if isinstance(raw, Mapping):
        return {str(k): int(v) for k, v in raw.items()}
    return {str(a.alias): int(a.version) for a in raw}


def is_name(name: str) -> bool:
    """Whether ``name`` is a valid family name (lock and foreign models are not)."""
    return isinstance(name, str) and NAME_PATTERN.match(name) is not None
