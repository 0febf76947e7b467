"""The monitoring reports the panel lists, shows and marks reviewed, through ``ReportStore``
(the same store ``nbfeatures reports`` uses)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbfeatures.errors import InvalidInput

if TYPE_CHECKING:
    from pathlib import Path

    from nbfeatures.config import Settings

_STATUSES = ("ok", "warn", "alert")
_RANK = {status: rank for rank, status in enumerate(_STATUSES)}


def report_store(settings: Settings) -> Any:
    """The workspace's report store (its MLflow experiment comes from the monitoring config)."""
    import importlib

    store = importlib.import_module("nbfeatures.monitoring.store")
    return store.ReportStore.from_settings(settings)


def list_reports(
    settings: Settings, family: str | None, kind: str | None, status: str | None
) -> list[dict[str, Any]]:
    """Reports, newest first, filtered by family, kind and status."""
    if status is not None and status not in _STATUSES:
        raise InvalidInput("status", f"{status!r} is not one of {', '.join(_STATUSES)}")
    records = report_store(settings).list(family=family, kind=kind, status=status)
    return [record.to_dict() for record in records]


def family_reports(store: Any, family: str, limit: int = 20) -> list[dict[str, Any]]:
    return [record.to_dict() for record in store.list(family=family, limit=limit)]


def worst_latest_status(store: Any, family: str) -> str | None:
    """The worst status among the newest report of each kind; None when there is none."""
    statuses = [str(record.status) for record in store.latest(family).values()]
    return max(statuses, key=lambda s: _RANK.get(s, 0)) if statuses else None


def get_report(settings: Settings, report_id: str) -> dict[str, Any]:
    return dict(report_store(settings).get(report_id).to_dict())


def report_html(settings: Settings, report_id: str) -> Path:
    path: Path = report_store(settings).html(report_id)
    return path


def review_report(settings: Settings, report_id: str, reviewer: str, comment: Any) -> Any:
    if not isinstance(comment, str):
        raise InvalidInput("comment", "must be text")
    return report_store(settings).review(report_id, reviewer, comment).to_dict()
