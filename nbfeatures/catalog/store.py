"""The feature catalog, with MLflow's model registry as its system of record.

Each family is one registered model ``{prefix}{family}`` and each family version one model
version, whose run (in the experiment ``nbfeatures-catalog``) holds ``definition.yaml``, the
transformation source and ``stats.json``. The MLflow UI therefore shows families, versions,
owners and which version is ``production`` without anything of ours.

MLflow is imported lazily (it takes seconds), never by ``import nbfeatures``.
"""

from __future__ import annotations

import builtins
import datetime as dt
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nbfeatures.catalog.changes import describe_changes
from nbfeatures.catalog.connection import Connection, error_code, redact
from nbfeatures.catalog.lock import FamilyLock
from nbfeatures.catalog.model_reads import ModelReads, aliases, is_name
from nbfeatures.catalog.records import (
    MAX_MODEL_TAG_VALUE,
    PRODUCTION_ALIAS,
    STATUS_DEPRECATED,
    STATUS_DRAFT,
    STATUS_PRODUCTION,
    TAG_HASH,
    TAG_STATUS,
    FamilyDeprecatedWarning,
    FamilySummary,
    FamilyVersion,
    Registration,
    deprecation_tags,
    encode_json,
    metadata_changes,
    read_deprecation,
)
from nbfeatures.catalog.writer import VersionWriter
from nbfeatures.definitions import (
    Deprecation,
    FeatureFamily,
    FeatureRef,
    TransformationKind,
    parse_tags,
)
from nbfeatures.errors import (
    CatalogUnavailable,
    DefinitionError,
    FamilySunset,
    FeatureNotFound,
    RegistrationFailed,
    first_line,
)

if TYPE_CHECKING:
    from nbfeatures.config import Settings
    from nbfeatures.lineage import RunUse

DEFAULT_EXPERIMENT = "nbfeatures-catalog"
_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9._-]*\Z")
_TRANSFORMATION_FILES = {
    TransformationKind.SQL: "transformation.sql",
    TransformationKind.PYTHON: "transformation.py",
}


class Catalog:
    """Register, find and resolve feature family versions.

    Versions are immutable and identified by ``FeatureFamily.version_hash``. Owner,
    description and tags are family-level metadata kept on the registered model; they change
    without a new version and every returned ``FamilyVersion`` carries the current values.
    Deprecation is also family-level: deprecating a family deprecates all its versions.
    """

    def __init__(
        self,
        tracking_uri: str,
        artifact_location: str | None = None,
        model_prefix: str = "nbf.",
        *,
        experiment_name: str = DEFAULT_EXPERIMENT,
        timeout: float = 10.0,
        retries: int = 1,
        lock_timeout: float = 60.0,
        lock_stale_after: float = 120.0,
    ) -> None:
        """Describe the catalog; nothing is contacted until the first call.

        ``timeout`` (seconds per HTTP request) and ``retries`` bound how long an unreachable
        tracking server takes to raise ``CatalogUnavailable``.
        """
        if not _PREFIX_PATTERN.match(model_prefix):
            raise DefinitionError(
                "registered_model_prefix", "use letters, digits, '.', '_' and '-' only"
            )
        self.tracking_uri = tracking_uri
        self.artifact_location = artifact_location or _default_artifact_location(tracking_uri)
        self.model_prefix = model_prefix
        self.experiment_name = experiment_name
        self._connection = Connection(tracking_uri, timeout=timeout, retries=retries)
        self._lock = FamilyLock(
            self._connection, model_prefix, timeout=lock_timeout, stale_after=lock_stale_after
        )
        self._writer = VersionWriter(self._connection, experiment_name, self.artifact_location)
        self._reads = ModelReads(self._connection, model_prefix)

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalog:
        """The workspace's catalog (embedded SQLite by default)."""
        settings.home.mkdir(parents=True, exist_ok=True)
        return cls(settings.catalog, settings.artifacts, settings.registered_model_prefix)

    def __repr__(self) -> str:
        return f"Catalog({redact(self.tracking_uri)!r}, prefix={self.model_prefix!r})"

    def model_name(self, family: str) -> str:
        """The registered model that holds ``family``."""
        return f"{self.model_prefix}{family}"

    # ----------------------------------------------------------------- registration

    def register(
        self, family: FeatureFamily, stats: Mapping[str, Any] | None = None
    ) -> Registration:
        """Register ``family``; idempotent by content hash.

        Same content as an existing version returns that version (``created=False``) and
        updates changed owner/description/tags. New content becomes ``vN+1`` and
        ``changes`` lists what differs from the latest version. Concurrent callers, in any
        process or machine, are serialized by a lock made of MLflow itself (see ``lock``).
        A registration that fails midway removes what it wrote and raises
        ``RegistrationFailed`` (or ``CatalogUnavailable``).
        """
        if len(family.description) > MAX_MODEL_TAG_VALUE:
            raise DefinitionError("description", f"longer than {MAX_MODEL_TAG_VALUE} characters")
        if family.transformation.kind is TransformationKind.SQL:
            _check_read_only(family)
        stats_json = None if stats is None else encode_json(dict(stats))
        name = self.model_name(family.name)
        with self._lock.hold(family.name):
            model = self._reads.find_model(name)
            versions = self._reads.search_versions(name) if model is not None else []
            records = [self._reads.record(model, v) for v in versions]
            previous = records[-1] if records else None
            existing = next((r for r in records if r.hash == family.version_hash), None)
            if existing is not None:
                updated = metadata_changes(existing.family, family)
                self._writer.write_metadata(name, model, family)
                again = self.get(family.name, existing.version)
                return Registration(again, False, previous, (), updated)
            created = self._create_version(family, stats_json, model, versions)
        if isinstance(created, FamilyVersion):
            changes = describe_changes(previous.family, family) if previous else ()
            return Registration(created, True, previous, changes)
        return Registration(self.get(family.name, created), False, previous, ())

    def _create_version(
        self,
        family: FeatureFamily,
        stats_json: str | None,
        model: Any | None,
        versions: builtins.list[Any],
    ) -> FamilyVersion | int:
        """Write run, artifacts and model version; on failure remove them again.

        Returns the new version, or the number of an equal version found by the
        post-create check (which only happens if a stale lock was broken while held).
        """
        name = self.model_name(family.name)
        created_model = False
        run_id: str | None = None
        number: int | None = None
        step = "creating the registered model"
        try:
            if model is None:
                created_model = self._writer.create_model(name, family)
            else:
                self._writer.write_metadata(name, model, family)
            step = "creating the run"
            run_id, artifact_uri = self._writer.start_run(family)
            step = "logging artifacts"
            self._writer.log_artifacts(run_id, family, stats_json)
            self._writer.finish_run(run_id)
            step = "creating the model version"
            number = self._writer.add_version(name, family, run_id, artifact_uri, stats_json)
            step = "checking for a concurrent duplicate"
            twin = self._earlier_twin(name, family.version_hash, number)
            if twin is not None:
                self._writer.remove(name, number, run_id, created_model=False)
                return twin
            return self.get(family.name, number)
        except BaseException as exc:
            self._writer.remove(name, number, run_id, created_model and not versions)
            if isinstance(exc, CatalogUnavailable | KeyboardInterrupt):
                raise
            if isinstance(exc, Exception):
                raise RegistrationFailed(family.name, step, first_line(exc)) from exc
            raise

    def _earlier_twin(self, name: str, version_hash: str, number: int) -> int | None:
        twins = [
            int(v.version)
            for v in self._reads.search_versions(name)
            if v.tags.get(TAG_HASH) == version_hash and int(v.version) < number
        ]
        return min(twins) if twins else None

    # ----------------------------------------------------------------- reading

    def get(self, name: str, version: int | None = None, alias: str | None = None) -> FamilyVersion:
        """A version by number or alias; the latest by default. ``FeatureNotFound`` otherwise."""
        model = self._reads.require_model(name)
        client = self._connection.client
        model_name = self.model_name(name)
        if alias is not None:
            aliased = aliases(model).get(alias)
            if aliased is None:
                raise FeatureNotFound(
                    name, alias, message=f"family {name} has no version with alias {alias!r}"
                )
            if version is not None and version != aliased:
                raise FeatureNotFound(
                    name,
                    version,
                    message=f"family {name} v{version} is not {alias!r} (v{aliased} is)",
                )
            version = aliased
        if version is None:
            latest = self._reads.latest_version(model_name)
            if latest is None:
                raise FeatureNotFound(name, message=f"family {name} has no versions")
            return self._reads.record(model, latest)
        try:
            found = self._connection.call(client.get_model_version, model_name, str(version))
        except Exception as exc:
            if error_code(exc) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise FeatureNotFound(name, version) from None
            raise
        return self._reads.record(model, found)

    def latest(self, name: str) -> FamilyVersion | None:
        """The highest version of ``name``, or None if there is no such family."""
        model = self._reads.find_model(self.model_name(name)) if is_name(name) else None
        if model is None:
            return None
        latest = self._reads.latest_version(self.model_name(name))
        return None if latest is None else self._reads.record(model, latest)

    def history(self, name: str) -> builtins.list[FamilyVersion]:
        """Every version of ``name``, oldest first."""
        model = self._reads.require_model(name)
        return [
            self._reads.record(model, v) for v in self._reads.search_versions(self.model_name(name))
        ]

    def list(self) -> builtins.list[FamilySummary]:
        """Every family, sorted by name: one paged search, no call per family."""
        client = self._connection.client
        models = self._connection.search_all(
            client.search_registered_models,
            filter_string=f"name LIKE '{self.model_prefix}%'",
        )
        summaries = [
            self._reads.summary(m) for m in models if self._reads.family_of(m.name) is not None
        ]
        return sorted((s for s in summaries if s is not None), key=lambda s: s.name)

    def production_versions(self) -> dict[str, int]:
        """Each family with a ``production`` alias and its version: one paged search, no
        definition read (``nbfeatures status`` compares them with the live pointers)."""
        client = self._connection.client
        models = self._connection.search_all(
            client.search_registered_models,
            filter_string=f"name LIKE '{self.model_prefix}%'",
        )
        found: dict[str, int] = {}
        for model in models:
            family = self._reads.family_of(model.name)
            production = aliases(model).get(PRODUCTION_ALIAS)
            if family is not None and production is not None:
                found[family] = production
        return found

    def search(
        self,
        text: str | None = None,
        owner: str | None = None,
        tag: str | None = None,
        name: str | None = None,
    ) -> builtins.list[FamilySummary]:
        """Families matching every given criterion (case-insensitive).

        ``text`` matches the name, description and feature names (substring); ``owner`` is
        exact; ``tag`` must be one of the family's tags; ``name`` is a substring of the name.
        """

        def matches(summary: FamilySummary) -> bool:
            if name is not None and name.lower() not in summary.name.lower():
                return False
            if owner is not None and owner.lower() != summary.owner.lower():
                return False
            if tag is not None and tag.strip().lower() not in {t.lower() for t in summary.tags}:
                return False
            if text is not None:
                needle = text.lower()
                haystack = [summary.name, summary.description, *summary.features]
                return any(needle in item.lower() for item in haystack)
            return True

        return [s for s in self.list() if matches(s)]

    # ----------------------------------------------------------------- metadata and status

    def set_metadata(
        self,
        name: str,
        owner: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        *,
        ttl: str | dt.timedelta | None = None,
        retention: str | dt.timedelta | None = None,
        freshness: str | dt.timedelta | None = None,
    ) -> FamilyVersion:
        """Change owner, description, tags, ttl, retention or freshness; no new version is made.

        They are the family's metadata: every version reads them. A new ttl or retention is
        applied by servers once the online layouts say so (``promotion.metadata``, which
        ``nbfeatures set`` and the ``%%feature`` magic call).
        """
        model = self._reads.require_model(name)
        latest = self.get(name)
        updated = latest.family.with_metadata(
            owner=owner,
            description=description,
            tags=None if tags is None else parse_tags(tags),
            ttl=ttl,
            retention=retention,
            freshness=freshness,
        )
        if len(updated.description) > MAX_MODEL_TAG_VALUE:
            raise DefinitionError("description", f"longer than {MAX_MODEL_TAG_VALUE} characters")
        self._writer.write_metadata(self.model_name(name), model, updated)
        return self.get(name, latest.version)

    def deprecate(
        self,
        name: str,
        reason: str,
        replacement: str | None = None,
        sunset: dt.date | None = None,
    ) -> FamilyVersion:
        """Deprecate the whole family (all its versions); returns the latest version.

        ``resolve`` then warns with ``FamilyDeprecatedWarning``, and after ``sunset`` refuses
        the family for training with ``FamilySunset``.
        """
        deprecation = Deprecation(reason=reason, replacement=replacement, sunset=sunset)
        model_name = self.model_name(name)
        self._reads.require_model(name)
        client = self._connection.client
        for key, value in deprecation_tags(deprecation).items():
            self._connection.call(client.set_registered_model_tag, model_name, key, value)
        for version in self._reads.search_versions(model_name):
            self._connection.call(
                client.set_model_version_tag,
                model_name,
                str(version.version),
                TAG_STATUS,
                STATUS_DEPRECATED,
            )
        return self.get(name)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` at ``version``; for ``production`` also update the status tags."""
        model = self._reads.require_model(name)
        model_name = self.model_name(name)
        client = self._connection.client
        self.get(name, version)  # FeatureNotFound for a version that does not exist
        before = aliases(model).get(alias)
        self._connection.call(client.set_registered_model_alias, model_name, alias, str(version))
        if alias != PRODUCTION_ALIAS or read_deprecation(model.tags) is not None:
            return
        self._connection.call(
            client.set_model_version_tag, model_name, str(version), TAG_STATUS, STATUS_PRODUCTION
        )
        self._connection.call(
            client.set_registered_model_tag, model_name, TAG_STATUS, STATUS_PRODUCTION
        )
        if before is not None and before != version:
            self._connection.call(
                client.set_model_version_tag, model_name, str(before), TAG_STATUS, STATUS_DRAFT
            )

    # Lineage lives in MLflow run tags (see nbfeatures.lineage); the catalog answers both ways.
    def runs_using(self, name: str, version: int) -> builtins.list[RunUse]:
        """Runs whose training sets used ``name`` v``version``, with their model versions."""
        from nbfeatures.lineage import runs_using

        with self._connection.scope():
            return runs_using(name, version, self.tracking_uri)

    def versions_used(self, run_id: str) -> builtins.list[str]:
        """The ``family@vN`` versions a run's training sets used."""
        from nbfeatures.lineage import versions_used

        with self._connection.scope():
            return versions_used(run_id, self.tracking_uri)

    def resolve(
        self,
        ref: FeatureRef | str,
        purpose: Literal["read", "training"] = "read",
        today: dt.date | None = None,
    ) -> FamilyVersion:
        """The version a reference means: pinned, else ``production``, else the latest.

        ``ref`` is a ``FeatureRef``, its text (``family:feature``, ``family@v3:feature``,
        ``family:*``) or a bare family name. A missing family, version or feature raises
        ``FeatureNotFound`` naming it. A deprecated family warns with
        ``FamilyDeprecatedWarning``; for ``purpose="training"`` past its sunset date it
        raises ``FamilySunset``.
        """
        if isinstance(ref, str):
            text = ref.strip()
            ref = FeatureRef.parse(text if ":" in text else f"{text}:*")
        if ref.version is not None:
            found = self.get(ref.family, ref.version)
        else:
            model = self._reads.require_model(ref.family)
            production = aliases(model).get(PRODUCTION_ALIAS)
            found = self.get(ref.family, production)
        if not ref.is_wildcard and ref.feature not in found.family.feature_names:
            raise FeatureNotFound(
                ref.family,
                found.version,
                feature=ref.feature,
                known=found.family.feature_names,
            )
        deprecation = found.deprecation
        if deprecation is not None:
            sunset = deprecation.sunset
            if purpose == "training" and sunset is not None and (today or dt.date.today()) > sunset:
                raise FamilySunset(ref.family, found.version, sunset, deprecation.replacement)
            message = _deprecation_message(ref.family, deprecation)
            warnings.warn(FamilyDeprecatedWarning(message), stacklevel=2)
        return found


def _default_artifact_location(tracking_uri: str) -> str | None:
    """Beside an embedded SQLite file; remote servers choose (``--serve-artifacts``)."""
    if tracking_uri.startswith("sqlite:///"):
        db_path = Path(tracking_uri[len("sqlite:///") :])
        return (db_path.parent / "artifacts").absolute().as_uri()
    return None


def _deprecation_message(family: str, deprecation: Deprecation) -> str:
    parts = [f"feature family {family} is deprecated: {deprecation.reason}"]
    if deprecation.replacement:
        parts.append(f"use {deprecation.replacement} instead")
    if deprecation.sunset:
        parts.append(f"sunset {deprecation.sunset.isoformat()}")
    return "; ".join(parts)


def _check_read_only(family: FeatureFamily) -> None:
    """Refuse a SQL body that is more than a read-only query, before anything is written.

    A family reaches the catalog from a preview, which checked it; this also guards direct
    calls, so a registered body can always be computed without changing data.
    """
    from nbfeatures.engine.spark.session import current_spark
    from nbfeatures.engine.spark.sql_guard import check_read_only

    check_read_only(current_spark(), family.name, family.transformation.text)
