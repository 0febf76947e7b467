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


def test_errors_name_where_the_bad_value_came_from(tmp_path: Path) -> None:
    from nbfeatures.serving.config import load_server_config

    (tmp_path / "nbfeatures.yaml").write_text("preview_limit: lots\n")
    with pytest.raises(ConfigError, match="'lots' is not a whole number") as from_file:
        load_settings(tmp_path, environ={})
    assert from_file.value.key == "preview_limit"
    assert from_file.value.source == f"{tmp_path.resolve() / 'nbfeatures.yaml'}:preview_limit"
    (tmp_path / "nbfeatures.yaml").write_text("preview_rows: 5\n")
    with pytest.raises(ConfigError, match=r"must be positive \(from NBF_PREVIEW_ROWS\)"):
        load_settings(tmp_path, environ={"NBF_PREVIEW_ROWS": "0"})
    with pytest.raises(ConfigError, match=r"serve\.port: 'x' is not a whole number") as served:
        load_server_config(environ={"NBF_SERVE_PORT": "x"})
    assert served.value.source == "NBF_SERVE_PORT"
    with pytest.raises(ConfigError, match="must be positive") as workers:
        load_server_config(environ={}, workers=0)
    assert (workers.value.key, workers.value.source) == ("serve.workers", "override")


def test_both_models_read_values_by_their_declared_types(tmp_path: Path) -> None:
    from nbfeatures.serving.config import load_server_config

    config = load_server_config(
        environ={"NBF_SERVE_METRICS_PORT": "", "NBF_SERVE_GRACE_SECONDS": "3", "NBF_SERVE_HOST": ""}
    )
    # An empty variable turns an optional setting off and leaves a required one as it was.
    assert (config.metrics_port, config.grace_seconds, config.host) == (None, 3.0, "127.0.0.1")
    (tmp_path / "nbfeatures.yaml").write_text("owner: ana\nspark_master: local[1]\n")
    settings = load_settings(tmp_path, environ={"NBF_OWNER": "", "NBF_SPARK_MASTER": ""})
    assert (settings.owner, settings.spark_master) == (None, "local[1]")
    (tmp_path / "nbfeatures.yaml").write_text("owner: [a, b]\n")
    with pytest.raises(ConfigError, match="expected text, got list"):
        load_settings(tmp_path, environ={})


def test_tool_variables_fill_settings_left_unset(tmp_path: Path) -> None:
    env = {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:9023", "PYSPARK_PYTHON": "/usr/bin/python3"}
    settings = load_settings(tmp_path, environ=env)
    assert (settings.gcs_emulator, settings.spark_python) == (
        "http://127.0.0.1:9023",
        "/usr/bin/python3",
    )
    assert load_settings(tmp_path, environ={}).gcs_emulator is None
    own = load_settings(tmp_path, environ={**env, "NBF_GCS_EMULATOR": "http://elsewhere:1"})
    assert own.gcs_emulator == "http://elsewhere:1"


def test_active_settings_are_only_what_an_edge_activated(tmp_path: Path) -> None:
    from nbfeatures import config

    previous = config.active_settings()
    try:
        config._active = None
        assert config.active_settings() is None  # nothing read behind the caller's back
        settings = config.activate(load_settings(tmp_path, environ={}))
        assert config.active_settings() is settings
    finally:
        config._active = previous
