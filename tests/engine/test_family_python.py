"""Python ``%%feature`` bodies on real Spark: PySpark and pandas functions, and their errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from nbfeatures.definitions import FeatureType, Source
from nbfeatures.errors import SourceError, TransformationError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Source, ...]:
    import pandas as pd

    root = tmp_path_factory.mktemp("family-python")
    t0 = dt.datetime(2024, 1, 1)
    frame = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2"],
            "ts": pd.to_datetime([t0, t0 + dt.timedelta(days=1), t0]).astype("datetime64[us]"),
            "amount": [10.0, 20.0, 5.0],
        }
    )
    frame.to_parquet(root / "transactions.parquet")
    frame.to_parquet(root / "refunds.parquet")
    return (
        Source.infer("transactions", str(root / "transactions.parquet"), "ts"),
        Source.infer("refunds", str(root / "refunds.parquet")),
    )


def build(spark: Any, sources: tuple[Source, ...], name: str, body: str, **options: Any) -> Any:
    from nbfeatures.engine.spark.transform import build_family

    return build_family(
        spark,
        name=name,
        body=body,
        python=True,
        entity_key="user_id",
        timestamp="ts",
        sources=sources,
        owner="ana",
        limit=options.pop("limit", None),
        **options,
    )


def test_pyspark_function(spark: Any, sources: tuple[Source, ...]) -> None:
    body = (
        "def user_spend(transactions):\n"
        "    return transactions.select(\n"
        '        "user_id", "ts", (transactions.amount * 2).alias("double_amount"),\n'
        '        F.lit(1).alias("one"),\n'
        "    )\n"
    )
    family, frame = build(spark, sources, "user_spend", body)
    assert [(f.name, f.dtype) for f in family.features] == [
        ("double_amount", FeatureType.FLOAT64),
        ("one", FeatureType.INT32),
    ]
    assert [s.name for s in family.sources] == ["transactions"]
    assert sorted(r.double_amount for r in frame.collect()) == [10.0, 20.0, 40.0]


def test_pandas_function_runs_on_pandas_frames(spark: Any, sources: tuple[Source, ...]) -> None:
    body = (
        "def user_totals(transactions: pd.DataFrame, refunds: pd.DataFrame) -> pd.DataFrame:\n"
        "    assert isinstance(transactions, pandas.DataFrame)\n"
        "    out = transactions.groupby('user_id').agg(ts=('ts', 'max'), n=('amount', 'count'))\n"
        "    return out.assign(refunded=float(refunds.amount.sum()))\n"
    )
    family, frame = build(spark, sources, "user_totals", body)
    assert [(f.name, f.dtype) for f in family.features] == [
        ("n", FeatureType.INT64),
        ("refunded", FeatureType.FLOAT64),
    ]
    assert {s.name for s in family.sources} == {"transactions", "refunds"}
    assert dict(frame.dtypes)["ts"] == "timestamp"
    assert sorted((r.user_id, r.n) for r in frame.collect()) == [("u1", 2), ("u2", 1)]


def test_pandas_string_annotations_and_limit(spark: Any, sources: tuple[Source, ...]) -> None:
    body = (
        "from __future__ import annotations\n"
        "def rows(transactions) -> 'pd.DataFrame':\n"
        "    return transactions\n"
    )
    _, frame = build(spark, sources, "rows", body, limit=2)
    assert frame.count() == 2


BAD_BODIES = [
    ("x = 1\n", "defines no function", None),
    (
        "def a(transactions):\n    return transactions\n\ndef b(x):\n    return x\n",
        "defines 2 functions: a, b; define exactly one",
        4,
    ),
    ("def f(transactions):\n    return transactions.select(\n", "SyntaxError", 2),
    (
        "def f(transactions):\n    x = 1\n    raise RuntimeError('boom here')\n",
        "raised RuntimeError: boom here",
        3,
    ),
    ("def f(transactions):\n    return transactions.count()\n", "returned int, not a DataFrame", 1),
    ("def f(transactions):\n    return transactions.select('nope')\n", "nope", 2),
]


@pytest.mark.parametrize(("body", "message", "line"), BAD_BODIES)
def test_bad_python_bodies(
    spark: Any, sources: tuple[Source, ...], body: str, message: str, line: int | None
) -> None:
    with pytest.raises(TransformationError) as raised:
        build(spark, sources, "bad_python", body)
    assert message in raised.value.reason
    assert raised.value.line == line


def test_function_raising_in_a_helper_points_at_the_body_line(
    spark: Any, sources: tuple[Source, ...]
) -> None:
    body = "import json\n\ndef f(transactions):\n    return json.loads('{')\n"
    with pytest.raises(TransformationError, match="JSONDecodeError") as raised:
        build(spark, sources, "helper_raises", body)
    assert raised.value.line == 4


def test_unknown_parameter_is_an_unknown_source(spark: Any, sources: tuple[Source, ...]) -> None:
    with pytest.raises(SourceError) as raised:
        build(spark, sources, "bad_param", "def f(clicks):\n    return clicks\n")
    assert raised.value.source == "clicks"
    assert raised.value.reason == "unknown source; registered sources: refunds, transactions"
