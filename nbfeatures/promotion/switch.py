"""Moving production between versions: flip, rollback, and removing old keyspaces.

Production is two records that must agree: the online store's live pointer (what the server
reads) and the catalog's ``production`` alias (what training and people read). They live in
two systems, so they cannot change in one transaction; instead the pointer moves first (an
atomic compare-and-set) and, if the alias update then fails, the pointer is moved back
before the error is raised. Either both move, or neither does; a process killed between the
two leaves the alias behind, and the next promotion, rollback or ``nbfeatures status`` moves
it to the live pointer (``repair.reconcile_alias``).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from nbfeatures.catalog.records import PRODUCTION_ALIAS
from nbfeatures.errors import NbfeaturesError, PromotionFailed

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog
    from nbfeatures.online.store import OnlineStore

log = logging.getLogger(__name__)


def flip_together(
    store: OnlineStore, catalog: Catalog, family: str, version: int, expected: int | None
) -> int | None:
    """Point the live pointer and the ``production`` alias at ``version``; returns the previous.

    ``expected`` is the live version read when the promotion started; if someone flipped in
    between, ``LiveVersionChanged`` is raised and nothing moves. If the alias cannot be set,
    the pointer is flipped back to ``expected`` and the alias error is raised.
    """
    from nbfeatures.promotion.bookkeeping import KeyspaceAges

    previous = store.flip(family, version, expected)
    try:
        catalog.set_alias(family, PRODUCTION_ALIAS, version)
    except BaseException:
        _flip_back(store, family, version, previous)
        raise
    if previous is not None and previous != version:
        ages = KeyspaceAges(store.client, store.prefix, family)
        try:
            ages.mark(previous, "retired")
        except Exception as exc:  # only cleanup's clock; the flip itself succeeded
            log.warning("could not record when %s v%s retired: %s", family, previous, exc)
    return previous


# Undo of ``OnlineStore.flip``: if the pointer still says ARGV[1] (the version just
# flipped to), restore ARGV[2] (or no pointer), and drop the history entry the flip pushed.
# KEYS: live pointer, history list.
_UNFLIP_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
  if redis.call('LINDEX', KEYS[2], 0) == ARGV[2] then redis.call('LPOP', KEYS[2]) end
end
return 1
"""


def _flip_back(store: OnlineStore, family: str, version: int, previous: int | None) -> None:
    """Undo ``store.flip``: restore ``previous`` (or no live version at all)."""
    keys = (store.keys.live(family), store.keys.history(family))
    target = "" if previous is None else str(previous)
    try:
        run: Any = store.client.eval  # type: ignore[union-attr]
        run(_UNFLIP_SCRIPT, 2, *keys, str(version), target)
    except Exception as exc:  # pragma: no cover - needs Redis to fail between two calls
        log.error(
            "%s: the alias update failed and flipping back to %s failed too (%s); "
            "the live pointer may still say v%s",
            family,
            f"v{previous}" if previous is not None else "no live version",
            exc,
            version,
        )


def rollback(settings: Any, family: str, *, lock_ttl: float = 60.0, lock_wait: float = 0.0) -> int:
    """Flip ``family`` back to the previous production version at once; returns it.

    The previous version is the newest entry of the live history whose keyspace still
    exists. The live pointer and the ``production`` alias move together, under the same
    lock as a promotion. The rollback is recorded as a run in ``nbfeatures-promotions``.
    """
    from nbfeatures.catalog import Catalog
    from nbfeatures.online.store import OnlineStore
    from nbfeatures.promotion.lock import PromotionLock
    from nbfeatures.promotion.tracking import record_rollback

    store = OnlineStore.from_settings(settings)
    catalog = Catalog.from_settings(settings)
    with PromotionLock(store.client, store.prefix, family, lock_ttl).hold(lock_wait):
        from nbfeatures.promotion.repair import repair_family

        repair_family(settings, store, family)  # an interrupted flip, a dead run: see repair
        current = store.live_version(family)
        if current is None:
            raise PromotionFailed(family, 0, "rollback", "the family has no live version")
        target = next(
            (v for v in store.live_history(family) if v != current and store.layout(family, v)),
            None,
        )
        if target is None:
            raise PromotionFailed(
                family, current, "rollback", "there is no previous version with a keyspace left"
            )
        started = dt.datetime.now(dt.UTC)
        try:
            flip_together(store, catalog, family, target, current)
        except NbfeaturesError as exc:
            raise PromotionFailed(family, target, "rollback", str(exc)) from exc
        record_rollback(settings, family, current, target, started)
    return target


def cleanup(
    settings: Any,
    family: str,
    now: dt.datetime | None = None,
    *,
    grace: dt.timedelta = dt.timedelta(hours=24),
) -> list[int]:
    """Delete keyspaces of ``family`` that stopped being live more than ``grace`` ago.

    Never deletes the live version or the rollback target (the newest previous version).
    A keyspace that was written but never went live (a failed or killed promotion) ages
    from when it was written. Returns the versions deleted.
    """
    from nbfeatures.online.store import OnlineStore
    from nbfeatures.promotion.bookkeeping import KeyspaceAges

    store = OnlineStore.from_settings(settings)
    now = now or dt.datetime.now(dt.UTC)
    live = store.live_version(family)
    history = [v for v in store.live_history(family) if v != live]
    keep = {v for v in (live, history[0] if history else None) if v is not None}
    ages = KeyspaceAges(store.client, store.prefix, family)
    deleted = []
    for version, stamps in sorted(ages.all().items()):
        if version in keep:
            continue
        since = stamps.get("retired") or stamps.get("written")
        if since is None or now - since < grace:
            continue
        store.delete_version(family, version)
        ages.forget(version)
        deleted.append(version)
    return deleted
