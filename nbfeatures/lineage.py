"""Lineage between training runs and feature versions, kept as MLflow run tags.

A training set built inside an active MLflow run tags that run with

- ``nbf.feature_versions``: every version used, e.g. ``user_spend@v2,merchant_risk@v1``;
- ``nbf.uses.<family>.v<N>`` = ``true`` per version, so runs can be searched by version;

and logs the training set as an MLflow dataset input (schema, a digest, a row sample when the
set is large). ``versions_used(run)`` reads the first tag; ``runs_using(family, version)``
searches the second across experiments and adds the registered model versions those runs
produced. MLflow is imported only when these functions run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nbfeatures._deps import require

TAG_VERSIONS = "nbf.feature_versions"
TAG_USES = "nbf.uses."
# Dataset inputs keep a sample beyond this many rows: the digest identifies the whole set.
SAMPLE_ROWS = 10_000


def uses_tag(family: str, version: int) -> str:
    """The run tag naming one version used: ``nbf.uses.<family>.v<N>``."""
    return f"{TAG_USES}{family}.v{version}"


@dataclass(frozen=True)
class RunUse:
    """A run that used a feature version, and the model versions registered from it."""

    run_id: str
    experiment_id: str
    models: tuple[tuple[str, str], ...]
    run_name: str = ""
    experiment_name: str = ""


def _client(tracking_uri: str | None) -> Any:
    tracking = require("mlflow.tracking", "catalog")
    return tracking.MlflowClient(tracking_uri=tracking_uri)


def log_training_set(
    frame: Any,
    versions: Sequence[str],
    digest: str,
    targets: str | None = None,
    name: str = "training_set",
) -> bool:
    """Tag the active MLflow run and log ``frame`` (pandas) as its dataset input.

    ``versions`` are ``family@vN`` texts. Returns False (and does nothing) outside a run.
    """
    mlflow = require("mlflow", "catalog")
    require("mlflow.data", "catalog")
    if mlflow.active_run() is None:
        return False
    tags = {TAG_VERSIONS: ",".join(versions)}
    for text in versions:
        family, _, number = text.partition("@v")
        tags[uses_tag(family, int(number))] = "true"
    mlflow.set_tags(tags)
    sample = frame if len(frame) <= SAMPLE_ROWS else frame.head(SAMPLE_ROWS)
    dataset = mlflow.data.from_pandas(sample, name=name, targets=targets, digest=digest)
    mlflow.log_input(dataset, context="training", tags={TAG_VERSIONS: tags[TAG_VERSIONS]})
    return True


def versions_used(run_id: str, tracking_uri: str | None = None) -> list[str]:
    """The ``family@vN`` versions a run's training sets used (empty when none)."""
    run = _client(tracking_uri).get_run(run_id)
    text = run.data.tags.get(TAG_VERSIONS, "")
    return [v for v in text.split(",") if v]


def runs_using(family: str, version: int, tracking_uri: str | None = None) -> list[RunUse]:
    """Every run, in any experiment, whose training set used ``family`` v``version``."""
    client = _client(tracking_uri)
    names = {e.experiment_id: e.name for e in client.search_experiments()}
    experiments = list(names)
    if not experiments:
        return []
    uses: list[RunUse] = []
    token = None
    while True:
        page = client.search_runs(
            experiments,
            filter_string=f"tags.`{uses_tag(family, version)}` = 'true'",
            max_results=1000,
            page_token=token,
        )
        for run in page:
            models = client.search_model_versions(f"run_id = '{run.info.run_id}'")
            uses.append(
                RunUse(
                    run_id=run.info.run_id,
                    experiment_id=run.info.experiment_id,
                    models=tuple((m.name, str(m.version)) for m in models),
                    run_name=str(run.info.run_name or ""),
                    experiment_name=names.get(run.info.experiment_id, ""),
                )
            )
        token = page.token
        if not token:
            return uses
