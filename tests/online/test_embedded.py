"""The embedded server: one per workspace, shared by processes, persistent, stoppable."""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbfeatures.cli import run
from nbfeatures.config import Settings, load_settings
from nbfeatures.online import OnlineStore
from nbfeatures.online.embedded import (
    embedded_paths,
    ensure_embedded,
    running_embedded,
    stop_embedded,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def workspace() -> Iterator[Settings]:
    root = Path(tempfile.mkdtemp(prefix="nbf-ws-"))
    settings = load_settings(root, environ={}, owner="tests")
    yield settings
    stop_embedded(settings)
    shutil.rmtree(root, ignore_errors=True)


def _start(root: str) -> int:
    return ensure_embedded(load_settings(root, environ={})).pid


def test_concurrent_starters_share_one_server_that_outlives_them(workspace: Settings) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        pids = pool.map(_start, [str(workspace.workspace)] * 4)
    # The starting processes have exited; the daemonized server still answers.
    assert len(set(pids)) == 1
    server = running_embedded(workspace)
    assert server is not None and server.pid == pids[0]
    assert embedded_paths(workspace).socket.exists()


def test_data_persists_across_a_restart(workspace: Settings) -> None:
    store = OnlineStore.from_settings(workspace)
    store.client.set("nbf:probe", b"kept")
    store.close()
    first = running_embedded(workspace)
    assert first is not None
    assert stop_embedded(workspace) is True
    assert running_embedded(workspace) is None
    assert stop_embedded(workspace) is False

    again = OnlineStore.from_settings(workspace)
    second = running_embedded(workspace)
    assert second is not None and second.pid != first.pid
    assert again.client.get("nbf:probe") == b"kept"
    assert (embedded_paths(workspace).data_dir / "appendonly.aof").exists()
    again.close()


def test_status_and_stop_commands(workspace: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    from nbfeatures.online import FamilyLayout

    store = OnlineStore.from_settings(workspace)
    layout = FamilyLayout("clicks", 3, "h", "user_id", "ts", (("n", "int64"),))
    store.write_layout(layout)
    store.flip("clicks", 3, None)
    store.close()

    assert run(["--workspace", str(workspace.workspace), "status"]) == 0
    shown = capsys.readouterr().out
    assert str(embedded_paths(workspace).socket) in shown
    assert "clicks" in shown and "v3" in shown

    assert run(["--workspace", str(workspace.workspace), "stop"]) == 0
    assert "stopped" in capsys.readouterr().out
    assert running_embedded(workspace) is None
    assert run(["--workspace", str(workspace.workspace), "status"]) == 0
    assert "not running" in capsys.readouterr().out


def test_too_long_a_socket_path_is_refused(tmp_path: Path) -> None:
    from nbfeatures.errors import ConfigError

    deep = tmp_path / ("d" * 120)
    with pytest.raises(ConfigError, match="socket path"):
        ensure_embedded(load_settings(deep, environ={}))
