"""What a report looks at, settled the same way by every kind: the window and the version."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from nbfeatures.monitoring.config import FamilyMonitoring, monitoring_config

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog, FamilyVersion
    from nbfeatures.config import Settings


def utc(value: dt.datetime) -> dt.datetime:
    # Naive times are UTC, as everywhere in nbfeatures.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def family_config(
    settings: Settings, family: str, config: FamilyMonitoring | None
) -> FamilyMonitoring:
    return config if config is not None else monitoring_config(settings).for_family(family)


def report_window(
    config: FamilyMonitoring, start: dt.datetime | None, end: dt.datetime | None
) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)``: by default the family's window ending now; naive times are UTC."""
    end = utc(end) if end is not None else dt.datetime.now(dt.UTC)
    start = utc(start) if start is not None else end - config.window
    if start >= end:
        from nbfeatures.errors import ConfigError

        raise ConfigError("report window", f"start {start} is not before end {end}")
    return start, end


def resolve_version(catalog: Catalog, family: str, version: int | None) -> FamilyVersion:
    """The version asked for, else the family's production version (``FeatureNotFound``
    names the family when it has none)."""
    if version is not None:
        return catalog.get(family, version)
    return catalog.get(family, alias="production")
