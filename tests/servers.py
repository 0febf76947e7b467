"""Real servers that tests start for themselves, on free loopback ports.

One place for what every test folder needs: a free port, waiting for a server to listen,
stopping a server with everything it started, and a redis-server of a test's own (never the
shared 6379 one) that it may flush, pause, restart or stop.

- ``free_port()``: a loopback port free now (and its cluster bus port, when asked).
- ``wait_for_port`` / ``wait_for_http`` / ``stop_group``: for servers run as child processes.
- ``RedisServer``: one redis-server (own port and folder, no persistence unless stopped with
  ``save``); ``redis_server`` is a session fixture of one, for conftests to import.
- ``redis_cluster()``: a three-master Redis Cluster of such servers.

Importable as ``servers`` from every test folder (``pythonpath`` in pyproject.toml).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis


def free_port(cluster_bus: bool = False) -> int:
    """A loopback port free now; with ``cluster_bus``, port + 10000 is free too."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if not cluster_bus:
            return port
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free loopback port pair")


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """End a server started with ``start_new_session`` and everything it started."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_for_port(process: subprocess.Popen[bytes], port: int, log: Path, limit: float) -> None:
    """Block until ``port`` accepts connections; the log's tail if the server exits or never
    listens (then it is stopped)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)  # polling for readiness, not asserting on time
    stop_group(process)
    raise RuntimeError(
        f"server did not listen on {port} within {limit}s:\n{log.read_text()[-3000:]}"
    )


def wait_for_http(url: str, process: subprocess.Popen[bytes], log: Path, limit: float) -> None:
    """Block until ``url`` answers 200 (a port opens a moment before its API answers)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)  # polling for readiness, not asserting on time
    raise RuntimeError(f"{url} did not answer within {limit}s:\n{log.read_text()}")


def wait_for_ping(client: redis.Redis, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until the server answers PING (redis-py retries with its own connect timeout)."""
    for _ in range(400):
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if process is not None and process.poll() is not None:
                break
            time.sleep(0.05)  # polling for readiness: the server is still binding
    raise RuntimeError("redis-server did not answer")


class RedisServer:
    """A redis-server of a test's own on 127.0.0.1, its data in ``folder``.

    Nothing is persisted while it runs (``--save ""``, no AOF), so a plain restart loses the
    data; ``stop(save=True)`` writes it to ``folder`` for the next ``start``. ``pause`` stops
    the process (SIGSTOP): connections stay open and nothing answers until ``resume``.
    """

    def __init__(
        self,
        folder: Path | None = None,
        *,
        password: str | None = None,
        args: Sequence[str] = (),
        cluster_bus: bool = False,
    ) -> None:
        self.port = free_port(cluster_bus=cluster_bus)
        self.folder = folder or Path(tempfile.mkdtemp(prefix="nbf-redis-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.password = password
        self.args = tuple(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self._paused = False

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password)

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.skip("redis-server is not installed")
        command = [executable, "--port", str(self.port), "--bind", "127.0.0.1",
                   "--dir", str(self.folder), "--save", "", "--appendonly", "no",
                   "--protected-mode", "no"]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        self.proc = subprocess.Popen(
            [*command, *self.args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        with self.client() as client:
            wait_for_ping(client, self.proc)

    def stop(self, save: bool = False) -> None:
        """Stop the server; with ``save`` its data is written to the folder first."""
        if self.proc is None:
            return
        self.resume()
        if save:
            with contextlib.suppress(redis.ConnectionError), self.client() as client:
                client.shutdown(save=True)
        else:
            self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc = None

    def restart(self, save: bool = False) -> None:
        self.stop(save=save)
        self.start()

    def pause(self) -> None:
        assert self.proc is not None, "the server is not running"
        self.proc.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        if self.proc is not None and self._paused:
            self.proc.send_signal(signal.SIGCONT)
        self._paused = False


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server of this folder's tests for the session (each conftest importing
    this fixture gets its own)."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@contextlib.contextmanager
def redis_cluster(masters: int = 3) -> Iterator[str]:
    """A Redis Cluster of ``masters`` servers of its own; yields its ``redis+cluster://`` URL."""
    root = Path(tempfile.mkdtemp(prefix="nbf-cluster-"))
    nodes = []
    try:
        for index in range(masters):
            folder = root / str(index)
            nodes.append(
                RedisServer(
                    folder,
                    args=["--cluster-enabled", "yes",
                          "--cluster-config-file", str(folder / "nodes.conf")],
                    cluster_bus=True,
                )
            )  # fmt: skip
            nodes[-1].start()
        subprocess.run(
            ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes],
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True,
        )  # fmt: skip
        for node in nodes:
            with node.client() as client:
                for _ in range(400):
                    if client.cluster("info").get("cluster_state") == "ok":
                        break
                    time.sleep(0.05)  # polling for readiness: the nodes gossip the slots
                else:
                    raise RuntimeError(f"cluster node {node.port} never reached cluster_state:ok")
        yield f"redis+cluster://127.0.0.1:{nodes[0].port}"
    finally:
        for node in nodes:
            node.stop()
        shutil.rmtree(root, ignore_errors=True)
