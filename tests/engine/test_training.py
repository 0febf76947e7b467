"""training_set: resolves through the real catalog, reads the offline store, joins point in
time, keeps the spine's rows and order, refuses bad spines, and records lineage in MLflow.

The pandas-spine cases run with both engines (``engine="spark"`` and the in-process
``engine="arrow"``), and both engines must return equal frames, on a local and a ``gs://``
offline store."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from offline_fixtures import gcs_emulator
from test_offline import DAY, DAY1, write_source

from nbfeatures.catalog import Catalog, FamilyVersion
from nbfeatures.config import Settings, load_settings
from nbfeatures.definitions import Entity, Feature, FeatureFamily, Source, Transformation
from nbfeatures.engine.spark.offline import compute_offline
from nbfeatures.errors import DefinitionError, FamilySunset, OfflineDataMissing, SpineError
from nbfeatures.lineage import runs_using, versions_used
from nbfeatures.training import _resolve, _use_arrow, training_set

pytestmark = pytest.mark.integration
HOUR = dt.timedelta(hours=1)


@dataclasses.dataclass
class World:
    settings: Settings
    catalog: Catalog
    spend: FamilyVersion
    doubled: FamilyVersion


def family(name: str, sql: str, feature: str, source: Path, ttl: str | None) -> FeatureFamily:
    return FeatureFamily(
        name=f"{name}_{uuid.uuid4().hex[:6]}",
        entity=Entity("user", "user_id"),
        timestamp="ts",
        features=(Feature(feature, "float64"),),
        transformation=Transformation("sql", sql),
        sources=(Source.infer("tx", str(source)),),
        owner="tests",
        ttl=ttl,
    )


@pytest.fixture(scope="module")
def world(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("training-workspace")
    settings = load_settings(root, environ={}, owner="tests")
    catalog = Catalog.from_settings(settings)
    source = root / "tx.parquet"
    write_source(source)
    spend = catalog.register(
        family("spend", "SELECT user_id, ts, amount AS spend FROM tx", "spend", source, "6h")
    ).version
    doubled = catalog.register(
        family("doubled", "SELECT user_id, ts, amount * 2 AS x2 FROM tx", "x2", source, None)
    ).version
    for fv in (spend, doubled):
        compute_offline(spark, settings, fv, DAY1, DAY1 + 3 * DAY)
    return World(settings, catalog, spend, doubled)


def spine_frame() -> pd.DataFrame:
    naive = DAY1.replace(tzinfo=None)
    return pd.DataFrame(
        {
            "user_id": [1, 1, 2, 1, 1],
            "event_timestamp": [
                naive + 7 * HOUR,  # sees 06:00 of day 1
                naive + 5 * HOUR,  # nothing before it
                naive + DAY + 18 * HOUR,  # exactly at a row's time: sees it
                naive + 23 * HOUR,  # 18:00 is 5h old: within the 6h ttl
                naive + DAY + 5 * HOUR,  # 18:00 the day before is 11h old: expired
            ],
            "label": [1, 0, 1, 0, 1],
        }
    )


@pytest.fixture(params=["spark", "arrow"])
def engine(request: pytest.FixtureRequest) -> str:
    """Each join engine in turn for a pandas spine."""
    return str(request.param)


def build(world: World, spine: Any, spark: Any, **kwargs: Any) -> Any:
    return training_set(
        spine,
        [f"{world.spend.family.name}:*", f"{world.doubled.ref}:x2"],
        settings=world.settings,
        catalog=world.catalog,
        spark=spark,
        label_columns=["label"],
        progress=False,
        **kwargs,
    )


def test_pandas_spine_gets_point_in_time_values_in_order(
    world: World, spark: Any, engine: str
) -> None:
    out = build(world, spine_frame(), spark, engine=engine)
    spend = f"{world.spend.family.name}__spend"
    doubled = f"{world.doubled.family.name}__x2"
    assert list(out.columns) == ["user_id", "event_timestamp", "label", spend, doubled]
    assert list(out["label"]) == [1, 0, 1, 0, 1]
    assert str(out["event_timestamp"].dt.tz) == "UTC"
    assert out.loc[0, spend] == 10.0 and out.loc[0, doubled] == 20.0
    assert pd.isna(out.loc[1, spend]) and pd.isna(out.loc[1, doubled])
    assert out.loc[2, spend] == 21.0
    assert out.loc[3, spend] == 10.0
    assert pd.isna(out.loc[4, spend])  # expired by the ttl
    assert out.loc[4, doubled] == 20.0  # no ttl: still the latest value


def test_spark_spine_returns_spark_frame(world: World, spark: Any) -> None:
    spine = spark.createDataFrame(spine_frame())
    out = build(world, spine, spark, include_event_times=True)
    assert hasattr(out, "sparkSession")
    rows = out.collect()
    assert len(rows) == 5
    for row in rows:
        used = row[f"{world.spend.family.name}__event_time"]
        assert used is None or used <= row["event_timestamp"]


def test_missing_column_is_named_with_the_columns_present(
    world: World, spark: Any, engine: str
) -> None:
    spine = spine_frame().drop(columns=["user_id"])
    with pytest.raises(SpineError, match=r"'user_id'.*event_timestamp, label"):
        build(world, spine, spark, engine=engine)


def test_mixed_naive_and_aware_timestamps_are_refused(
    world: World, spark: Any, engine: str
) -> None:
    spine = spine_frame()
    spine["event_timestamp"] = pd.Series(
        [DAY1, DAY1.replace(tzinfo=None), DAY1, DAY1, DAY1], dtype=object
    )
    with pytest.raises(SpineError, match="mixes naive and time-zone-aware"):
        build(world, spine, spark, engine=engine)


def test_spine_beyond_the_computed_range_names_the_gap(
    world: World, spark: Any, engine: str
) -> None:
    spine = spine_frame()
    spine.loc[0, "event_timestamp"] = (DAY1 + 4 * DAY).replace(tzinfo=None)
    with pytest.raises(OfflineDataMissing) as caught:
        build(world, spine, spark, engine=engine)
    assert caught.value.start == DAY1 + 3 * DAY
    assert caught.value.end == DAY1 + 4 * DAY + dt.timedelta(microseconds=1)


def test_lineage_is_recorded_both_ways_inside_an_mlflow_run(
    world: World, spark: Any, engine: str
) -> None:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(world.settings.catalog)
    try:
        mlflow.set_experiment(f"training-{uuid.uuid4().hex[:6]}")
        with mlflow.start_run() as run:
            build(world, spine_frame(), spark, engine=engine)
        run_id = run.info.run_id
        logged = mlflow.get_run(run_id)
    finally:
        mlflow.set_tracking_uri(previous)
    uri = world.settings.catalog
    assert versions_used(run_id, uri) == [world.spend.ref, world.doubled.ref]
    assert run_id in [u.run_id for u in runs_using(world.spend.family.name, 1, uri)]
    assert runs_using(world.spend.family.name, 2, uri) == []
    # The catalog answers the same questions.
    assert world.catalog.versions_used(run_id) == [world.spend.ref, world.doubled.ref]
    # (The module's world is shared: the other engine's run may be listed too.)
    assert run_id in [u.run_id for u in world.catalog.runs_using(world.spend.family.name, 1)]
    inputs = logged.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.name == "training_set"


def test_family_past_sunset_is_refused_for_training(world: World, spark: Any) -> None:
    source = Path(str(world.settings.workspace)) / "tx.parquet"
    old = world.catalog.register(
        family("old", "SELECT user_id, ts, amount AS v FROM tx", "v", source, None)
    ).version
    world.catalog.deprecate(old.family.name, "replaced", sunset=dt.date(2020, 1, 1))
    with pytest.raises(FamilySunset):
        training_set(
            spine_frame(),
            [f"{old.family.name}:v"],
            settings=world.settings,
            catalog=world.catalog,
            spark=spark,
            progress=False,
        )


def test_both_engines_give_equal_frames(world: World, spark: Any) -> None:
    spine = spine_frame()
    spine["event_timestamp"] = spine["event_timestamp"].dt.tz_localize("Europe/Paris")
    spine["user_id"] = spine["user_id"].astype("int32")
    spine["note"] = ["a", None, "c", "d", "e"]
    kwargs = {"include_event_times": True}
    on_spark = build(world, spine, spark, engine="spark", **kwargs)
    local = build(world, spine, spark, engine="arrow", **kwargs)
    pd.testing.assert_frame_equal(local, on_spark)
    assert local["note"].tolist() == ["a", None, "c", "d", "e"]


def test_spark_spine_with_the_arrow_engine_matches_spark(world: World, spark: Any) -> None:
    spine = spark.createDataFrame(spine_frame())
    on_spark = build(world, spine, spark, engine="spark").toPandas()
    local = build(world, spine, spark, engine="arrow")
    assert hasattr(local, "sparkSession")  # a Spark spine gives a Spark result either way
    key = ["label", "event_timestamp"]
    pd.testing.assert_frame_equal(
        local.toPandas().sort_values(key, ignore_index=True),
        on_spark.sort_values(key, ignore_index=True),
    )


def test_auto_engine_is_arrow_only_locally_and_under_the_row_bound(
    world: World, spark: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = [f"{world.spend.family.name}:*"]
    selections = _resolve(refs, world.settings, world.catalog, None)
    low, high = DAY1, DAY1 + DAY
    assert _use_arrow("auto", spark, world.settings, selections, low, high)
    assert _use_arrow("auto", None, world.settings, selections, low, high)
    assert not _use_arrow("spark", spark, world.settings, selections, low, high)
    connect = dataclasses.replace(world.settings, spark_master="sc://127.0.0.1:15002")
    assert not _use_arrow("auto", None, connect, selections, low, high)
    monkeypatch.setattr("nbfeatures.engine.factory.ARROW_MAX_ROWS", 1)
    assert not _use_arrow("auto", spark, world.settings, selections, low, high)
    # The default call with no session: joined in process, same frame as on Spark.
    monkeypatch.undo()
    refs_all = [f"{world.spend.family.name}:*", f"{world.doubled.ref}:x2"]
    default = training_set(
        spine_frame(), refs_all, settings=world.settings, catalog=world.catalog, progress=False
    )
    pd.testing.assert_frame_equal(default, build(world, spine_frame(), spark, engine="spark"))


def test_unknown_engine_is_refused(world: World, spark: Any) -> None:
    with pytest.raises(DefinitionError, match="engine"):
        build(world, spine_frame(), spark, engine="duck")


@pytest.mark.parametrize("connector", [False, True], ids=["pyarrow", "spark-gcs-connector"])
def test_engines_agree_on_a_gcs_offline_store(
    world: World, spark: Any, gcs_root: str, connector: bool
) -> None:
    # Stored through pyarrow, or by Spark itself through the GCS connector (then the Spark
    # engine reads it through the connector too); the Arrow engine reads with pyarrow.
    on_gcs = dataclasses.replace(
        world.settings,
        offline_root=f"{gcs_root}/{uuid.uuid4().hex[:8]}",
        gcs_connector=connector,
        gcs_emulator=gcs_emulator(),
    )
    compute_offline(spark, on_gcs, world.spend, DAY1, DAY1 + 3 * DAY)
    compute_offline(spark, on_gcs, world.doubled, DAY1, DAY1 + 3 * DAY)
    gcs_world = dataclasses.replace(world, settings=on_gcs)
    on_spark = build(gcs_world, spine_frame(), spark, engine="spark")
    local = build(gcs_world, spine_frame(), spark, engine="arrow")
    pd.testing.assert_frame_equal(local, on_spark)
    assert local.loc[0, f"{world.spend.family.name}__spend"] == 10.0


# --- both engines alike on odd spines ---------------------------------------------------------


def outcome(call: Any) -> tuple[str, Any]:
    """("ok", frame) or (error class, message and fields): what a user gets back."""
    try:
        return "ok", call()
    except Exception as exc:  # compared across engines, so any type is recorded
        fields = {k: v for k, v in vars(exc).items() if not k.startswith("_")}
        return type(exc).__name__, (str(exc), fields)


@pytest.mark.parametrize(
    "limit",
    [
        pd.Timestamp("0001-01-01 00:00:00", unit="us"),
        pd.Timestamp("9999-12-31 23:59:59.999999", unit="us"),
    ],
    ids=["year-1", "year-9999"],
)
def test_spines_at_the_datetime_limits_get_the_same_answer_on_both_engines(
    world: World, spark: Any, limit: pd.Timestamp
) -> None:
    spine = pd.DataFrame(
        {
            "user_id": [1, 1],
            "event_timestamp": pd.Series(
                [DAY1.replace(tzinfo=None) + 7 * HOUR, limit], dtype="datetime64[us]"
            ),
            "label": [1, 0],
        }
    )
    on_spark = outcome(lambda: build(world, spine, spark, engine="spark"))
    local = outcome(lambda: build(world, spine, spark, engine="arrow"))
    assert on_spark[0] == local[0] == "OfflineDataMissing", (on_spark, local)
    assert on_spark[1] == local[1]
    message, _ = local[1]
    assert f"{limit.year:04d}-{limit.month:02d}-{limit.day:02d}" in message  # the gap's end


def test_an_empty_spine_gives_an_empty_set_with_the_columns_on_both_engines(
    world: World, spark: Any
) -> None:
    spine = spine_frame().iloc[0:0]
    on_spark = build(world, spine, spark, engine="spark", include_event_times=True)
    local = build(world, spine, spark, engine="arrow", include_event_times=True)
    full = build(world, spine_frame(), spark, engine="arrow", include_event_times=True)
    assert len(on_spark) == len(local) == 0
    assert list(on_spark.columns) == list(local.columns) == list(full.columns)
    pd.testing.assert_frame_equal(on_spark, local)


@pytest.fixture(scope="module")
def text_keyed(world: World, spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A family keyed by text user ids ("1", "2"), computed over the world's days."""
    root = tmp_path_factory.mktemp("text-keys")
    source = root / "tx.parquet"
    write_source(source)
    sql = "SELECT CAST(user_id AS STRING) AS user_id, ts, amount AS spend FROM tx"
    version = world.catalog.register(family("texts", sql, "spend", source, None)).version
    compute_offline(spark, world.settings, version, DAY1, DAY1 + 3 * DAY)
    return version


def test_integer_keys_against_a_text_keyed_family_are_the_same_clear_error(
    world: World, spark: Any, text_keyed: FamilyVersion
) -> None:
    def run(engine: str) -> Any:
        return training_set(
            spine_frame(),
            [f"{text_keyed.family.name}:spend"],
            settings=world.settings,
            catalog=world.catalog,
            spark=spark,
            progress=False,
            engine=engine,
        )

    on_spark, local = outcome(lambda: run("spark")), outcome(lambda: run("arrow"))
    assert on_spark[0] == local[0] == "DefinitionError", (on_spark, local)
    assert on_spark[1] == local[1]
    message, fields = local[1]
    assert fields["field"] == f"{text_keyed.family.name}.join_key"
    assert "integer" in message and "string" in message


def test_an_empty_spine_with_text_keys_is_alike_on_both_engines(
    world: World, spark: Any, text_keyed: FamilyVersion
) -> None:
    spine = pd.DataFrame(
        {
            "user_id": pd.Series([], dtype=object),
            "event_timestamp": pd.Series([], dtype="datetime64[us, UTC]"),
        }
    )

    def run(engine: str) -> Any:
        return training_set(
            spine,
            [f"{text_keyed.family.name}:spend"],
            settings=world.settings,
            catalog=world.catalog,
            spark=spark,
            progress=False,
            engine=engine,
        )

    on_spark, local = run("spark"), run("arrow")
    assert len(on_spark) == len(local) == 0
    assert list(on_spark.columns) == list(local.columns)
    assert f"{text_keyed.family.name}__spend" in local.columns
