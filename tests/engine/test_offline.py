"""Offline store: compute through the real transformation, replace only the range's dates,
keep a manifest and (locally) a current join index, name missing ranges; on local Spark,
through Spark Connect, and on gs://."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from offline_fixtures import gcs_emulator
from pyarrow.fs import FileSelector

from nbfeatures.catalog import Catalog, FamilyVersion
from nbfeatures.cli import run
from nbfeatures.config import Settings, load_settings
from nbfeatures.definitions import Entity, Feature, FeatureFamily, Source, Transformation
from nbfeatures.engine.arrow.join_index import INDEX_DIR, JoinIndex, fingerprint
from nbfeatures.engine.arrow.offline import read_offline_table
from nbfeatures.engine.arrow.rows import ParquetRows
from nbfeatures.engine.gcs import arrow_filesystem, is_gcs
from nbfeatures.engine.offline_store import check_offline, read_manifest, version_path
from nbfeatures.engine.spark.offline import compute_offline, read_offline
from nbfeatures.errors import OfflineDataMissing

pytestmark = pytest.mark.integration

DAY1 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Catalog]:
    root = tmp_path_factory.mktemp("offline-workspace")
    settings = load_settings(root, environ={}, owner="tests")
    return settings, Catalog.from_settings(settings)


def write_source(path: Path, bonus: float = 0.0) -> None:
    """Three days of transactions for users 1 and 2, two per user and day."""
    rows = []
    for day in range(3):
        for user in (1, 2):
            for hour in (6, 18):
                ts = DAY1 + day * DAY + dt.timedelta(hours=hour)
                rows.append({"user_id": user, "amount": 10.0 * user + day + bonus, "ts": ts})
    pd.DataFrame(rows).to_parquet(path, index=False, coerce_timestamps="us")


def register_family(
    catalog: Catalog, source: Path, ttl: dt.timedelta | None = None
) -> FamilyVersion:
    family = FeatureFamily(
        name=f"spend_{uuid.uuid4().hex[:8]}",
        entity=Entity("user", "user_id"),
        timestamp="ts",
        features=(Feature("spend", "float64"),),
        transformation=Transformation("sql", "SELECT user_id, ts, amount AS spend FROM tx"),
        sources=(Source.infer("tx", str(source)),),
        owner="tests",
        ttl=ttl,
    )
    return catalog.register(family).version


def dates_on_disk(settings: Settings, fv: FamilyVersion) -> list[str]:
    from pyarrow.fs import FileSelector, FileType

    fs, root = arrow_filesystem(
        version_path(settings, fv.family.name, fv.version), emulator=settings.gcs_emulator
    )
    infos = fs.get_file_info(FileSelector(root, recursive=True))
    parts = {i.path[len(root) + 1 :].split("/")[0] for i in infos if i.type == FileType.File}
    return sorted(p for p in parts if p.startswith("event_date="))


def stored_values(
    spark: Any, settings: Settings, fv: FamilyVersion
) -> dict[tuple[int, str], float]:
    from nbfeatures.engine.spark.spark_api import functions

    frame = read_offline(spark, settings, fv.family.name, fv.version)
    F = functions(frame)
    rows = frame.select("user_id", F.date_format("ts", "yyyy-MM-dd HH"), "spend").collect()
    return {(r[0], r[1]): r[2] for r in rows}


def run_compute_cycle(spark: Any, settings: Settings, catalog: Catalog, tmp: Path) -> None:
    source = tmp / "tx.parquet"
    write_source(source)
    fv = register_family(catalog, source)

    manifest = compute_offline(spark, settings, fv, DAY1 + dt.timedelta(hours=12), DAY1 + 2 * DAY)
    # The range is widened to whole UTC days: the day is the unit of replacement.
    assert manifest.covered == [(DAY1, DAY1 + 2 * DAY)]
    assert manifest.rows == 8 and manifest.entities == 2
    assert dates_on_disk(settings, fv) == ["event_date=2024-05-01", "event_date=2024-05-02"]
    assert manifest.hash == fv.hash
    files = manifest.runs[0]["sources"][0]["files"]
    assert files[0]["size"] == source.stat().st_size and files[0]["modified"]

    write_source(source, bonus=100.0)  # the source changes; only day 2 is recomputed
    compute_offline(spark, settings, fv, DAY1 + DAY, DAY1 + 3 * DAY)
    values = stored_values(spark, settings, fv)
    assert values[(1, "2024-05-01 06")] == 10.0  # day 1 kept as it was
    assert values[(1, "2024-05-02 06")] == 111.0  # day 2 replaced
    assert values[(2, "2024-05-03 18")] == 122.0  # day 3 added
    assert len(values) == 12

    stored = read_manifest(settings, fv.family.name, fv.version)
    assert stored is not None
    assert stored.covered == [(DAY1, DAY1 + 3 * DAY)]
    assert stored.rows == 12 and len(stored.runs) == 2
    assert stored.partitions["2024-05-02"] == {"rows": 4, "entities": 2}
    # Locally the in-process join reads the join index of what is stored now (the first
    # computation's is gone); on gs:// it reads the Parquet.
    rows = read_offline_table(settings, fv.family.name, fv.version)
    path = version_path(settings, fv.family.name, fv.version)
    if is_gcs(path):
        assert isinstance(rows, ParquetRows)
    else:
        assert isinstance(rows, JoinIndex) and rows.rows.num_rows == 12
        assert [p.name for p in (Path(path) / INDEX_DIR).iterdir()] == [fingerprint(stored)]

    with pytest.raises(OfflineDataMissing) as caught:
        check_offline(settings, fv.family.name, fv.version, DAY1, DAY1 + 5 * DAY)
    assert (caught.value.start, caught.value.end) == (DAY1 + 3 * DAY, DAY1 + 5 * DAY)
    ranged = read_offline(spark, settings, fv.family.name, fv.version, DAY1 + DAY, DAY1 + 2 * DAY)
    assert ranged.count() == 4


def test_compute_replaces_only_the_range_and_keeps_a_manifest(
    any_spark: Any, workspace: tuple[Settings, Catalog], tmp_path: Path
) -> None:
    settings, catalog = workspace
    local = dataclasses.replace(settings, offline_root=str(tmp_path / "offline"))
    run_compute_cycle(any_spark, local, catalog, tmp_path)
    manifest_file = tmp_path / "offline"
    manifests = list(manifest_file.rglob("_manifest.json"))
    assert len(manifests) == 1
    data = json.loads(manifests[0].read_text())
    assert data["covered"] == [["2024-05-01T00:00:00+00:00", "2024-05-04T00:00:00+00:00"]]
    assert data["spark_version"].startswith("4.")


@pytest.mark.parametrize("connector", [False, True], ids=["pyarrow", "spark-gcs-connector"])
def test_compute_on_gcs(
    spark: Any,
    workspace: tuple[Settings, Catalog],
    tmp_path: Path,
    gcs_root: str,
    connector: bool,
) -> None:
    # Without the connector, pyarrow writes the rows (part-<uuid>-<i>.parquet); with it,
    # Spark's executors write them through Google's Hadoop connector (Spark's part files).
    settings, catalog = workspace
    on_gcs = dataclasses.replace(
        settings,
        offline_root=f"{gcs_root}/{uuid.uuid4().hex[:8]}",
        gcs_connector=connector,
        gcs_emulator=gcs_emulator(),
    )
    run_compute_cycle(spark, on_gcs, catalog, tmp_path)
    fs, root = arrow_filesystem(on_gcs.offline, emulator=on_gcs.gcs_emulator)
    parts = [
        info.base_name
        for info in fs.get_file_info(FileSelector(root, recursive=True))
        if info.base_name.endswith(".parquet")
    ]
    assert parts
    by_spark = [name.endswith(".snappy.parquet") for name in parts]
    assert all(by_spark) if connector else not any(by_spark)


def test_nothing_computed_is_missing(workspace: tuple[Settings, Catalog], tmp_path: Path) -> None:
    settings, _ = workspace
    local = dataclasses.replace(settings, offline_root=str(tmp_path / "empty"))
    with pytest.raises(OfflineDataMissing, match=r"nope v3 has no offline data for 2024-05-01"):
        check_offline(local, "nope", 3, DAY1, DAY1 + DAY)


def test_the_join_index_is_rebuilt_from_what_is_stored(
    spark: Any,
    workspace: tuple[Settings, Catalog],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A version computed before indexes existed: the CLI writes its index without Spark.
    settings, catalog = workspace
    source = tmp_path / "tx.parquet"
    write_source(source)
    fv = register_family(catalog, source)
    name, version = fv.family.name, fv.version
    argv = ["--workspace", str(settings.workspace), "compute", name, "--version", str(version)]
    with pytest.raises(OfflineDataMissing, match=rf"{name} v{version} has no offline data"):
        run([*argv, "--index-only"])  # nothing computed yet
    compute_offline(spark, settings, fv, DAY1, DAY1 + 3 * DAY)
    shutil.rmtree(Path(version_path(settings, name, version)) / INDEX_DIR)
    assert isinstance(read_offline_table(settings, name, version), ParquetRows)
    assert run([*argv, "--index-only"]) == 0
    assert "join index:" in capsys.readouterr().out
    rows = read_offline_table(settings, name, version)
    assert isinstance(rows, JoinIndex) and rows.rows.num_rows == 12
