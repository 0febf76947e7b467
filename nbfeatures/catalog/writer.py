"""Writing one family version into MLflow: experiment, run, artifacts, model version, tags.

``Catalog.register`` drives these steps under the family lock and calls ``remove`` to undo
them when one fails, so a failed registration leaves nothing half-written behind.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import yaml

from nbfeatures.catalog.connection import Connection, ensure_experiment, error_code
from nbfeatures.catalog.records import (
    MAX_MODEL_TAG_VALUE,
    MAX_VERSION_TAG_VALUE,
    STATUS_DRAFT,
    TAG_DEFINITION,
    TAG_FAMILY,
    TAG_HASH,
    TAG_OWNER,
    TAG_STATS,
    TAG_STATS_ARTIFACT,
    TAG_STATUS,
    TAG_VERSION,
    encode_json,
    metadata_tags,
)
from nbfeatures.definitions import FeatureFamily, TransformationKind
from nbfeatures.errors import RegistrationFailed

_TRANSFORMATION_FILES = {
    TransformationKind.SQL: "transformation.sql",
    TransformationKind.PYTHON: "transformation.py",
}


class VersionWriter:
    """The MLflow writes of a registration, each a small step that can be undone."""

    def __init__(
        self, connection: Connection, experiment_name: str, artifact_location: str | None
    ) -> None:
        self._connection = connection
        self.experiment_name = experiment_name
        self.artifact_location = artifact_location
        self._experiment_id: str | None = None

    def finish_run(self, run_id: str) -> None:
        # MLflow prints "View run" links to stdout here; a catalog call should be quiet.
        with contextlib.redirect_stdout(io.StringIO()):
            self._connection.call(self._connection.client.set_terminated, run_id, "FINISHED")

    def create_model(self, name: str, family: FeatureFamily) -> bool:
        client = self._connection.client
        try:
            self._connection.call(
                client.create_registered_model,
                name,
                tags=metadata_tags(family),
                description=family.description,
            )
        except Exception as exc:
            if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                raise
            return False
        return True

    def start_run(self, family: FeatureFamily) -> tuple[str, str]:
        client = self._connection.client
        run = self._connection.call(
            client.create_run,
            self.experiment(),
            run_name=f"{family.name}-{family.version_hash[:12]}",
            tags={TAG_FAMILY: family.name, TAG_HASH: family.version_hash, TAG_OWNER: family.owner},
        )
        return str(run.info.run_id), str(run.info.artifact_uri)

    def log_artifacts(self, run_id: str, family: FeatureFamily, stats_json: str | None) -> None:
        client = self._connection.client
        definition = yaml.safe_dump(family.to_dict(), sort_keys=False, allow_unicode=True)
        source = _TRANSFORMATION_FILES[family.transformation.kind]
        self._connection.call(client.log_text, run_id, definition, "definition.yaml")
        self._connection.call(client.log_text, run_id, family.transformation.text, source)
        if stats_json is not None:
            self._connection.call(client.log_text, run_id, stats_json, "stats.json")

    def add_version(
        self,
        name: str,
        family: FeatureFamily,
        run_id: str,
        artifact_uri: str,
        stats_json: str | None,
    ) -> int:
        client = self._connection.client
        tags = {
            TAG_FAMILY: family.name,
            TAG_HASH: family.version_hash,
            TAG_OWNER: family.owner,
            TAG_STATUS: STATUS_DRAFT,
        }
        definition = encode_json(family.to_dict())
        # Copies of the artifacts in tags let list/history read everything in one search.
        if len(definition) <= MAX_VERSION_TAG_VALUE:
            tags[TAG_DEFINITION] = definition
        if stats_json is not None:
            if len(stats_json) <= MAX_VERSION_TAG_VALUE:
                tags[TAG_STATS] = stats_json
            else:
                tags[TAG_STATS_ARTIFACT] = "stats.json"
        version = self._connection.call(
            client.create_model_version,
            name,
            source=artifact_uri,
            run_id=run_id,
            tags=tags,
            description=family.description[:MAX_MODEL_TAG_VALUE],
        )
        number = int(version.version)
        self._connection.call(client.set_model_version_tag, name, str(number), TAG_VERSION, number)
        return number

    def remove(
        self, name: str, number: int | None, run_id: str | None, created_model: bool
    ) -> None:
        """Best-effort cleanup after a failed registration: the version, the run, the model."""
        client = self._connection.client
        steps: list[tuple[Any, tuple[Any, ...]]] = []
        if number is not None:
            steps.append((client.delete_model_version, (name, str(number))))
        if run_id is not None:
            steps.append((client.delete_run, (run_id,)))
        if created_model:
            steps.append((client.delete_registered_model, (name,)))
        for fn, args in steps:
            try:
                self._connection.call(fn, *args)
            except Exception:
                continue

    def experiment(self) -> str:
        if self._experiment_id is None:
            found = ensure_experiment(
                self._connection, self.experiment_name, self.artifact_location
            )
            if found is None:
                raise RegistrationFailed("*", "creating the experiment", self.experiment_name)
            self._experiment_id = found
        return self._experiment_id

    def write_metadata(self, model_name: str, model: Any, family: FeatureFamily) -> None:
        """Update only the registered-model tags that differ (and its UI description)."""
        client = self._connection.client
        current = dict(model.tags) if model is not None else {}
        for key, value in metadata_tags(family).items():
            if current.get(key) != value:
                self._connection.call(client.set_registered_model_tag, model_name, key, value)
        if model is not None and (model.description or "") != family.description:
            self._connection.call(
                client.update_registered_model, model_name, description=family.description
            )
