"""Only a read-only query runs as a SQL body: checked on Spark's parsed plan, before running.

Each hostile body is tried through the one path preview, compute and promotion share
(``run_transformation``), on a local session and over Spark Connect, and the test then looks
at what the body would have changed: the table is still there, the folder keeps its files,
settings and the current database are as they were.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nbfeatures.definitions import Source, Transformation, TransformationKind
from nbfeatures.engine.spark.transform import build_family, run_transformation
from nbfeatures.errors import TransformationError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(any_spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A source, a real table and a folder of files that hostile bodies would destroy."""
    root = tmp_path_factory.mktemp("sql-guard")
    pq.write_table(
        pa.table(
            {
                "user_id": ["u1", "u2", "u1"],
                "ts": pa.array([1_700_000_000_000_000] * 3, pa.timestamp("us", tz="UTC")),
                "amount": [1.0, 2.0, 3.0],
            }
        ),
        root / "transactions.parquet",
    )
    (root / "users.csv").write_text("user_id,plan\nu1,pro\nu2,free\n")
    folder = root / "keep"
    folder.mkdir()
    (folder / "precious.txt").write_text("do not delete")
    table = f"victim_{uuid.uuid4().hex[:8]}"
    any_spark.sql(f"CREATE TABLE {table} (x INT) USING parquet")
    any_spark.sql(f"INSERT INTO {table} VALUES (1)")
    yield {
        "root": root,
        "folder": folder,
        "table": table,
        "sources": (
            Source.infer("transactions", str(root / "transactions.parquet"), "ts"),
            Source.infer("users", str(root / "users.csv")),
        ),
    }
    any_spark.sql(f"DROP TABLE IF EXISTS {table}")


def hostile_bodies(world: dict[str, Any]) -> dict[str, str]:
    table, folder = world["table"], world["folder"]
    marker = world["root"] / "transform-ran"
    return {
        "script": f"BEGIN\n  DROP TABLE {table};\n  SELECT 1;\nEND",
        "insert directory": f"FROM transactions INSERT OVERWRITE DIRECTORY '{folder}' "
        "USING parquet SELECT *",
        "cte insert": f"WITH a AS (SELECT 2 AS x) INSERT INTO {table} SELECT x FROM a",
        "two statements": f"SELECT 1; DROP TABLE {table}",
        "ctas": f"CREATE TABLE {table}_copy AS SELECT * FROM transactions",
        "set": "SET spark.sql.shuffle.partitions=3",
        "cache": f"CACHE TABLE {table}",
        "use": "USE no_such_db_here",
        "transform": f"SELECT TRANSFORM(user_id) USING 'touch {marker}' FROM transactions",
        "execute immediate": f"EXECUTE IMMEDIATE 'DROP TABLE {table}'",
        "drop": f"DROP TABLE {table}",
        "reflect": "SELECT user_id, REFLECT('java.lang.System', 'setProperty', 'nbf.hostile', "
        "'ran') AS x FROM transactions",
        "java_method in a subquery": "SELECT user_id FROM transactions WHERE user_id IN "
        "(SELECT system.builtin.java_method('java.lang.System', 'exit', 3) FROM users)",
    }


def assert_nothing_ran(spark: Any, world: dict[str, Any]) -> None:
    table = world["table"]
    assert spark.catalog.tableExists(table)
    assert [tuple(r) for r in spark.sql(f"SELECT x FROM {table}").collect()] == [(1,)]
    assert not spark.catalog.tableExists(f"{table}_copy")
    assert not spark.catalog.isCached(table)
    assert spark.conf.get("spark.sql.shuffle.partitions") != "3"
    assert spark.catalog.currentDatabase() == "default"
    assert (world["folder"] / "precious.txt").read_text() == "do not delete"
    assert not (world["root"] / "transform-ran").exists()


@pytest.mark.parametrize(
    "kind",
    [
        "script", "insert directory", "cte insert", "two statements", "ctas", "set", "cache",
        "use", "transform", "execute immediate", "drop", "reflect", "java_method in a subquery",
    ],
)  # fmt: skip
def test_a_body_that_changes_anything_is_refused_and_nothing_runs(
    any_spark: Any, world: dict[str, Any], kind: str
) -> None:
    body = hostile_bodies(world)[kind]
    transformation = Transformation(TransformationKind.SQL, body)
    with pytest.raises(TransformationError) as raised:
        run_transformation(any_spark, "hostile", transformation, world["sources"])
    assert raised.value.family == "hostile"
    assert "nothing was run" in raised.value.reason or kind == "two statements"
    assert_nothing_ran(any_spark, world)


def test_the_refusal_names_what_spark_parsed_and_where(
    any_spark: Any, world: dict[str, Any]
) -> None:
    bodies = hostile_bodies(world)
    with pytest.raises(TransformationError) as script:
        run_transformation(
            any_spark,
            "fam_a",
            Transformation(TransformationKind.SQL, bodies["script"]),
            world["sources"],
        )
    assert "script (BEGIN ... END" in script.value.reason
    assert str(script.value).startswith("feature family 'fam_a'")
    with pytest.raises(TransformationError) as write:
        run_transformation(
            any_spark,
            "fam_b",
            Transformation(TransformationKind.SQL, "\n  " + bodies["insert directory"]),
            world["sources"],
        )
    assert "InsertIntoDir" in write.value.reason
    # Spark places the write at its INSERT, after "  FROM transactions ".
    assert (write.value.line, write.value.column) == (2, 21)
    assert_nothing_ran(any_spark, world)


def test_several_statements_are_a_parse_error_located_in_the_body(
    any_spark: Any, world: dict[str, Any]
) -> None:
    body = "SELECT user_id, ts, amount FROM transactions;\nDROP TABLE " + world["table"]
    with pytest.raises(TransformationError) as raised:
        run_transformation(
            any_spark, "multi", Transformation(TransformationKind.SQL, body), world["sources"]
        )
    assert raised.value.line == 2
    assert_nothing_ran(any_spark, world)


LEGITIMATE = {
    "cte": "WITH t AS (SELECT * FROM transactions) SELECT user_id, ts, amount FROM t",
    "window": "SELECT user_id, ts, SUM(amount) OVER (PARTITION BY user_id ORDER BY ts) AS amount "
    "FROM transactions",
    "subquery": "SELECT user_id, ts, amount FROM transactions "
    "WHERE user_id IN (SELECT user_id FROM users WHERE plan = 'pro')",
    "union": "SELECT user_id, ts, amount FROM transactions "
    "UNION ALL SELECT user_id, ts, amount * 2 AS amount FROM transactions",
    "join": "SELECT t.user_id, t.ts, t.amount, u.plan FROM transactions t "
    "JOIN users u ON t.user_id = u.user_id",
    "comments": "-- leading comment\nSELECT user_id, ts, /* inline */ amount\n"
    "FROM transactions -- trailing",
    "semicolon": "SELECT user_id, ts, amount FROM transactions;",
    "qualify": "SELECT user_id, ts, amount FROM transactions "
    "QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY ts DESC) = 1",
    "pivot and hint": "SELECT /*+ BROADCAST(u) */ t.user_id, t.ts, t.amount FROM transactions t "
    "JOIN (SELECT * FROM users PIVOT (count(*) FOR plan IN ('pro', 'free'))) u "
    "ON t.user_id = u.user_id",
    "values": "SELECT user_id, ts, amount + v.x AS amount FROM transactions "
    "CROSS JOIN (VALUES (1.0)) AS v(x)",
}


@pytest.mark.parametrize("kind", sorted(LEGITIMATE))
def test_read_only_queries_still_pass(any_spark: Any, world: dict[str, Any], kind: str) -> None:
    family, frame = build_family(
        any_spark,
        name="legit",
        body=LEGITIMATE[kind],
        python=False,
        entity_key="user_id",
        timestamp="ts",
        sources=world["sources"],
        owner="ana",
        limit=None,
    )
    assert "amount" in family.feature_names
    assert frame.count() >= 1
