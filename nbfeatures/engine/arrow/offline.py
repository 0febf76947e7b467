"""A stored version's rows for the in-process join: its join index, else its Parquet."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from nbfeatures.engine.arrow.join_index import open_index
from nbfeatures.engine.arrow.rows import ParquetRows
from nbfeatures.engine.offline_store import arrow_dataset, date_filter, read_manifest, version_path
from nbfeatures.errors import OfflineDataMissing

if TYPE_CHECKING:
    from nbfeatures.config import Settings


def offline_rows(
    settings: Settings,
    family: str,
    version: int,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> int | None:
    """Rows the manifest counts on the UTC dates of ``[start, end]``; ``None`` if unknown."""
    manifest = read_manifest(settings, family, version)
    if manifest is None:
        return None
    low = start.date().isoformat() if start is not None else ""
    high = end.date().isoformat() if end is not None else "9999"
    return sum(int(p["rows"]) for d, p in manifest.partitions.items() if low <= d <= high)


def read_offline_table(
    settings: Settings,
    family: str,
    version: int,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> Any:
    """The stored rows of a family version for the in-process join: its join index
    (``arrow.join_index``) when one matches the manifest, else its Parquet on the UTC dates
    of ``[start, end]``.

    Local roots and ``gs://`` alike (``engine.gcs``); nothing is read until the join asks.
    Only the dates are pruned: rows outside the exact bounds can never be chosen by the join,
    which drops them itself (so the index, which holds every date, gives the same answer).
    """
    manifest = read_manifest(settings, family, version)
    if manifest is None:
        now = dt.datetime.now(dt.UTC)
        raise OfflineDataMissing(family, version, start or now, end or now)
    path = version_path(settings, family, version)

    def parquet() -> ParquetRows:
        return ParquetRows.from_dataset(
            arrow_dataset(path, settings.gcs_emulator), date_filter(start, end)
        )

    return open_index(manifest, path, parquet) or parquet()
