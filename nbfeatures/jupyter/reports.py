"""The monitoring reports the panel lists, shows and marks reviewed, through ``ReportStore``
(the same store ``nbfeatures reports`` and the notebook widget use)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nbfeatures.errors import InvalidInput

if TYPE_CHECKING:
    from nbfeatures.monitoring.store import ReportRecord, ReportStore

_STATUSES = ("ok", "warn", "alert")
#: How many of the newest reports the family list reads to find each family's latest ones:
#: one search for the whole list instead of one per family and kind. A family whose latest
#: report is older than all of these shows no report status in the list (its detail does).
LIST_WINDOW = 1_000


def list_reports(
    store: ReportStore, family: str | None, kind: str | None, status: str | None
) -> list[dict[str, Any]]:
    """Reports, newest first, filtered by family, kind and status."""
    from nbfeatures.monitoring.summary import REPORT_KINDS

    if kind is not None and kind not in REPORT_KINDS:
        raise InvalidInput("kind", f"{kind!r} is not one of {', '.join(REPORT_KINDS)}")
    if status is not None and status not in _STATUSES:
        raise InvalidInput("status", f"{status!r} is not one of {', '.join(_STATUSES)}")
    records = store.list(family=family, kind=kind, status=status)
    return [record.to_dict() for record in records]


def latest_statuses(store: ReportStore) -> dict[str, str]:
    """Each family's worst status among the newest report of each kind (families without a
    report among the newest ``LIST_WINDOW`` are absent)."""
    newest: dict[tuple[str, str], ReportRecord] = {}
    for record in store.list(limit=LIST_WINDOW):  # newest first: the first seen is the latest
        newest.setdefault((record.family, record.kind), record)
    by_family: dict[str, list[ReportRecord]] = {}
    for (family, _), record in newest.items():
        by_family.setdefault(family, []).append(record)
    return {family: worst(records) for family, records in by_family.items()}


def worst(records: Iterable[ReportRecord]) -> str:
    from nbfeatures.monitoring.summary import Status

    return Status.worst(record.status for record in records).value


def family_reports(store: ReportStore, family: str, limit: int = 20) -> list[dict[str, Any]]:
    """The family's newest reports, every kind."""
    return [record.to_dict() for record in store.list(family=family, limit=limit)]


def get_report(store: ReportStore, report_id: str) -> dict[str, Any]:
    return store.get(report_id).to_dict()


def report_page(store: ReportStore, report_id: str) -> bytes:
    """The report's Evidently page (``ReportNotFound`` for an unknown id)."""
    return store.html(report_id).read_bytes()


def review_report(
    store: ReportStore, report_id: str, reviewer: str, comment: Any
) -> dict[str, Any]:
    if not isinstance(comment, str):
        raise InvalidInput("comment", "must be text")
    return store.review(report_id, reviewer, comment).to_dict()
