"""A family's ttl and retention changed: rewrite the layouts its materialized versions keep.

ttl and retention are family metadata (no new version), but servers read them from each
version's layout in Redis (``nbf:layout:{family}:vN``), not from the catalog. So when they
change, every layout of the family is rewritten with the new values; servers that re-read
layouts then judge STALE and NOT_FOUND by them at once. Values already written keep the Redis
expiry they were written with: a shorter ttl or retention takes effect on read at once, a
longer one cannot bring back values Redis already expired; the next materialization writes
with the new expiry.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from nbfeatures.online.layout import FamilyLayout

if TYPE_CHECKING:
    from nbfeatures.online.store import OnlineStore

_SCAN_COUNT = 1000


def layout_versions(store: OnlineStore, family: str) -> list[int]:
    """The versions of ``family`` with a layout in Redis (materialized or published), sorted."""
    pattern = store.keys.layout(family, 0).removesuffix("0") + "*"
    found: list[int] = []
    for key in store.client.scan_iter(match=pattern, count=_SCAN_COUNT):
        text = key.decode() if isinstance(key, bytes) else str(key)
        number = text.rsplit(":v", 1)[-1]
        if number.isdigit():
            found.append(int(number))
    return sorted(set(found))


def rewrite_ttl(
    store: OnlineStore, family: str, ttl_seconds: int | None, retention_seconds: int | None
) -> list[int]:
    """Set ``ttl_seconds`` and ``retention_seconds`` in every layout of ``family``.

    Returns the versions whose layout changed (those already equal are left alone).
    """
    changed: list[int] = []
    for version in layout_versions(store, family):
        name = store.keys.layout(family, version)
        raw = store.client.get(name)
        if raw is None:
            continue  # removed meanwhile
        current = FamilyLayout.from_json(raw)
        wanted = replace(current, ttl_seconds=ttl_seconds, retention_seconds=retention_seconds)
        if wanted != current:
            # XX: never recreate a layout a concurrent cleanup just removed.
            store.client.set(name, wanted.to_json(), xx=True)
            changed.append(version)
    return changed
