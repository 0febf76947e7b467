"""Building feature families on real Spark: sources, SQL and Python bodies, and bad input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nbfeatures.definitions import FeatureType, Source, SourceFormat, Transformation
from nbfeatures.errors import DefinitionError, SchemaError, SourceError, TransformationError

pytestmark = pytest.mark.integration

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
ROWS = [
    ("u1", T0, 10.0, "de"),
    ("u1", T0 + dt.timedelta(days=1), 20.0, "de"),
    ("u2", T0, 5.0, "fr"),
    ("u2", T0 + dt.timedelta(days=2), None, "fr"),
    ("u3", T0 + dt.timedelta(days=1), 7.0, None),
]
SQL = """SELECT user_id, ts, amount AS last_amount,
       SUM(amount) OVER (PARTITION BY user_id ORDER BY ts
                         ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS spend_7
FROM transactions"""


def write_transactions(path: Path, rows: list[tuple[Any, ...]] = ROWS) -> Path:
    schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("amount", pa.float64()),
            ("country", pa.string()),
        ]
    )
    columns = list(zip(*rows, strict=True))
    pq.write_table(pa.table(columns, schema=schema), path)
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("family-build")
    write_transactions(root / "transactions.parquet")
    (root / "users.csv").write_text(
        "user_id,signup,plan\nu1,2023-05-01 10:00:00,pro\nu2,2023-06-01 11:00:00,free\n"
    )
    return root


@pytest.fixture(scope="module")
def sources(data_dir: Path) -> tuple[Source, ...]:
    return (
        Source.infer("transactions", str(data_dir / "transactions.parquet"), "ts"),
        Source.infer("users", str(data_dir / "users.csv")),
    )


def build(spark: Any, sources: tuple[Source, ...], name: str, body: str, **options: Any) -> Any:
    from nbfeatures.engine.spark.transform import build_family

    settings: dict[str, Any] = {
        "python": False,
        "entity_key": "user_id",
        "timestamp": "ts",
        "owner": "ana",
        "limit": None,
    }
    settings.update(options)
    return build_family(spark, name=name, body=body, sources=sources, **settings)


def temp_views(spark: Any) -> list[str]:
    return [t.name for t in spark.catalog.listTables() if t.isTemporary]


# --- sources --------------------------------------------------------------------------------


def test_read_source_parquet_csv_and_limit(spark: Any, sources: tuple[Source, ...]) -> None:
    from nbfeatures.engine.spark.sources import read_source

    transactions, users = sources
    assert read_source(spark, transactions).count() == len(ROWS)
    assert read_source(spark, transactions, limit=2).count() == 2
    frame = read_source(spark, users)
    assert users.format is SourceFormat.CSV
    assert dict(frame.dtypes) == {"user_id": "string", "signup": "timestamp", "plan": "string"}


def test_read_source_refuses_missing_path_table_and_timestamp(
    spark: Any, tmp_path: Path, sources: tuple[Source, ...]
) -> None:
    from nbfeatures.engine.spark.sources import read_source

    missing = tmp_path / "nope.parquet"
    with pytest.raises(SourceError, match="path does not exist") as raised:
        read_source(spark, Source.infer("gone", str(missing)))
    assert raised.value.source == "gone" and str(missing) in raised.value.reason
    with pytest.raises(SourceError, match="table does not exist: no_such_table"):
        read_source(spark, Source.infer("t", "no_such_table"))
    with pytest.raises(SourceError, match="timestamp column 'event_time'"):
        read_source(spark, Source("t", sources[0].location, SourceFormat.PARQUET, "event_time"))
    with pytest.raises(DefinitionError, match="limit"):
        read_source(spark, sources[0], limit=0)


def test_read_source_spark_table(spark: Any, sources: tuple[Source, ...]) -> None:
    from nbfeatures.engine.spark.sources import read_source

    spark.read.parquet(sources[0].location).write.mode("overwrite").saveAsTable("nbf_src_table")
    try:
        frame = read_source(spark, Source.infer("events", "nbf_src_table", "ts"), limit=3)
        assert frame.count() == 3
    finally:
        spark.sql("DROP TABLE IF EXISTS nbf_src_table")


# --- SQL ------------------------------------------------------------------------------------


def test_sql_family_has_features_types_and_only_the_sources_it_reads(
    spark: Any, sources: tuple[Source, ...]
) -> None:
    family, frame = build(spark, sources, "user_spend", SQL, ttl="7d", tags=["b", "a"])
    assert family.entity.name == "user" and family.entity.join_key == "user_id"
    assert [(f.name, f.dtype) for f in family.features] == [
        ("last_amount", FeatureType.FLOAT64),
        ("spend_7", FeatureType.FLOAT64),
    ]
    assert [s.name for s in family.sources] == ["transactions"]  # users is not read
    assert family.ttl == dt.timedelta(days=7) and family.tags == ("a", "b")
    spend = {(r.user_id, r.ts.day): r.spend_7 for r in frame.collect()}
    assert spend[("u1", 2)] == 30.0 and spend[("u2", 3)] == 5.0
    assert temp_views(spark) == []


def test_sql_join_of_two_sources_with_own_cte_and_braces(
    spark: Any, sources: tuple[Source, ...]
) -> None:
    body = (
        "-- plans per user\n"
        "WITH latest AS (SELECT user_id, max(ts) AS ts FROM transactions GROUP BY user_id)\n"
        "SELECT l.user_id, l.ts, u.plan, regexp_extract(u.plan, '^[a-z]{2}', 0) AS plan_prefix\n"
        "FROM latest l JOIN users u ON l.user_id = u.user_id"
    )
    family, frame = build(spark, sources, "user_plan", body)
    assert {s.name for s in family.sources} == {"transactions", "users"}
    assert family.feature_names == ("plan", "plan_prefix")
    assert sorted(frame.select("user_id", "plan_prefix").collect()) == [("u1", "pr"), ("u2", "fr")]


def test_limit_bounds_rows_read(spark: Any, sources: tuple[Source, ...]) -> None:
    body = "SELECT user_id, ts, amount FROM transactions"
    _, frame = build(spark, sources, "bounded", body, limit=2)
    assert frame.count() == 2
    _, full = build(spark, sources, "bounded", body, limit=None)
    assert full.count() == len(ROWS)


def test_user_temp_view_of_a_source_name_is_neither_used_nor_dropped(
    spark: Any, sources: tuple[Source, ...]
) -> None:
    spark.createDataFrame([("x", 1)], "a string, b int").createOrReplaceTempView("transactions")
    try:
        _, frame = build(spark, sources, "shadow", "SELECT user_id, ts, amount FROM transactions")
        assert frame.count() == len(ROWS)
        assert temp_views(spark) == ["transactions"]
    finally:
        spark.catalog.dropTempView("transactions")


def test_sql_parse_error_names_line_and_column_in_the_body(
    spark: Any, sources: tuple[Source, ...]
) -> None:
    body = "SELECT user_id,\n       ts,\n       amount +* 2 AS x\nFROM transactions"
    with pytest.raises(TransformationError) as raised:
        build(spark, sources, "bad_sql", body)
    assert raised.value.line == 3
    assert raised.value.column == 18  # the '2' Spark points at
    assert raised.value.family == "bad_sql"
    assert "Syntax error" in raised.value.reason and "\n" not in raised.value.reason
    assert temp_views(spark) == []


def test_sql_unknown_column_is_trimmed_and_located(spark: Any, sources: tuple[Source, ...]) -> None:
    body = "SELECT user_id, ts,\n  amountx AS a\nFROM transactions"
    with pytest.raises(TransformationError) as raised:
        build(spark, sources, "bad_column", body)
    assert "amountx" in raised.value.reason and "\n" not in raised.value.reason
    assert (raised.value.line, raised.value.column) == (2, 3)


def test_sql_unknown_source(spark: Any, sources: tuple[Source, ...]) -> None:
    with pytest.raises(SourceError) as raised:
        build(spark, sources, "unknown", "SELECT user_id, ts, amount FROM no_such_source")
    assert raised.value.source == "no_such_source"
    assert raised.value.reason == "unknown source; registered sources: transactions, users"


def test_sql_commands_are_refused_before_spark_runs_them(
    spark: Any, sources: tuple[Source, ...]
) -> None:
    with pytest.raises(TransformationError, match="must be a query") as raised:
        build(spark, sources, "ddl", "\n  DROP TABLE transactions")
    assert (raised.value.line, raised.value.column) == (2, 3)


# --- output schema --------------------------------------------------------------------------

SCHEMA_ERRORS = [
    ("SELECT user_id AS uid, ts, amount FROM transactions", "user_id", "not in the output"),
    (
        "SELECT user_id, amount FROM transactions",
        "ts",
        "not in the output; columns are: user_id, amount",
    ),
    (
        "SELECT user_id, 'yesterday' AS ts, amount FROM transactions",
        "ts",
        "of type string, not timestamp",
    ),
    (
        "SELECT user_id, ts, amount AS a, amount AS a FROM transactions",
        "a",
        "duplicate feature name",
    ),
    ("SELECT user_id, ts, array(amount) AS amounts FROM transactions", "amounts", "array<double>"),
    ("SELECT user_id, ts, CAST(amount AS DECIMAL(10, 2)) AS d FROM transactions", "d", "AS DOUBLE"),
    (
        "SELECT user_id, ts, sum(amount) OVER () FROM transactions",
        "sum(amount) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)",
        "alias",
    ),
]


@pytest.mark.parametrize(("body", "column", "message"), SCHEMA_ERRORS)
def test_output_schema_errors(
    spark: Any, sources: tuple[Source, ...], body: str, column: str, message: str
) -> None:
    with pytest.raises(SchemaError) as raised:
        build(spark, sources, "bad_schema", body)
    assert raised.value.column == column
    assert message in raised.value.reason


def test_string_timestamp_error_suggests_a_conversion(
    spark: Any, sources: tuple[Source, ...]
) -> None:
    body = "SELECT user_id, CAST(ts AS STRING) AS ts, amount FROM transactions"
    with pytest.raises(SchemaError, match="to_timestamp"):
        build(spark, sources, "text_ts", body)


def test_invalid_family_name_fails_before_spark(spark: Any, sources: tuple[Source, ...]) -> None:
    with pytest.raises(DefinitionError, match="not a valid name") as raised:
        build(spark, sources, "Bad-Name", "this is not even SQL")
    assert raised.value.field == "name"


def test_session_works_after_errors_and_no_views_leak(
    spark: Any, sources: tuple[Source, ...]
) -> None:
    from nbfeatures.engine.spark.preview import compute_preview

    for body in ("SELEC nothing", "SELECT user_id, ts, x FROM transactions"):
        with pytest.raises(TransformationError):
            build(spark, sources, "broken", body)
    family, frame = build(spark, sources, "after_error", SQL)
    assert compute_preview(frame, family).row_count == len(ROWS)  # views were dropped, still runs
    assert temp_views(spark) == []


def test_run_transformation_without_limit_on_a_stored_definition(
    spark: Any, sources: tuple[Source, ...]
) -> None:
    from nbfeatures.engine.spark.transform import run_transformation

    frame, used = run_transformation(spark, "user_spend", Transformation("sql", SQL), sources)
    assert used == (sources[0],)
    assert frame.count() == len(ROWS)
