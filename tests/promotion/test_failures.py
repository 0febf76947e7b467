"""Failures injected for real: a source removed after registration (Spark fails at full
scale), and Redis stopped just as materialization starts. Production must stay as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from servers import RedisServer, free_port

from nbfeatures.catalog import Catalog
from nbfeatures.config import Settings
from nbfeatures.errors import PromotionFailed
from nbfeatures.promotion import StepEvent

from .conftest import SQL_V1, SQL_V2, family, make_settings

pytestmark = pytest.mark.integration


def test_source_removed_after_registration_fails_at_compute(
    workspace: Settings, transactions: Path
) -> None:
    from nbfeatures.online.store import OnlineStore
    from nbfeatures.promotion import promote

    copy = transactions.parent / "removed.parquet"
    copy.write_bytes(transactions.read_bytes())
    name = "promo_gone"
    Catalog.from_settings(workspace).register(family(name, SQL_V1, copy))
    copy.unlink()

    with pytest.raises(PromotionFailed) as failed:
        promote(workspace, name)
    error = failed.value
    assert (error.step, error.version) == ("compute", 1)
    assert "removed.parquet" in error.reason
    assert error.notebook is not None and Path(error.notebook).exists()
    assert "production is unchanged" in str(error)
    assert OnlineStore.from_settings(workspace).live_version(name) is None


def test_redis_stopped_during_materialize(tmp_path: Path, transactions: Path) -> None:
    from nbfeatures.online.store import FamilyLayout, OnlineStore
    from nbfeatures.promotion import promote

    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        settings = make_settings(tmp_path / "ws", server.url)
        name = "promo_down"
        catalog = Catalog.from_settings(settings)
        v1 = catalog.register(family(name, SQL_V1, transactions)).version
        catalog.register(family(name, SQL_V2, transactions))
        # v1 "live" without a papermill run: its layout, the pointer and the alias.
        store = OnlineStore.from_settings(settings)
        store.write_layout(FamilyLayout.of(v1.family, 1))
        store.flip(name, 1, None)
        catalog.set_alias(name, "production", 1)

        def stop_redis(event: StepEvent) -> Any:
            if event.step == "materialize" and event.seconds is None:
                server.stop(save=True)  # the data survives for the restart below

        with pytest.raises(PromotionFailed) as failed:
            promote(settings, name, 2, progress=stop_redis)
        assert failed.value.step == "materialize"
        assert failed.value.cell is not None and failed.value.notebook is not None
        import nbformat

        cells = nbformat.read(failed.value.notebook, as_version=4).cells
        assert "materialize" in cells[failed.value.cell].metadata["tags"]
        server.start()
        assert OnlineStore.from_settings(settings).live_version(name) == 1
        assert catalog.get(name, alias="production").version == 1
    finally:
        server.stop()


def test_redis_unreachable_fails_before_anything_runs(tmp_path: Path) -> None:
    from nbfeatures.promotion import promote

    settings = make_settings(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(PromotionFailed) as failed:
        promote(settings, "promo_nowhere")
    assert failed.value.step == "lock" and failed.value.notebook is None
