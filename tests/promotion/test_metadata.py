"""ttl, retention and freshness are metadata: changed in place, applied by servers."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest

from nbfeatures.cli import run
from nbfeatures.config import Settings
from nbfeatures.definitions import FeatureRef
from nbfeatures.errors import DefinitionError

from .conftest import SQL_V1, family, forget_family

pytestmark = pytest.mark.integration

NAME = "meta_ttl"
STATUS_NAMES = {1: "PRESENT", 2: "NOT_FOUND", 3: "STALE"}


def statuses(store, now: dt.datetime) -> list[str]:
    """What a freshly started Python lookup answers for users 1 and 2 (its own layout cache)."""
    from nbfeatures.serving.lookup import FeatureLookup, OnlineQuery

    query = OnlineQuery({"user_id": ["1", "2"]}, (FeatureRef.parse(f"{NAME}:amount"),))
    result = FeatureLookup(store).read(query, now)[0]
    return [STATUS_NAMES[int(s)] for s in result.statuses]


def test_ttl_retention_and_freshness_change_without_a_new_version(
    workspace: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbfeatures.catalog import Catalog
    from nbfeatures.online.store import FamilyLayout, OnlineStore

    catalog = Catalog.from_settings(workspace)
    defined = replace(family(NAME, SQL_V1, tmp_path / "none.parquet"), ttl=dt.timedelta(hours=1))
    first = catalog.register(defined)
    assert first.created and first.version.family.ttl == dt.timedelta(hours=1)
    store = OnlineStore.from_settings(workspace)
    layout = FamilyLayout.of(first.version.family, 1)
    now = dt.datetime.now(dt.UTC)
    try:
        # User 1: 90 minutes old (STALE under the 1 h ttl); user 2: 3 hours (past 2 x ttl).
        batch = pa.RecordBatch.from_pydict(
            {
                "user_id": pa.array([1, 2], pa.int64()),
                "ts": pa.array([now - dt.timedelta(minutes=90), now - dt.timedelta(hours=3)],
                               pa.timestamp("us", "UTC")),
                "amount": [1.0, 2.0], "amount32": pa.array([1.0, 2.0], pa.float32()),
                "merchant": ["a", "b"], "cents": [100, 200],
            }
        )  # fmt: skip
        store.write_rows(replace(layout, ttl_seconds=None), batch)  # no expiry: reads decide
        store.write_layout(layout)
        store.flip(NAME, 1, None)
        assert statuses(store, now) == ["STALE", "NOT_FOUND"]

        code = run(["--workspace", str(workspace.workspace), "set", NAME,
                    "--ttl", "2h", "--retention", "1d", "--freshness", "30m"])  # fmt: skip
        assert code == 0
        out = capsys.readouterr().out
        assert "ttl 2h, retention 1d, freshness 30m" in out
        assert "online layouts rewritten: v1" in out

        stored = store.layout(NAME, 1)
        assert stored is not None
        assert (stored.ttl_seconds, stored.retention_seconds) == (7200, 86400)
        assert stored.hash == layout.hash  # the same version
        # A server that reads the layout now applies the new ttl: 90 min is fresh, 3 h STALE.
        assert statuses(store, now) == ["PRESENT", "STALE"]

        catalog = Catalog.from_settings(workspace)
        history = catalog.history(NAME)
        assert [v.version for v in history] == [1]
        got = catalog.get(NAME).family
        assert (got.ttl, got.retention, got.freshness) == (
            dt.timedelta(hours=2), dt.timedelta(days=1), dt.timedelta(minutes=30),
        )  # fmt: skip
        assert got.version_hash == defined.version_hash

        # Registering the same content with another ttl: no new version, and it says so.
        again = catalog.register(replace(defined, ttl=dt.timedelta(minutes=45)))
        assert not again.created and again.version.version == 1
        assert again.updated == ("ttl 2h -> 45m", "retention 1d -> none", "freshness 30m -> none")
        assert catalog.get(NAME).family.ttl == dt.timedelta(minutes=45)

        with pytest.raises(DefinitionError, match="retention"):
            run(["--workspace", str(workspace.workspace), "set", NAME, "--retention", "0d"])
    finally:
        forget_family(store, NAME, [1])
        store.close()
