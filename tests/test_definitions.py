"""Definitions: validation names the field, and version identity follows only semantic fields."""

from __future__ import annotations

import datetime as dt

import pytest

from nbfeatures.definitions import (
    Deprecation,
    Entity,
    Feature,
    FeatureFamily,
    FeatureRef,
    FeatureType,
    Source,
    SourceFormat,
    Transformation,
    check_name,
    format_duration,
    normalize_sql,
    parse_duration,
    parse_refs,
    parse_tags,
)
from nbfeatures.errors import DefinitionError

SQL = """
SELECT user_id, ts,
       amount AS last_amount   -- the newest amount
FROM transactions
"""


def family(**changes: object) -> FeatureFamily:
    fields: dict[str, object] = {
        "name": "user_spend",
        "entity": Entity("user", "user_id"),
        "timestamp": "ts",
        "features": (Feature("last_amount", FeatureType.FLOAT64),),
        "transformation": Transformation("sql", SQL),
        "sources": (Source("transactions", "data/tx.parquet", SourceFormat.PARQUET, "ts"),),
        "owner": "ana",
        "ttl": "7d",
    }
    fields.update(changes)
    return FeatureFamily(**fields)  # type: ignore[arg-type]


def test_same_content_same_hash_and_metadata_does_not_change_it() -> None:
    base = family()
    assert family().version_hash == base.version_hash
    relabelled = base.with_metadata(owner="bo", description="spend", tags=["finance"])
    assert relabelled.version_hash == base.version_hash
    assert family(ttl="1d", freshness="1h").version_hash == base.version_hash


def test_formatting_and_comments_do_not_change_the_hash() -> None:
    reformatted = "select user_id, ts, amount AS last_amount FROM transactions;"
    assert (
        family(transformation=Transformation("sql", SQL.replace("SELECT", "select"))).version_hash
        != family().version_hash
    )  # keywords keep their case
    squeezed = "SELECT user_id, ts, amount AS last_amount FROM transactions"
    assert (
        family(transformation=Transformation("sql", squeezed)).version_hash == family().version_hash
    )
    assert normalize_sql(reformatted).endswith("transactions")


def test_string_literals_keep_their_whitespace() -> None:
    assert normalize_sql("SELECT 'a  b' -- c\n") == "SELECT 'a  b'"
    assert normalize_sql("SELECT 'a -- b'") == "SELECT 'a -- b'"


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("timestamp", "event_ts"),
        ("entity", Entity("user", "customer_id")),
        ("features", (Feature("last_amount", FeatureType.FLOAT32),)),
        ("sources", (Source("transactions", "data/other.parquet", SourceFormat.PARQUET, "ts"),)),
        ("transformation", Transformation("sql", SQL.replace("amount", "2 * amount"))),
    ],
)
def test_semantic_fields_change_the_hash(change: str, value: object) -> None:
    assert family(**{change: value}).version_hash != family().version_hash


def test_round_trip_through_dict() -> None:
    original = family(tags=("b", "a"), description="d", freshness="1h")
    rebuilt = FeatureFamily.from_dict(original.to_dict())
    assert rebuilt == original
    assert rebuilt.to_dict()["hash"] == original.version_hash
    assert rebuilt.tags == ("a", "b")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "User-Spend"}, "name"),
        ({"name": "1abc"}, "name"),
        ({"owner": " "}, "owner"),
        ({"features": ()}, "features"),
        ({"features": (Feature("a", "float64"), Feature("a", "int64"))}, "features"),
        ({"features": (Feature("ts", "float64"),)}, "features"),
        ({"ttl": "7 days"}, "ttl"),
        ({"ttl": "0d"}, "ttl"),
        ({"name": "user_spend\n"}, "name"),
        ({"timestamp": "ts\n"}, "timestamp"),
        ({"ttl": "\u0667d"}, "ttl"),  # ARABIC-INDIC DIGIT SEVEN
        ({"ttl": "\uff17d"}, "ttl"),  # FULLWIDTH DIGIT SEVEN
        ({"freshness": "\u0969h"}, "freshness"),  # DEVANAGARI DIGIT THREE
        ({"ttl": "99999999999d"}, "ttl"),
        ({"ttl": "36501d"}, "ttl"),
        ({"freshness": "99999999999999999999w"}, "freshness"),
        ({"ttl": dt.timedelta(days=999_999_999)}, "ttl"),
    ],
)
def test_invalid_fields_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        family(**changes)
    assert raised.value.field == field


def test_unsupported_types_are_refused_with_the_supported_list() -> None:
    with pytest.raises(DefinitionError, match="not supported"):
        Feature("x", "decimal")  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="array<int> is not supported") as raised:
        FeatureType.from_spark("array<int>", "tags")
    assert raised.value.field == "features.tags"
    assert FeatureType.from_spark("bigint", "n") is FeatureType.INT64


def test_a_feature_name_ending_in_a_newline_is_refused() -> None:
    with pytest.raises(DefinitionError, match="not a valid name") as raised:
        Feature("amount\n", FeatureType.FLOAT64)
    assert "amount\\n" in str(raised.value)
    with pytest.raises(DefinitionError):
        Entity("user\n", "user_id")
    with pytest.raises(DefinitionError):
        check_name("user_spend\n", "name")
    assert check_name("user_spend", "name") == "user_spend"


def test_a_huge_duration_names_its_field_and_the_limit() -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_duration("99999999999d", "ttl")
    assert raised.value.field == "ttl"
    assert "99999999999d" in raised.value.reason and "36500d" in raised.value.reason
    assert parse_duration("36500d", "ttl") == dt.timedelta(days=36500)
    assert parse_duration(" 7d\n", "ttl") == dt.timedelta(days=7)  # ASCII spaces still pass


def test_durations_round_trip() -> None:
    assert parse_duration("7d", "ttl") == dt.timedelta(days=7)
    assert parse_duration("90m", "ttl") == dt.timedelta(minutes=90)
    assert format_duration(dt.timedelta(days=14)) == "2w"
    assert format_duration(dt.timedelta(minutes=90)) == "90m"
    assert format_duration(None) is None


def test_references() -> None:
    pinned = FeatureRef.parse("user_spend@v3:last_amount")
    assert (pinned.family, pinned.version, pinned.feature) == ("user_spend", 3, "last_amount")
    assert str(pinned) == "user_spend@v3:last_amount"
    assert FeatureRef.parse("user_spend:*").is_wildcard
    assert FeatureRef.parse("user_spend:x").version is None
    for bad in ["user_spend", "user_spend@3:x", "user_spend@v0:x", "User:x", ":x"]:
        with pytest.raises(DefinitionError, match="not a feature reference"):
            FeatureRef.parse(bad)
    with pytest.raises(DefinitionError, match="listed twice"):
        parse_refs(["a:x", "a:x"])


def test_source_format_is_inferred() -> None:
    assert Source.infer("s", "data/x.csv").format is SourceFormat.CSV
    assert Source.infer("s", "data/x.parquet").format is SourceFormat.PARQUET
    assert Source.infer("s", "gs://bucket/tx").format is SourceFormat.PARQUET
    assert Source.infer("s", "db.transactions").format is SourceFormat.TABLE


def test_tags_and_deprecation() -> None:
    assert parse_tags(" b, a,,b ") == ("a", "b")
    assert parse_tags(None) == ()
    gone = Deprecation("replaced", "user_spend_v2", dt.date(2026, 1, 1))
    assert gone.is_past_sunset(dt.date(2026, 1, 2))
    assert not gone.is_past_sunset(dt.date(2026, 1, 1))
    with pytest.raises(DefinitionError, match="say why"):
        Deprecation("")


def test_ttl_retention_and_freshness_are_metadata_kept_for_ttl_plus_retention() -> None:
    base = family(ttl="1h")
    changed = base.with_metadata(ttl="2h", retention="1d", freshness="30m")
    assert changed.version_hash == base.version_hash
    assert (changed.ttl, changed.retention) == (dt.timedelta(hours=2), dt.timedelta(days=1))
    assert base.kept_for == dt.timedelta(hours=2)  # retention defaults to the ttl
    assert changed.kept_for == dt.timedelta(hours=2, days=1)
    assert family(ttl=None).kept_for is None
    assert FeatureFamily.from_dict(changed.to_dict()) == changed
    assert "retention" not in base.to_dict()  # families without one keep their old form
    with pytest.raises(DefinitionError) as refused:
        family(ttl=None, retention="1d")
    assert refused.value.field == "retention"


def test_layouts_carry_retention_and_old_layouts_default_to_the_ttl() -> None:
    import json

    from nbfeatures.online.layout import FamilyLayout

    layout = FamilyLayout.of(family(ttl="1h", retention="30m"), 1)
    assert (layout.ttl_seconds, layout.retention_seconds, layout.kept_seconds) == (3600, 1800, 5400)
    assert FamilyLayout.from_json(layout.to_json()) == layout
    old = json.loads(layout.to_json())
    del old["retention_seconds"]  # written before retention existed
    assert FamilyLayout.from_json(json.dumps(old)).kept_seconds == 7200
    assert FamilyLayout.of(family(ttl=None), 1).kept_seconds is None
