"""Verification on its own: a real keyspace in Redis against the offline rows of Spark.

The keyspace is written from the very rows verification compares with, so it passes; then
one entity's value is rewritten in Redis and verification must name it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import SQL_V1, RedisServer, family

pytestmark = pytest.mark.integration

NAME = "verify_direct"


def _values(column: Any) -> list[Any]:
    return list(column.to_pylist() if hasattr(column, "to_pylist") else column.tolist())


def corrupt_value(store: Any, layout: Any, entity: str, feature: str = "amount") -> None:
    """Rewrite ``entity``'s value in ``layout``'s keyspace with ``feature`` one higher."""
    import pyarrow as pa

    rows = store.read(layout, [entity])
    assert bool(rows.present[0]), f"{entity} is not in {layout.family} v{layout.version}"
    columns: dict[str, Any] = {
        layout.entity_key: pa.array([entity]),
        layout.timestamp: pa.array(rows.event_time[:1]),
    }
    for name in layout.feature_names:
        value = _values(rows.columns[name])[0]
        columns[name] = pa.array([value + 1 if name == feature else value])
    assert store.write_rows(layout, pa.RecordBatch.from_pydict(columns)) == 1


def test_a_corrupted_online_value_fails_verification(
    spark: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    import pyarrow as pa
    import redis

    from nbfeatures.demo_data import write_transactions
    from nbfeatures.online import FamilyLayout, OnlineStore
    from nbfeatures.promotion.verify import latest_per_entity, verify_keyspace

    data = write_transactions(tmp_path / "transactions.parquet", rows=120, users=8, days=4)
    definition = family(NAME, SQL_V1, data)
    spark.read.parquet(str(data)).createOrReplaceTempView("transactions")
    latest = latest_per_entity(spark.sql(SQL_V1), definition)
    layout = FamilyLayout.of(definition, 1)
    store = OnlineStore(redis.Redis.from_url(redis_server.url), "nbf-verify-test")
    try:
        store.write_layout(layout)
        rows = pa.RecordBatch.from_pandas(latest.toPandas(), preserve_index=False)
        assert store.write_rows(layout, rows) == 8

        clean = verify_keyspace(store, layout, definition, latest, sample_size=100)
        assert clean.ok and clean.reason() == "verified"
        assert (clean.offline_entities, clean.online_keys, clean.sampled) == (8, 8, 8)

        entity = sorted(rows.column("user_id").to_pylist())[0]
        corrupt_value(store, layout, entity)
        report = verify_keyspace(store, layout, definition, latest, sample_size=100)
        assert not report.ok and report.counts_ok and not report.missing
        assert [(m.entity, m.feature) for m in report.mismatches] == [(entity, "amount")]
        mismatch = report.mismatches[0]
        assert mismatch.online == mismatch.offline + 1
        assert "1 of 8 sampled entities differ" in report.reason()
        assert f"{entity}.amount: offline" in report.reason()
        assert report.as_dict()["mismatches"] == 1 and report.as_dict()["ok"] is False
    finally:
        store.delete_version(NAME, 1)
        for key in store.client.scan_iter(match="nbf-verify-test*"):
            store.client.delete(key)
        store.close()
