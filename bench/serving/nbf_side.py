"""nbfeatures' side: load the family into Redis, build request messages, check an answer.

Loading writes the family's layout and rows straight into the online store
(``write_layout``, ``write_rows`` in 10k-row Arrow batches, ``flip``), which is what a
materialization ends with; the benchmark measures serving, not writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.serving.data import ENTITY_KEY, FAMILY, FEATURES, PARQUET, TIMESTAMP

METHOD = "/nbfeatures.serving.v1.FeatureService/GetOnlineFeatures"
TTL_SECONDS = 7 * 86_400


def layout():  # type: ignore[no-untyped-def]
    from nbfeatures.online import FamilyLayout

    return FamilyLayout(
        family=FAMILY,
        version=1,
        hash="bench",
        entity_key=ENTITY_KEY,
        timestamp=TIMESTAMP,
        features=tuple((name, "float64") for name in FEATURES),
        ttl_seconds=TTL_SECONDS,
    )


def load(redis_url: str, path: Path = PARQUET) -> int:
    """Write every row of the Parquet file as the live version 1 of the family."""
    import pyarrow.parquet as pq

    from nbfeatures.online import OnlineStore

    store = OnlineStore.from_url(redis_url)
    family = layout()
    # Sized for the file's entities (one row each), as materialization sizes a packed version.
    store.write_layout(family, entities=pq.ParquetFile(path).metadata.num_rows)
    rows = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
        store.write_rows(family, batch)
        rows += batch.num_rows
    store.flip(FAMILY, 1, None)
    store.close()
    return rows


def value_keys(redis_url: str, ids: Sequence[int]) -> list[str]:
    """The Redis keys holding ``ids``' values (for redis-benchmark's MGET).

    The family is packed, so these are the entities' buckets: Redis hashes, which ``MGET``
    answers as nil. The limit is then that of ``MGET`` of as many keys, not of our reads.
    """
    from nbfeatures.online import OnlineStore

    store = OnlineStore.from_url(redis_url)
    keys = [store.value_key(FAMILY, 1, i) for i in ids]
    store.close()
    return [k for k in keys if k is not None]


def refs(feature_count: int) -> list[str]:
    return [f"{FAMILY}:{name}" for name in FEATURES[:feature_count]]


def requests(sets: Sequence[Sequence[int]], feature_count: int) -> list[bytes]:
    """Serialized ``GetOnlineFeaturesRequest`` messages, one per entity set."""
    from nbfeatures.serving._generated import features_pb2 as pb

    wanted = refs(feature_count)
    out = []
    for ids in sets:
        message = pb.GetOnlineFeaturesRequest(
            entities={ENTITY_KEY: pb.EntityColumn(int64_values=pb.Int64Array(values=ids))},
            features=wanted,
        )
        out.append(message.SerializeToString())
    return out


def check(target: str, ids: Sequence[int], feature_count: int, expected: dict[int, float]) -> None:
    """One call through ``FeatureClient``: every value present and equal to the Parquet's f0."""
    from nbfeatures.client import FeatureClient

    with FeatureClient(target, timeout=10.0) as client:
        got = client.get_online_features({ENTITY_KEY: list(ids)}, refs(feature_count))
    values = got[f"{FAMILY}:f0"]
    statuses = got.statuses[f"{FAMILY}:f0"]
    wrong = [
        (i, v, s)
        for i, v, s in zip(ids, values, statuses, strict=True)
        if s != "PRESENT" or v != expected[i]
    ]
    if wrong:
        raise SystemExit(f"nbfeatures answered wrong values: {wrong[:3]}")
