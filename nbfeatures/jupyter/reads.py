"""What the panel's handlers ask of the catalog, the online store and the report store.

Each function blocks (MLflow, Redis) and is run off the server's event loop by the
handlers. Optional parts fail soft: without a reachable online store the freshness numbers
are null, without monitoring (or its experiment) the report fields are null or empty; the
catalog is the one part a call cannot do without.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from nbfeatures.catalog.records import PRODUCTION_ALIAS
from nbfeatures.errors import FeatureNotFound, InvalidInput
from nbfeatures.jupyter import actions, views
from nbfeatures.jupyter.freshness import connect_online, family_freshness
from nbfeatures.jupyter.reports import family_reports, latest_statuses

if TYPE_CHECKING:
    from nbfeatures.jupyter.panel import Panel
    from nbfeatures.monitoring.store import ReportStore

log = logging.getLogger(__name__)
T = TypeVar("T")


def list_families(
    panel: Panel, text: str | None = None, owner: str | None = None, tag: str | None = None
) -> dict[str, Any]:
    """Families matching the search (all when none is given), with their badges."""
    settings = panel.require_settings()
    found = panel.catalog.search(text=text or None, owner=owner or None, tag=tag or None)
    store = connect_online(settings) if found else None
    reports = _optional_report_store(panel) if found else None
    statuses = _from_reports(reports, latest_statuses) or {}
    families = []
    for summary in found:
        freshness = family_freshness(store, summary.name, summary.freshness)
        status = statuses.get(summary.name)
        families.append(views.summary_json(summary, freshness.to_dict(), status))
    return {"families": families}


def family_detail(panel: Panel, name: str) -> dict[str, Any]:
    """Everything the detail view shows of one family; ``FeatureNotFound`` when unknown."""
    catalog = panel.catalog
    versions = catalog.history(name)
    if not versions:
        raise FeatureNotFound(name, message=f"feature family {name} has no versions")
    latest = versions[-1]
    production = next((v for v in versions if PRODUCTION_ALIAS in v.aliases), None)
    shown = production or latest
    runs = [(v.version, use) for v in versions for use in catalog.runs_using(name, v.version)]
    reports = _optional_report_store(panel)
    family = latest.family
    return {
        "name": name,
        "owner": family.owner,
        "description": family.description,
        "tags": list(family.tags),
        "status": latest.status,
        "production_version": production.version if production else None,
        "latest_version": latest.version,
        "deprecation": views.deprecation_json(latest.deprecation),
        "versions": [views.version_json(v) for v in versions],
        "changes": views.changes_json(versions),
        "lineage": views.lineage_json(shown, runs),
        "reports": _from_reports(reports, lambda store: family_reports(store, name)) or [],
    }


def deprecate(panel: Panel, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Deprecate the family from a ``{"reason", "replacement"?, "sunset"?}`` body."""
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("reason", "say why the family is deprecated")
    replacement = body.get("replacement") or None
    if replacement is not None and not isinstance(replacement, str):
        raise InvalidInput("replacement", "must be text (the family to use instead)")
    sunset = _date(body.get("sunset"), "sunset")
    panel.catalog.deprecate(name, reason.strip(), replacement, sunset)
    return family_detail(panel, name)


def start_promotion(panel: Panel, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Start promoting ``body["version"]`` (None: the latest) as a job; returns the job."""
    version = body.get("version")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise InvalidInput("version", f"{version!r} is not a version number (1, 2, ...) or null")
    # Resolved now, so the job promotes what the person saw even if a version is added.
    target = panel.catalog.get(name, version)
    settings = panel.require_settings()
    work = actions.promotion(settings, panel.root, name, target.version)
    return panel.jobs.start("promote", name, target.version, work).to_dict()


def start_rollback(panel: Panel, name: str) -> dict[str, Any]:
    """Start rolling ``name`` back to its previous live version as a job; returns the job."""
    if panel.catalog.latest(name) is None:
        raise FeatureNotFound(name)
    work = actions.rollback(panel.require_settings(), name)
    return panel.jobs.start("rollback", name, None, work).to_dict()


def _date(value: Any, field: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInput(field, f"{value!r} is not a date (YYYY-MM-DD)")


def _optional_report_store(panel: Panel) -> ReportStore | None:
    """The report store, or None when monitoring is not installed or cannot be opened."""
    try:
        return panel.reports
    except Exception as exc:
        log.info("reports are not shown: %s", exc)
        return None


def _from_reports(store: ReportStore | None, read: Callable[[ReportStore], T]) -> T | None:
    """``read(store)`` when there is a store, None when there is none or it fails (logged)."""
    if store is None:
        return None
    try:
        return read(store)
    except Exception as exc:
        log.info("reports are not shown: %s", exc)
        return None
