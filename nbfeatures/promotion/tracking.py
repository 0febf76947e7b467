"""Promotions and rollbacks as MLflow runs in the experiment ``nbfeatures-promotions``.

One run per attempt, successful or not: tags say who, which family, from and to which
version, the outcome and, on failure, the step; metrics hold counts and step timings; the
executed notebook is the run's artifact, so every promotion can be read cell by cell in the
MLflow UI. The caller creates the run before the notebook starts (its id is a notebook
parameter), the notebook's ``record`` step logs the results, and the caller ends the run
with the notebook attached.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import io
from typing import TYPE_CHECKING, Any

from nbfeatures.catalog.connection import Connection, error_code
from nbfeatures.promotion.records import PROMOTION_EXPERIMENT

if TYPE_CHECKING:
    from nbfeatures.config import Settings


def _connection(settings: Settings) -> Connection:
    settings.home.mkdir(parents=True, exist_ok=True)
    return Connection(settings.catalog, timeout=10.0, retries=1)


def who(settings: Settings) -> str:
    """The person a promotion is recorded for: the workspace owner, else the OS user."""
    return settings.owner or getpass.getuser()


def _experiment(connection: Connection, settings: Settings) -> str:
    client = connection.client
    found = connection.call(client.get_experiment_by_name, PROMOTION_EXPERIMENT)
    if found is not None:
        return str(found.experiment_id)
    location = settings.artifacts if settings.catalog.startswith("sqlite:") else None
    try:
        return str(connection.call(client.create_experiment, PROMOTION_EXPERIMENT, location))
    except Exception as exc:  # created by a concurrent caller
        if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
            raise
        again: Any = connection.call(client.get_experiment_by_name, PROMOTION_EXPERIMENT)
        return str(again.experiment_id)


def start_run(
    settings: Settings,
    family: str,
    version: int | None,
    kind: str,
    tags: dict[str, str] | None = None,
) -> str:
    """Create the run of one promotion (``kind="promotion"``), restore or rollback; returns
    its id. ``tags`` are added to the run's own."""
    connection = _connection(settings)
    client = connection.client
    label = f"v{version}" if version is not None else "latest"
    run = connection.call(
        client.create_run,
        _experiment(connection, settings),
        run_name=f"{kind} {family} {label}",
        tags={
            "nbfeatures.kind": kind,
            "family": family,
            "who": who(settings),
            "requested_version": str(version) if version is not None else "latest",
            **(tags or {}),
        },
    )
    return str(run.info.run_id)


def log_results(settings: Settings, run_id: str, results: dict[str, Any]) -> None:
    """Params, metrics and tags of a promotion from the steps' results (see ``steps``)."""
    connection = _connection(settings)
    client = connection.client
    load = results.get("load", {})
    params = {
        "family": results.get("family"),
        "to_version": load.get("version"),
        "from_version": load.get("live_before"),
        "hash": load.get("hash"),
        "newest_event_time": results.get("verify", {}).get("newest_event_time"),
    }
    compute = results.get("compute", {})
    if isinstance(compute, dict) and "reused" in compute:
        params["offline"] = "reused" if compute["reused"] else "recomputed"
    for key, value in params.items():
        connection.call(client.log_param, run_id, key, "none" if value is None else str(value))
    metrics = {f"{step}_seconds": float(r["seconds"]) for step, r in _steps(results)}
    for step, key in (
        ("compute", "rows"),
        ("compute", "entities"),
        ("materialize", "rows"),
        ("materialize", "entities"),
        ("verify", "online_keys"),
        ("verify", "sampled"),
        ("verify", "mismatches"),
        ("verify", "entities_online"),
        ("verify", "expired_share"),
        ("materialize", "buckets"),
    ):
        value = results.get(step, {}).get(key)
        if isinstance(value, int | float):
            metrics[f"{step}_{key}"] = float(value)
    for key, number in metrics.items():
        connection.call(client.log_metric, run_id, key, number)


def _steps(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(k, v) for k, v in results.items() if isinstance(v, dict) and "seconds" in v]


def finish_run(
    settings: Settings,
    run_id: str,
    *,
    notebook: str | None,
    tags: dict[str, str],
    failed: bool,
) -> None:
    """Attach the executed notebook, set the outcome tags and end the run."""
    connection = _connection(settings)
    client = connection.client
    for key, value in tags.items():
        connection.call(client.set_tag, run_id, key, value)
    if notebook is not None:
        connection.call(client.log_artifact, run_id, notebook)
    # MLflow prints "View run" links to stdout when a run ends; keep the caller's output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        connection.call(client.set_terminated, run_id, "FAILED" if failed else "FINISHED")


def record_rollback(
    settings: Settings, family: str, from_version: int, to_version: int, started: dt.datetime
) -> str:
    """A finished run for a rollback: who, when, from and to which version."""
    run_id = start_run(settings, family, to_version, "rollback")
    connection = _connection(settings)
    client = connection.client
    connection.call(client.log_param, run_id, "family", family)
    connection.call(client.log_param, run_id, "from_version", str(from_version))
    connection.call(client.log_param, run_id, "to_version", str(to_version))
    seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    connection.call(client.log_metric, run_id, "seconds", seconds)
    finish_run(settings, run_id, notebook=None, tags={"outcome": "succeeded"}, failed=False)
    return run_id


def promotion_runs(settings: Settings, family: str) -> list[Any]:
    """The MLflow runs of ``family``'s promotions and rollbacks, newest first."""
    connection = _connection(settings)
    client = connection.client
    experiment = connection.call(client.get_experiment_by_name, PROMOTION_EXPERIMENT)
    if experiment is None:
        return []
    runs = connection.call(
        client.search_runs,
        [experiment.experiment_id],
        filter_string=f"tags.family = '{family}'",
        order_by=["attributes.start_time DESC"],
    )
    return list(runs)
