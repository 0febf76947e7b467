"""The join index answers exactly what the rule (and the join over the Parquet) answers.

Each test writes a small offline folder (date-partitioned Parquet and a manifest, as
``compute_offline`` leaves them), builds its index, joins through the memory-mapped index and
checks every spine row against the brute-force reading of the rule in
``test_local_pit_threads``: ties on (entity, time) with null, NaN and signed zeros, null keys
and times, rows exactly on the spine time and on the ttl boundary, spine keys the family
never saw. No Spark here; ``test_local_pit`` checks computed versions against Spark's join.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from index_helpers import NOW, indexed, offline_folder
from test_local_pit_threads import (
    TTL,
    US,
    XK,
    brute_force,
    check,
    feature_table,
    join,
    minutes,
    spine_table,
)

from nbfeatures.engine.arrow.columns import ArrowFeatures
from nbfeatures.engine.arrow.join_index import INDEX_DIR, build_index, fingerprint, open_index
from nbfeatures.engine.arrow.pit import point_in_time_join_arrow
from nbfeatures.engine.arrow.rows import ParquetRows
from nbfeatures.engine.offline_store import arrow_dataset
from nbfeatures.errors import DefinitionError

FEATURES = ("x", "k", "tag")


@pytest.mark.parametrize("ttl", [None, TTL])
def test_the_index_gives_the_rule_s_answer(tmp_path: Path, ttl: dt.timedelta | None) -> None:
    features = feature_table(11, 700, 50)
    spine = spine_table(12, 400, 50)
    expected = brute_force(features, spine, ttl, XK)
    assert sum(e[0] is not None or e[1] is not None for e in expected) > 100
    index = indexed(features, tmp_path, FEATURES)
    assert index.times is None  # minutes over a short range: offset keys
    # Rows with a null key or time can never be chosen and are left out; ties stay.
    rows = features.select(["user_id", "ts"]).to_pylist()
    usable = [r for r in rows if r["user_id"] is not None and r["ts"] is not None]
    assert index.rows.num_rows == len(usable) < len(rows)
    assert len({(r["user_id"], r["ts"]) for r in usable}) < len(usable)
    for threads in (1, 2, 3):
        joined = join(spine, index, threads, ttl)
        check(joined, expected)
        assert joined["n"].to_pylist() == list(range(400))
        assert joined.schema == join(spine, features, threads, ttl).schema


def test_times_too_wide_for_offsets_are_ranked(tmp_path: Path) -> None:
    # 30 entities times nine millennia of microseconds overflow int64: times become ranks.
    base = feature_table(14, 300, 30)
    far = [dt.datetime(1, 1, 1, tzinfo=dt.UTC), dt.datetime(9000, 1, 1, tzinfo=dt.UTC)]
    stamps = base["ts"].to_pylist()
    stamps[0], stamps[1] = far
    features = base.set_column(1, "ts", pa.array(stamps, US))
    spine = spine_table(15, 200, 30)
    asked = spine["event_timestamp"].to_pylist()
    asked[0], asked[1] = far[1], far[0]
    spine = spine.set_column(1, "event_timestamp", pa.array(asked, US))
    index = indexed(features, tmp_path, FEATURES)
    assert index.times is not None
    check(join(spine, index, 2, None), brute_force(features, spine, None, XK))
    check(join(spine, index, 2, TTL), brute_force(features, spine, TTL, XK))


def test_text_keys_and_ties_broken_by_the_features_asked_for(tmp_path: Path) -> None:
    # The winner of a tie depends on the features asked for (here tag then k, not x then k).
    def as_text(table: pa.Table) -> pa.Table:
        return table.set_column(0, "user_id", table["user_id"].cast(pa.string()))

    features = as_text(feature_table(16, 400, 40))
    spine = as_text(spine_table(17, 200, 40))
    index = indexed(features, tmp_path, FEATURES)
    assert index.accepts(pa.string()) and not index.accepts(pa.int64())
    check(join(spine, index, 2, TTL), brute_force(features, spine, TTL, XK))
    family = ArrowFeatures("g", index, "user_id", "ts", ("tag", "k"), TTL)
    joined = point_in_time_join_arrow(spine, [family], timestamp_column="event_timestamp")
    by_tag = brute_force(features, spine, TTL, ("tag", "k"))
    assert joined["g__tag"].to_pylist() == [tag for tag, _, _ in by_tag]


def test_a_spine_key_of_another_kind_is_refused_as_on_spark(tmp_path: Path) -> None:
    # Integer spine, text family: this used to be joined by casting the text keys, which the
    # Spark engine failed on ("u1") or matched differently; both engines now refuse it.
    features = feature_table(18, 300, 30)
    text = features.set_column(0, "user_id", features["user_id"].cast(pa.string()))
    spine = spine_table(19, 100, 30)
    index = indexed(text, tmp_path, FEATURES)
    assert not index.accepts(spine["user_id"].type)
    with pytest.raises(DefinitionError, match="'user_id' is integer and family f's is string"):
        join(spine, index, 2, TTL)


def test_a_narrower_integer_spine_key_is_looked_up(tmp_path: Path) -> None:
    features = feature_table(20, 300, 30)
    spine = spine_table(21, 150, 30)
    narrow = spine.set_column(0, "user_id", spine["user_id"].cast(pa.int32()))
    index = indexed(features, tmp_path, FEATURES)
    assert index.accepts(pa.int32())
    joined = join(narrow, index, 2, TTL)
    check(joined, brute_force(features, spine, TTL, XK))
    assert joined["user_id"].type == pa.int64()  # widened to the family's, as Spark does


def test_no_row_chosen_gives_typed_null_columns(tmp_path: Path) -> None:
    index = indexed(feature_table(22, 60, 5), tmp_path, FEATURES)
    spine = pa.table(
        {"user_id": pa.array([100, None, 1], pa.int64()), "event_timestamp": minutes([3, 3, -5])}
    )
    joined = join(spine, index, 2, TTL)
    assert joined["f__x"].type == pa.float64() and joined["f__k"].type == pa.int64()
    assert joined["f__x"].null_count == 3 and joined["f__event_time"].null_count == 3


def test_an_index_is_read_only_while_its_manifest_is_current(tmp_path: Path) -> None:
    features = feature_table(23, 200, 20)
    manifest, path = offline_folder(features, tmp_path)
    first = build_index(manifest, path, FEATURES)
    assert first is not None and first.name == fingerprint(manifest)
    assert json.loads((first / "index.json").read_text())["rows"] > 0

    def fallback() -> ParquetRows:
        return ParquetRows.from_dataset(arrow_dataset(path))

    # Computed again: another fingerprint, the old index is not read, then replaced.
    later = dataclasses.replace(manifest, updated_at=NOW + dt.timedelta(hours=1))
    assert fingerprint(later) != fingerprint(manifest)
    assert open_index(later, path, fallback) is None
    second = build_index(later, path, FEATURES)
    assert second is not None and not first.exists()
    assert [p.name for p in (Path(path) / INDEX_DIR).iterdir()] == [second.name]
    assert open_index(later, path, fallback) is not None
    # The Parquet reader never sees the index's files.
    assert arrow_dataset(path).count_rows() == features.num_rows


def test_a_half_present_index_is_not_read(tmp_path: Path) -> None:
    # A computation replacing the index, or a damaged folder: the Parquet is read instead.
    manifest, path = offline_folder(feature_table(24, 100, 10), tmp_path)
    folder = build_index(manifest, path, FEATURES)
    assert folder is not None
    (folder / "rows.arrow").unlink()
    assert open_index(manifest, path, lambda: ParquetRows.from_dataset(arrow_dataset(path))) is None
    (folder / "index.json").write_text("{not json")
    assert open_index(manifest, path, lambda: ParquetRows.from_dataset(arrow_dataset(path))) is None


def test_a_version_grown_past_the_limit_keeps_no_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, path = offline_folder(feature_table(25, 100, 10), tmp_path)
    assert build_index(manifest, path, FEATURES) is not None
    monkeypatch.setattr("nbfeatures.engine.arrow.join_index.MAX_ROWS", 50)
    later = dataclasses.replace(manifest, updated_at=NOW + dt.timedelta(hours=1))
    assert build_index(later, path, FEATURES) is None
    assert list((Path(path) / INDEX_DIR).iterdir()) == []
