"""Settings: file, then environment, then explicit overrides; unknown keys are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbfeatures.config import load_settings
from nbfeatures.errors import ConfigError


def test_embedded_defaults_live_in_the_workspace(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert settings.home == tmp_path.resolve() / ".nbfeatures"
    assert settings.catalog == f"sqlite:///{settings.home / 'mlflow.db'}"
    assert settings.offline == str(settings.home / "offline")
    assert settings.redis_url is None
    assert not settings.uses_spark_connect
    assert settings.spark_driver_memory.endswith("g")


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    (tmp_path / "nbfeatures.yaml").write_text("owner: ana\npreview_rows: 5\noffline_root: /data\n")
    settings = load_settings(tmp_path, environ={"NBF_OWNER": "bo"}, preview_rows=7)
    assert (settings.owner, settings.preview_rows, settings.offline) == ("bo", 7, "/data")


def test_workspace_from_environment(tmp_path: Path) -> None:
    settings = load_settings(environ={"NBF_WORKSPACE": str(tmp_path)})
    assert settings.workspace == tmp_path.resolve()


def test_spark_connect_is_recognised(tmp_path: Path) -> None:
    assert load_settings(tmp_path, environ={"NBF_SPARK_MASTER": "sc://h:15002"}).uses_spark_connect


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour: blue\n", "unknown setting"),
        ("preview_rows: many\n", "not a whole number"),
        ("preview_rows: -1\n", "must be positive"),
        ("- a\n- b\n", "must be a mapping"),
        ("owner: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_files_say_what_and_where(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "nbfeatures.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message) as raised:
        load_settings(tmp_path, environ={})
    assert "nbfeatures.yaml" in str(raised.value) or raised.value.key == "preview_rows"


def test_the_gcs_connector_switch_reads_yes_and_no(tmp_path: Path) -> None:
    assert load_settings(tmp_path, environ={}).gcs_connector is False
    (tmp_path / "nbfeatures.yaml").write_text("gcs_connector: true\n")
    assert load_settings(tmp_path, environ={}).gcs_connector is True
    assert load_settings(tmp_path, environ={"NBF_GCS_CONNECTOR": "no"}).gcs_connector is False
    with pytest.raises(ConfigError, match="'maybe' is not true or false") as raised:
        load_settings(tmp_path, environ={"NBF_GCS_CONNECTOR": "maybe"})
    assert raised.value.key == "gcs_connector"
