"""Spark's GCS connector: the jar the ``gcs`` extra ships, and a clear error without it."""

from __future__ import annotations

import zipfile

import pytest

from nbfeatures.engine import gcs
from nbfeatures.engine.spark import session
from nbfeatures.errors import ConfigError


def test_the_gcs_extra_ships_the_connector_jar() -> None:
    jar = gcs.connector_jar()
    assert jar is not None
    with zipfile.ZipFile(jar) as archive:
        names = set(archive.namelist())
    assert "com/google/cloud/hadoop/fs/gcs/GoogleHadoopFileSystem.class" in names


def test_emulator_settings_only_with_an_emulator() -> None:
    plain = gcs.connector_conf(None)
    assert plain["fs.gs.impl"].endswith("GoogleHadoopFileSystem")
    assert "fs.gs.storage.root.url" not in plain
    # Hadoop's own defaults carry units ("64m") that connector 2.x cannot read: numbers here.
    assert all(v.isdigit() for k, v in plain.items() if k.endswith(("size", "limit")))
    emulated = gcs.connector_conf("http://127.0.0.1:9023")
    assert emulated["fs.gs.storage.root.url"] == "http://127.0.0.1:9023/"
    assert emulated["fs.gs.auth.null.enable"] == "true"


def test_a_local_session_without_the_jar_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pyspark.sql import SparkSession

    monkeypatch.setattr(gcs, "connector_jar", lambda: None)
    with pytest.raises(ConfigError, match=r"nbfeatures\[gcs\]") as raised:
        session._with_gcs_connector(SparkSession.builder)
    assert raised.value.key == "gcs_connector"
