"""Changing a family's metadata where both the catalog and the online store hold it.

Owner, description, tags, ttl, retention and freshness are family metadata (no new version):
the catalog records them (``Catalog.set_metadata``). ttl and retention also decide what
servers answer, and servers read them from the online layouts, so a change to either is
written there too (``online.retune``). ``nbfeatures set`` and a ``%%feature`` cell run again
with only a different ``--ttl``/``--retention``/``--freshness`` both come through here.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog, FamilyVersion
    from nbfeatures.config import Settings
    from nbfeatures.definitions import FeatureFamily


def apply_online(settings: Settings, family: FeatureFamily) -> list[int]:
    """Rewrite the online layouts of ``family`` with its ttl and retention; the versions changed."""
    from nbfeatures.online.retune import rewrite_ttl
    from nbfeatures.online.store import OnlineStore

    ttl = None if family.ttl is None else int(family.ttl.total_seconds())
    kept = None if family.retention is None else int(family.retention.total_seconds())
    store = OnlineStore.from_settings(settings)
    try:
        return rewrite_ttl(store, family.name, ttl, kept)
    finally:
        store.close()


def set_metadata(
    settings: Settings,
    catalog: Catalog,
    name: str,
    *,
    owner: str | None = None,
    description: str | None = None,
    tags: tuple[str, ...] | None = None,
    ttl: str | dt.timedelta | None = None,
    retention: str | dt.timedelta | None = None,
    freshness: str | dt.timedelta | None = None,
) -> tuple[FamilyVersion, list[int]]:
    """Change the family's metadata in the catalog, then its online layouts if ttl/retention
    were given. Returns the latest version as now recorded and the versions rewritten online.
    """
    updated = catalog.set_metadata(
        name,
        owner=owner,
        description=description,
        tags=tags,
        ttl=ttl,
        retention=retention,
        freshness=freshness,
    )
    rewritten: list[int] = []
    if ttl is not None or retention is not None:
        rewritten = apply_online(settings, updated.family)
    return updated, rewritten
