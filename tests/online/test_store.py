"""The online store against three real backends: local Redis, embedded Redis, Redis Cluster."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest

from nbfeatures.errors import LiveVersionChanged, OnlineStoreError, SchemaError
from nbfeatures.online import FamilyLayout, OnlineStore

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
FEATURES = (
    ("spend", "float64"),
    ("visits", "int32"),
    ("segment", "string"),
    ("active", "bool"),
    ("first_seen", "timestamp"),
    ("score", "float32"),
    ("note", "string"),
)


def layout(version: int = 1, ttl: int | None = 3600) -> FamilyLayout:
    return FamilyLayout(
        family="user_stats",
        version=version,
        hash="abc",
        entity_key="user_id",
        timestamp="ts",
        features=FEATURES,
        ttl_seconds=ttl,
    )


def value_key(store: OnlineStore, version: int, entity: str | int) -> str:
    key = store.value_key("user_stats", version, entity)
    assert key is not None, "the version has no key id yet"
    return key


def rows(ids: list[int], ages_s: list[int]) -> pa.RecordBatch:
    n = len(ids)
    return pa.RecordBatch.from_pydict(
        {
            "user_id": pa.array(ids, pa.int64()),
            "ts": pa.array(
                [NOW - dt.timedelta(seconds=a) for a in ages_s], pa.timestamp("us", "UTC")
            ),
            "spend": [float(i) * 1.5 if i % 5 else None for i in ids],
            "visits": [i % 7 for i in ids],
            "segment": [f"seg-{i % 3}-é" if i % 4 else None for i in ids],
            "active": [i % 2 == 0 for i in ids],
            "first_seen": pa.array(
                [dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=i) for i in ids],
                pa.timestamp("us", "UTC"),
            ),
            "score": pa.array(np.linspace(0, 1, n), pa.float32()),
            "note": ["" if i % 3 == 0 else "x" * (i % 11) for i in ids],
        }
    )


def test_write_then_read_round_trips_every_type(store: OnlineStore) -> None:
    ids = list(range(1, 201))
    batch = rows(ids, [10] * len(ids))
    assert store.write_rows(layout(), batch) == 200

    asked = [*ids[::-1], 9999, "7"]
    got = store.read(layout(), asked)

    assert got.present.tolist() == [True] * 200 + [False, True]
    expected = batch.to_pydict()
    for name, _ in FEATURES:
        values = got.columns[name].to_pylist()
        assert values[:200] == expected[name][::-1], name
        assert values[200] is None
        assert values[201] == expected[name][6]
    assert np.isnat(got.event_time[200])
    assert got.event_time[0] == np.datetime64(NOW.replace(tzinfo=None) - dt.timedelta(seconds=10))
    table = got.to_arrow()
    assert table.num_rows == 202 and table.column("present").to_pylist()[200] is False


def test_values_expire_at_event_time_plus_ttl_plus_retention_and_read_stale_between(
    store: OnlineStore,
) -> None:
    ttl = 3600  # retention not set: the ttl again, so values are kept 2 h
    # 5400 s: past the ttl, inside the retention; 7300 s: past both, not written.
    batch = rows([1, 2, 3, 4], [10, 3000, 5400, 7300])
    assert store.write_rows(layout(ttl=ttl), batch) == 3

    remaining = store.client.pttl(value_key(store, 1, 2))
    # ``NOW`` is fixed at import: a long test session has aged every value since.
    aged = (dt.datetime.now(dt.UTC) - NOW).total_seconds()
    assert (2 * ttl - 3000 - aged - 60) * 1000 < remaining <= (2 * ttl - 3000) * 1000
    got = store.read(layout(ttl=ttl), [1, 2, 3, 4])
    assert got.present.tolist() == [True, True, True, False]
    assert got.stale(NOW).tolist() == [False, False, True, False]
    later = NOW + dt.timedelta(seconds=ttl - 2000)
    assert got.stale(later).tolist() == [False, True, True, False]
    # An explicit retention: kept ttl + 10 min, so the 5400 s old value is gone.
    short = replace(layout(version=2, ttl=ttl), retention_seconds=600)
    assert store.write_rows(short, batch) == 2
    assert store.read(short, [1, 2, 3, 4]).present.tolist() == [True, True, False, False]


def test_without_ttl_keys_do_not_expire(store: OnlineStore) -> None:
    store.write_rows(layout(ttl=None), rows([1], [10**6]))
    assert store.client.pttl(value_key(store, 1, 1)) == -1
    assert store.read(layout(ttl=None), [1]).stale(NOW + dt.timedelta(days=999)).tolist() == [False]


def test_layout_watermark_and_counts(store: OnlineStore) -> None:
    assert store.layout("user_stats", 1) is None
    store.write_layout(layout())
    assert store.layout("user_stats", 1) == layout()
    assert store.watermark("user_stats", 1) is None
    store.set_watermark("user_stats", 1, NOW)
    assert store.watermark("user_stats", 1) == NOW
    store.write_rows(layout(), rows(list(range(2500)), [1] * 2500))
    assert store.count_keys("user_stats", 1) == 2500


def test_flip_is_conditional_and_keeps_history(store: OnlineStore) -> None:
    with pytest.raises(OnlineStoreError, match="no layout"):
        store.flip("user_stats", 1, None)
    store.write_layout(layout(1))
    store.write_layout(layout(2))
    assert store.live_version("user_stats") is None
    assert store.flip("user_stats", 1, None) is None
    assert store.flip("user_stats", 2, 1) == 1
    with pytest.raises(LiveVersionChanged) as raised:
        store.flip("user_stats", 1, 1)
    assert raised.value.actual == 2 and raised.value.expected == 1
    assert store.live_version("user_stats") == 2
    assert store.live_history("user_stats") == [1]
    assert store.live_versions() == {"user_stats": 2}


def test_delete_version_refuses_the_live_one(store: OnlineStore) -> None:
    for version in (1, 2):
        store.write_layout(layout(version))
        store.write_rows(layout(version), rows(list(range(30)), [1] * 30))
    store.flip("user_stats", 2, None)
    with pytest.raises(OnlineStoreError, match="live version"):
        store.delete_version("user_stats", 2)
    assert store.delete_version("user_stats", 1) == 30
    assert store.count_keys("user_stats", 1) == 0
    assert store.layout("user_stats", 1) is None
    assert store.count_keys("user_stats", 2) == 30


def test_a_version_keeps_its_keys_in_one_slot(store: OnlineStore) -> None:
    store.write_layout(layout(3))
    keys = [value_key(store, 3, e) for e in (1, "abc", 10**12)]
    slots = {_slot(k) for k in keys}
    assert len(slots) == 1


def _slot(key: str) -> int:
    from redis.crc import key_slot

    return int(key_slot(key.encode()))


def test_bad_rows_and_foreign_values_raise_clearly(store: OnlineStore) -> None:
    bad = rows([1], [1]).drop_columns(["spend"])
    with pytest.raises(SchemaError, match="spend"):
        store.write_rows(layout(), bad)
    wrong_type = layout()
    store.write_layout(wrong_type)
    key = value_key(store, 1, 5)
    store.client.set(key, b"\x09not a value of format 1")
    with pytest.raises(OnlineStoreError, match="shorter than its layout"):
        store.read(wrong_type, [5])


def test_value_keys_are_short_and_distinct_per_version(store: OnlineStore) -> None:
    for version in (1, 2):
        store.write_layout(layout(version))
        store.write_rows(layout(version), rows([1234567], [1]))
    first, second = value_key(store, 1, 1234567), value_key(store, 2, 1234567)
    assert first != second
    assert first.startswith(store.prefix + "{") and first.endswith("}1234567")
    assert len(first) - len(store.prefix) <= len("{zz}1234567")
    assert store.client.exists(first) == 1 and store.client.exists(second) == 1
    # Another store (a server, a worker) finds the same id instead of drawing a new one.
    other = OnlineStore(store.client, store.prefix)
    assert other.key_id("user_stats", 2, create=True) == store.key_id("user_stats", 2)


def test_reading_a_version_never_written_finds_nothing(store: OnlineStore) -> None:
    got = store.read(layout(9), [1, 2])
    assert got.present.tolist() == [False, False]
    assert store.key_id("user_stats", 9) is None
    assert store.count_keys("user_stats", 9) == 0


# -- packed versions: records of a fixed width, several entities to a Redis hash --------------

NUMBERS = (("spend", "float64"), ("visits", "int32"), ("active", "bool"), ("score", "float32"))


def packed_layout(version: int = 1, ttl: int | None = 3600) -> FamilyLayout:
    return replace(layout(version, ttl), family="user_numbers", hash="p", features=NUMBERS)


def numbers(ids: list[int], ages_s: list[int], spend: float = 1.5) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "user_id": pa.array(ids, pa.int64()),
            "ts": pa.array(
                [NOW - dt.timedelta(seconds=a) for a in ages_s], pa.timestamp("us", "UTC")
            ),
            "spend": [i * spend if i % 5 else None for i in ids],
            "visits": pa.array([i % 7 for i in ids], pa.int32()),
            "active": [i % 2 == 0 for i in ids],
            "score": pa.array([i / 4 for i in ids], pa.float32()),
        }
    )


def test_fixed_width_versions_are_packed_into_few_compact_keys(store: OnlineStore) -> None:
    target = store.write_layout(packed_layout(), entities=600)
    assert target.packing is not None and target.packing.buckets == 64
    ids = list(range(600))
    assert store.write_rows(packed_layout(), numbers(ids, [5] * 600)) == 600

    got = store.read(packed_layout(), [*ids, 600, 10**9])
    assert got.present.tolist() == [True] * 600 + [False, False]
    assert got.columns["spend"].to_pylist()[:6] == [None, 1.5, 3.0, 4.5, 6.0, None]
    assert got.columns["visits"].to_pylist()[597:600] == [2, 3, 4]
    assert got.columns["score"].to_pylist()[599] == 149.75
    assert store.count_keys("user_numbers", 1) == 600
    tag = store.keys.value_tag(target.key_id)
    buckets = list(store.client.scan_iter(match=f"{tag}*", count=1000))
    assert len(buckets) <= 64
    encodings = {store.client.object("encoding", b) for b in buckets}
    assert encodings <= {b"listpack", b"ziplist"}  # Redis 7 and 6.2 (the embedded server)
    # Every key of the version is in one cluster slot.
    assert len({_slot(b.decode()) for b in buckets}) == 1
    # A second write decides nothing new: the packing stays what it was.
    assert store.write_layout(packed_layout(), entities=10**7).packing == target.packing


def test_a_rewrite_replaces_values_and_the_last_row_of_a_batch_wins(store: OnlineStore) -> None:
    store.write_layout(packed_layout(), entities=50)
    store.write_rows(packed_layout(), numbers(list(range(50)), [9] * 50))
    again = numbers([7, 8, 7], [1, 1, 1], spend=100.0)
    again = again.set_column(2, "spend", pa.array([1.0, 2.0, 3.0]))
    assert store.write_rows(packed_layout(), again) == 3
    got = store.read(packed_layout(), [7, 8, 9])
    assert got.columns["spend"].to_pylist() == [3.0, 2.0, 13.5]
    assert store.count_keys("user_numbers", 1) == 50


def test_a_bucket_expires_with_its_newest_member_and_old_members_read_stale(
    store: OnlineStore,
) -> None:
    ttl = 3600
    target = store.write_layout(packed_layout(ttl=ttl), entities=1)  # one bucket for all
    assert target.packing is not None and target.packing.buckets == 1
    bucket = store.value_key("user_numbers", 1, 1)
    assert bucket is not None

    def expires_at() -> float:
        return time.time() * 1000 + store.client.pttl(bucket)

    def expiry_of(age_s: int) -> float:
        """When a value ``age_s`` old at ``NOW`` expires (``NOW`` is fixed at import)."""
        return (NOW.timestamp() - age_s + 2 * ttl) * 1000  # ttl + retention (the ttl again)

    store.write_rows(packed_layout(ttl=ttl), numbers([1, 2], [3000, 3000]))
    assert abs(expires_at() - expiry_of(3000)) < 2000
    # A newer member pushes the bucket's expiry out; an older one never pulls it in.
    store.write_rows(packed_layout(ttl=ttl), numbers([3], [10]))
    assert abs(expires_at() - expiry_of(10)) < 2000
    store.write_rows(packed_layout(ttl=ttl), numbers([4], [2000]))
    assert abs(expires_at() - expiry_of(10)) < 2000
    got = store.read(packed_layout(ttl=ttl), [1, 2, 3, 4])
    assert got.present.all()
    soon = NOW + dt.timedelta(seconds=ttl - 2500)
    assert got.stale(soon).tolist() == [True, True, False, False]


def test_packed_values_without_ttl_never_expire(store: OnlineStore) -> None:
    store.write_layout(packed_layout(ttl=None), entities=10)
    store.write_rows(packed_layout(ttl=None), numbers([1], [10**6]))
    assert store.client.pttl(store.value_key("user_numbers", 1, 1) or "") == -1


def test_deleting_packed_entities_and_versions(store: OnlineStore) -> None:
    for version in (1, 2):
        store.write_layout(packed_layout(version), entities=30)
        store.write_rows(packed_layout(version), numbers(list(range(30)), [1] * 30))
    assert store.delete_entity("user_numbers", 1, 4)
    assert not store.delete_entity("user_numbers", 1, 4)
    assert store.read(packed_layout(1), [3, 4, 5]).present.tolist() == [True, False, True]
    store.flip("user_numbers", 2, None)
    assert store.delete_version("user_numbers", 1) == 29
    assert store.count_keys("user_numbers", 1) == 0
    assert store.packing("user_numbers", 1, fresh=True) is None
    assert store.count_keys("user_numbers", 2) == 30


def test_a_version_written_before_packings_is_read_as_one_key_per_entity(
    store: OnlineStore,
) -> None:
    """No packing record (an older nbfeatures wrote it): values are single keys, read by MGET."""
    from nbfeatures.online import WriteTarget

    old = packed_layout(version=7)
    key_id = store.key_id("user_numbers", 7, create=True)
    assert key_id is not None
    store.write_rows(old, numbers([1, 2, 3], [5, 5, 5]), target=WriteTarget(key_id, None))
    store.client.set(store.keys.layout("user_numbers", 7), old.to_json())

    assert store.client.exists(store.keys.packing("user_numbers", 7)) == 0
    assert store.packing("user_numbers", 7) is None
    got = store.read(old, [1, 2, 3, 4])
    assert got.present.tolist() == [True, True, True, False]
    assert got.columns["visits"].to_pylist() == [1, 2, 3, None]
    assert store.count_keys("user_numbers", 7) == 3
    assert store.client.type(store.value_key("user_numbers", 7, 2) or "") == b"string"


def test_an_unreadable_packing_record_is_named(store: OnlineStore) -> None:
    store.write_layout(packed_layout(version=8), entities=10)
    store.client.set(store.keys.packing("user_numbers", 8), "not json")
    fresh = OnlineStore(store.client, store.prefix)  # nothing cached
    with pytest.raises(OnlineStoreError, match="user_numbers v8: the packing record 'not json'"):
        fresh.read(packed_layout(version=8), [1])


@pytest.mark.parametrize("shape", ["keyed", "packed"])
def test_values_are_read_only_under_the_version_their_key_id_was_drawn_for(
    store: OnlineStore, shape: str
) -> None:
    """The owner record ``nbf:own:{ID}`` names the version, in the slot of its values."""
    family = layout() if shape == "keyed" else packed_layout()
    store.write_layout(family, entities=10)
    store.write_rows(family, rows([1, 2], [5, 5]) if shape == "keyed" else numbers([1, 2], [5, 5]))
    key_id = store.key_id(family.family, 1)
    assert key_id is not None
    owner = store.keys.owner(key_id)
    assert store.client.get(owner) == store.keys.owner_text(family.family, 1).encode()
    assert _slot(owner) == _slot(store.keys.value_tag(key_id))
    assert store.read(family, [1, 2]).present.tolist() == [True, True]
    # Drawn again for another version (after a data loss): these values are not family's.
    store.client.set(owner, "other:v3")
    assert store.read(family, [1, 2]).present.tolist() == [False, False]
    # An id recorded before owner records were (none) is trusted, and given one by writers.
    store.client.delete(owner)
    assert store.read(family, [1, 2]).present.tolist() == [True, True]
    store.write_target(family)
    assert store.client.get(owner) == store.keys.owner_text(family.family, 1).encode()
