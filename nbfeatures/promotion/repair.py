"""Repairs after a promotion process died: the alias behind the pointer, runs left RUNNING.

``flip_together`` moves the live pointer (Redis) first and the ``production`` alias (MLflow)
second. A process killed in the milliseconds between the two leaves them disagreeing, with no
one left to flip back. The pointer is what the server reads, so it is the truth: the alias is
moved to it (``reconcile_alias``), and the version it replaced gets its ``retired`` time, as
the flip would have recorded.

A killed promotion also leaves its MLflow run ``RUNNING`` forever: its process would have
ended the run. Once the family's lock is free (or held by the caller, who has not created a
run yet, or by a holder known to be dead: ``leftovers``), no live process owns such a run, so
``close_stale_runs`` ends it. If the run's version is live and the run got past its flip (its
results file says so, or the pointer left the version it found), the promotion stands: the
run is ended as succeeded with the results it wrote and a ``repaired`` tag. Otherwise it is
ended as ``KILLED``.

The next promotion and rollback of a family run both repairs under the family's lock before
doing anything else; ``nbfeatures status`` runs them for every family whose lock is free.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbfeatures.catalog.records import PRODUCTION_ALIAS
from nbfeatures.errors import FeatureNotFound
from nbfeatures.promotion.records import PROMOTION_EXPERIMENT

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog
    from nbfeatures.config import Settings
    from nbfeatures.online.store import OnlineStore

log = logging.getLogger(__name__)

#: The outcome tag of a run closed by ``close_stale_runs``.
KILLED_OUTCOME = "killed"


@dataclass(frozen=True)
class Repair:
    """One thing set right: ``what`` happened to ``family``."""

    family: str
    what: str

    def line(self) -> str:
        return f"{self.family}: {self.what}"


def reconcile_alias(store: OnlineStore, catalog: Catalog, family: str) -> Repair | None:
    """Point the ``production`` alias at the live version when they disagree.

    Returns the repair, or None when they agree, nothing is live, or the catalog does not
    know the family. Call it while holding the family's lock (or with the lock free).
    """
    from nbfeatures.promotion.bookkeeping import KeyspaceAges

    live = store.live_version(family)
    if live is None:
        return None
    try:
        aliased: int | None = catalog.get(family, alias=PRODUCTION_ALIAS).version
    except FeatureNotFound:
        aliased = None
    if aliased == live:
        return None
    try:
        catalog.set_alias(family, PRODUCTION_ALIAS, live)
    except FeatureNotFound:
        return None  # a family (or version) only Redis knows: nothing to align
    if aliased is not None:
        KeyspaceAges(store.client, store.prefix, family).mark(aliased, "retired")
    before = f"v{aliased}" if aliased is not None else "no version"
    what = (
        f"production alias moved from {before} to v{live}, the live version "
        "(a flip was interrupted between the live pointer and the alias)"
    )
    log.warning("%s: %s", family, what)
    return Repair(family, what)


def flipped_version(run: Any, store: OnlineStore | None) -> tuple[int, dict[str, Any]] | None:
    """The version a dead run made live, with its results; None if it did not get that far.

    The run's results file (tag ``nbfeatures.results``) names the version; it counts as
    flipped when that version is live now and the file records the flip, or the live pointer
    was at another version when the run loaded (nothing but this run, which held the lock,
    can have moved it: every promotion and rollback repairs dead runs first).
    """
    path = run.data.tags.get("nbfeatures.results")
    if store is None or not path:
        return None
    try:
        results = json.loads(Path(path).read_text())
        version = int(results["load"]["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if store.live_version(str(run.data.tags.get("family", ""))) != version:
        return None
    if "flip" in results or results["load"].get("live_before") != version:
        return version, results
    return None


def _stands(connection: Any, settings: Settings, run: Any, version: int, results: Any) -> str:
    """End a dead run whose version went live as succeeded; returns what was done."""
    from nbfeatures.promotion.tracking import log_results

    client, run_id = connection.client, run.info.run_id
    try:
        log_results(settings, run_id, results)
    except Exception as exc:  # the outcome matters more than its metrics
        log.warning("could not log the results of run %s: %s", run_id, exc)
    connection.call(client.set_tag, run_id, "outcome", "succeeded")
    connection.call(
        client.set_tag,
        run_id,
        "repaired",
        f"its process stopped after the flip; v{version} is live, so the promotion stands",
    )
    notebook = run.data.tags.get("nbfeatures.notebook")
    if notebook and Path(notebook).exists():
        connection.call(client.log_artifact, run_id, notebook)
    with contextlib.redirect_stdout(io.StringIO()):
        connection.call(client.set_terminated, run_id, "FINISHED")
    return (
        f"MLflow run {run_id} recorded as succeeded: v{version} is live "
        "(its process stopped after the flip)"
    )


def close_stale_runs(
    settings: Settings, family: str | None = None, store: OnlineStore | None = None
) -> list[Repair]:
    """End the promotion and rollback runs still ``RUNNING`` (of ``family``): as succeeded
    when their version went live (``flipped_version``, given the ``store``), else ``KILLED``.

    The caller guarantees that no live process owns them: it holds the family's lock and has
    not started its own run yet, or it saw the lock free (or held by a dead holder).
    """
    from nbfeatures.promotion.tracking import _connection

    connection = _connection(settings)
    client = connection.client
    experiment = connection.call(client.get_experiment_by_name, PROMOTION_EXPERIMENT)
    if experiment is None:
        return []
    query = "attributes.status = 'RUNNING'"
    if family is not None:
        query += f" and tags.family = '{family}'"
    runs: list[Any] = list(
        connection.call(client.search_runs, [experiment.experiment_id], filter_string=query)
    )
    repairs = []
    for run in runs:
        name = run.data.tags.get("family", "?")
        run_id = run.info.run_id
        flipped = flipped_version(run, store)
        if flipped is not None:
            repairs.append(Repair(name, _stands(connection, settings, run, *flipped)))
            continue
        connection.call(client.set_tag, run_id, "outcome", KILLED_OUTCOME)
        connection.call(
            client.set_tag,
            run_id,
            "reason",
            "its process stopped without ending the run (the family's lock was free)",
        )
        with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints a link on ending
            connection.call(client.set_terminated, run_id, "KILLED")
        repairs.append(Repair(name, f"MLflow run {run_id} marked KILLED (its process died)"))
    return repairs


def repair_family(settings: Settings, store: OnlineStore, family: str) -> list[Repair]:
    """Both repairs for one family; the caller holds its lock. Failures only log."""
    from nbfeatures.catalog import Catalog

    repairs: list[Repair] = []
    try:
        found = reconcile_alias(store, Catalog.from_settings(settings), family)
        repairs += [found] if found is not None else []
    except Exception as exc:  # the promotion itself reports an unreachable catalog
        log.warning("could not check the production alias of %s: %s", family, exc)
    try:
        repairs += close_stale_runs(settings, family, store)
    except Exception as exc:
        log.warning("could not close stale promotion runs of %s: %s", family, exc)
    return repairs


def repair_all(settings: Settings, store: OnlineStore) -> list[Repair]:
    """For ``status``: repair every family whose promotion lock is free.

    Families with a live pointer get the alias check; families with a ``RUNNING`` run get it
    closed. A family whose lock is held is left alone (its holder may be mid-flip), unless
    the holder is known to be dead (``leftovers.lock_is_dead``).
    """
    from nbfeatures.catalog import Catalog
    from nbfeatures.promotion.leftovers import lock_is_dead
    from nbfeatures.promotion.lock import PromotionLock
    from nbfeatures.promotion.tracking import _connection

    def free(family: str) -> bool:
        held = PromotionLock(store.client, store.prefix, family, 1).holder() is not None
        return not held or lock_is_dead(store, family)

    repairs: list[Repair] = []
    catalog = Catalog.from_settings(settings)
    for family in sorted(store.live_versions()):
        if free(family):
            found = reconcile_alias(store, catalog, family)
            repairs += [found] if found is not None else []
    connection = _connection(settings)
    client = connection.client
    experiment = connection.call(client.get_experiment_by_name, PROMOTION_EXPERIMENT)
    if experiment is not None:
        running = connection.call(
            client.search_runs,
            [experiment.experiment_id],
            filter_string="attributes.status = 'RUNNING'",
        )
        names: set[str] = {str(r.data.tags["family"]) for r in running if "family" in r.data.tags}
        for family in sorted(names):
            if free(family):
                repairs += close_stale_runs(settings, family, store)
    return repairs
