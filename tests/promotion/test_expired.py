"""Promoting data older than its ttl: refused at verify unless opted in; the numbers shown.

Also the packed bucket count the promotion records: sized for the offline set's entities.
Three papermill runs (each a kernel with its own Spark), so the module keeps to them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from nbfeatures.cli import run
from nbfeatures.config import Settings
from nbfeatures.errors import PromotionFailed

from .conftest import FEATURES, family, forget_family

pytestmark = pytest.mark.integration

NUMBERS_SQL = "SELECT user_id, ts, amount, CAST(amount * 100 AS BIGINT) AS cents FROM transactions"
NUMBERS = tuple(f for f in FEATURES if f.name in ("amount", "cents"))


def _numbers(name: str, data: Path, ttl: dt.timedelta, retention: dt.timedelta | None) -> object:
    base = family(name, NUMBERS_SQL, data)
    return replace(base, features=NUMBERS, ttl=ttl, retention=retention)


def test_old_data_is_refused_and_production_untouched(
    workspace: Settings, transactions: Path
) -> None:
    """The shared demo data is years old: past ttl + retention, nothing is written."""
    from nbfeatures.catalog import Catalog
    from nbfeatures.online.store import OnlineStore
    from nbfeatures.promotion import promote

    name = "expired_old"
    catalog = Catalog.from_settings(workspace)
    catalog.register(_numbers(name, transactions, dt.timedelta(days=1), None))
    store = OnlineStore.from_settings(workspace)
    try:
        with pytest.raises(PromotionFailed) as failed:
            promote(workspace, name)
        error = failed.value
        assert error.step == "verify"
        assert "holds no entities" in error.reason
        assert "20 entities offline, 20 past the ttl 1d" in error.reason
        assert "newest event time 20" in error.reason
        assert "--allow-expired" in error.reason
        assert store.live_version(name) is None
        assert Catalog.from_settings(workspace).get(name).status == "draft"
    finally:
        forget_family(store, name, [1])
        store.close()


def test_mostly_stale_is_refused_then_promoted_with_allow_expired(
    workspace: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Recent data, every latest value past a 1 h ttl but inside a 30 d retention."""
    from nbfeatures.catalog import Catalog
    from nbfeatures.demo_data import write_transactions
    from nbfeatures.online.store import OnlineStore
    from nbfeatures.promotion import promote

    end = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    data = write_transactions(tmp_path / "recent.parquet", rows=200, users=20, days=5, end=end)
    name = "expired_stale"
    Catalog.from_settings(workspace).register(
        _numbers(name, data, dt.timedelta(hours=1), dt.timedelta(days=30))
    )
    store = OnlineStore.from_settings(workspace)
    try:
        with pytest.raises(PromotionFailed) as failed:
            promote(workspace, name)
        error = failed.value
        assert error.step == "verify"
        assert "20 of 20 entities (100%) are past their ttl 1h" in error.reason
        assert store.live_version(name) is None
        assert store.count_keys(name, 1) == 20  # kept for the retention window

        code = run(["--workspace", str(workspace.workspace), "promote", name, "--allow-expired"])
        assert code == 0
        out = capsys.readouterr().out
        assert f"{name} v1 is live" in out
        assert f"{name} v1: entities online 20, newest event time 20" in out
        assert "expired share 100%" in out
        assert store.live_version(name) == 1

        # 20 entities: a couple of buckets, not the 4,096 of an unknown count.
        packing = store.packing(name, 1, fresh=True)
        assert packing is not None and packing.buckets <= 4

        from nbfeatures.promotion.status import print_status

        print_status(workspace)
        status = capsys.readouterr().out
        line = next(x for x in status.splitlines() if x.startswith(name))
        assert "live v1" in line
        details = status.splitlines()[status.splitlines().index(line) + 1]
        assert "entities 20, newest event time" in details and "expired 100% (ttl 1h)" in details
    finally:
        forget_family(store, name, [1])
        store.close()
