"""Production data the online store lost: the catalog's production versions against Redis.

Redis can lose its data (``FLUSHALL``, a restart without persistence, a failover to an empty
replica) while the catalog, MLflow, keeps saying which version is production. Servers then
answer "no live version" (or NOT_FOUND) for families whose production version the catalog
names. ``check_production`` finds each such family: it has no live pointer, or its live
version's layout or key id is gone. (A live pointer naming another version than the catalog's
is no loss: the pointer is what is served, and the promotion repair moves the alias to it.)
``nbfeatures status`` prints one line per family and exits ``LOST_EXIT_CODE``;
``nbfeatures promote NAME --restore`` writes production back from its offline set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog
    from nbfeatures.config import Settings
    from nbfeatures.online.store import OnlineStore

#: The exit code of ``nbfeatures status`` when production data is missing.
LOST_EXIT_CODE = 1


@dataclass(frozen=True)
class LostProduction:
    """``family``'s production version ``version`` (catalog) is not whole in Redis."""

    family: str
    version: int
    missing: str  # what Redis lacks, e.g. "its live pointer"

    def line(self) -> str:
        if self.missing == "live":
            what = "in the catalog but not live in the online store"
        else:
            what = f"is live but its {self.missing} is missing from the online store"
        return (
            f"{self.family}: production v{self.version} {what} (data lost?) "
            f"— restore with: nbfeatures promote {self.family} --restore"
        )


def has_catalog(settings: Settings) -> bool:
    """Whether the workspace has a catalog to ask, without creating one.

    The embedded catalog is a SQLite file: absent, nothing was ever registered, and opening
    it would create it (and run MLflow's migrations). A configured ``catalog_uri`` is asked.
    """
    if settings.catalog_uri:
        return True
    return Path(settings.catalog[len("sqlite:///") :]).exists()


def check_production(catalog: Catalog, store: OnlineStore) -> list[LostProduction]:
    """Families whose catalog production version is not live and whole in ``store``."""
    lost: list[LostProduction] = []
    for family, version in sorted(catalog.production_versions().items()):
        live = store.live_version(family)
        if live is None:
            lost.append(LostProduction(family, version, "live"))
            continue
        if live != version:
            continue  # not a loss: the pointer is the truth and the alias follows it
        key_id, _, layout = store.client.mget(store.keys.version_records(family, version))
        if layout is None:
            lost.append(LostProduction(family, version, "layout"))
        elif key_id is None:
            lost.append(LostProduction(family, version, "key id"))
    return lost


def print_lost_production(settings: Settings, store: OnlineStore) -> int:
    """Print a line per family whose production data is missing; the exit code to use."""
    import sys

    if not has_catalog(settings):
        return 0
    from nbfeatures.catalog import Catalog

    try:
        lost = check_production(Catalog.from_settings(settings), store)
    except Exception as exc:  # status still reports what it could read
        print(f"could not compare with the catalog: {exc}", file=sys.stderr)
        return 0
    for found in lost:
        print(found.line())
    return LOST_EXIT_CODE if lost else 0
