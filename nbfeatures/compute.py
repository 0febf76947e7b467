"""Compute a registered family version into its versioned offline feature set.

    nbfeatures.compute("user_spend")                       # production version, else latest
    nbfeatures.compute("user_spend", version=2, start=datetime(2024, 1, 1), end=...)

Spark runs the version's transformation on its full sources and writes Parquet under
``{offline_root}/{family}/v{N}/event_date=YYYY-MM-DD/`` with a manifest. Re-running a range
replaces those days only. Without a range, every event time up to the end of today (UTC)
is computed. Locally, computing also writes the version's join index; ``build_join_index``
writes it from what is stored, without Spark (for versions computed before indexes existed).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from nbfeatures.config import Settings, activate, active_settings, load_settings
from nbfeatures.definitions import FeatureRef

if TYPE_CHECKING:
    from pathlib import Path

    from nbfeatures.catalog import Catalog
    from nbfeatures.engine.offline_store import Manifest

EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _utc(value: dt.datetime) -> dt.datetime:
    # Naive times are taken as UTC, as everywhere in nbfeatures.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def default_end(now: dt.datetime | None = None) -> dt.datetime:
    """The start of tomorrow, UTC: a default range then holds every event up to now."""
    today = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()
    return dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def compute(
    name: str,
    version: int | None = None,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    spark: Any = None,
    progress: bool = True,
) -> Manifest:
    """Compute ``name`` (``version``, else production, else latest) over ``[start, end)``."""
    from nbfeatures.catalog import Catalog
    from nbfeatures.engine.factory import create

    settings = settings or active_settings() or activate(load_settings())
    catalog = catalog or Catalog.from_settings(settings)
    fv = catalog.resolve(FeatureRef(family=name, feature="*", version=version), purpose="read")
    low = _utc(start) if start is not None else EARLIEST
    high = _utc(end) if end is not None else default_end()
    # Computing runs a Spark SQL or PySpark transformation: always the Spark engine.
    engine = create("spark", settings, spark)
    return engine.compute_version(settings, fv, low, high, progress=progress)


def build_join_index(
    name: str,
    version: int | None = None,
    *,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
) -> Path | None:
    """Write the join index of ``name``'s stored rows (``version``, else production, else
    latest); ``None`` where versions get none (``gs://``, over 30M rows). No Spark runs.

    Raises ``OfflineDataMissing`` when nothing was computed for the version.
    """
    from nbfeatures.catalog import Catalog
    from nbfeatures.engine.arrow.join_index import build_index
    from nbfeatures.engine.offline_store import read_manifest, version_path
    from nbfeatures.errors import OfflineDataMissing

    settings = settings or active_settings() or activate(load_settings())
    catalog = catalog or Catalog.from_settings(settings)
    fv = catalog.resolve(FeatureRef(family=name, feature="*", version=version), purpose="read")
    manifest = read_manifest(settings, fv.family.name, fv.version)
    if manifest is None:  # nothing computed at all: name the whole default range
        raise OfflineDataMissing(fv.family.name, fv.version, EARLIEST, default_end())
    path = version_path(settings, fv.family.name, fv.version)
    return build_index(manifest, path, fv.family.feature_names)
