"""Deadlines, graceful shutdown of a real ``nbfeatures serve`` process, and mutual TLS."""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from servers import RedisServer, free_port
from serving_fixtures import (
    layout,
    open_store,
    plane_env,
    put_family,
    running_server,
    self_signed_cert,
)

from nbfeatures.client import FeatureClient
from nbfeatures.errors import ConfigError, ServingUnavailable
from nbfeatures.online import OnlineStore
from nbfeatures.serving import convert

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("data_plane")]


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, since the tests pause it."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def users(own_redis: RedisServer) -> Iterator[OnlineStore]:
    store = open_store(own_redis.url)
    put_family(store, layout("users", 1), [{"user_id": 1, "clicks": 7, "tier": "gold"}])
    yield store
    store.close()


def pause_redis(server: RedisServer, milliseconds: int) -> None:
    """Every client's commands wait (``CLIENT PAUSE ... ALL``) for ``milliseconds``."""
    with redis.Redis(port=server.port) as admin:
        admin.execute_command("CLIENT", "PAUSE", milliseconds, "ALL")


def calls_with_code(server, code: str) -> float:
    value = server.metrics.registry.get_sample_value(
        "nbf_serving_requests_total", {"method": "GetOnlineFeatures", "code": code}
    )
    return value or 0.0


def test_deadline_passing_while_the_server_reads(users, own_redis):
    with running_server(users) as server, FeatureClient(f"127.0.0.1:{server.port}") as client:
        assert client.get_online_features({"user_id": 1}, ["users:clicks"])["users:clicks"] == [7]
        pause_redis(own_redis, 1500)
        with pytest.raises(ServingUnavailable, match="DEADLINE_EXCEEDED"):
            client.get_online_features({"user_id": 1}, ["users:clicks"], timeout=0.3)
        # The server records the call when gRPC cancels it at the deadline; wait for that.
        # (DEADLINE_EXCEEDED, or CANCELLED if the client's cancellation at its own deadline
        # reached the server well before the server's copy of the deadline expired.)
        abandoned = 0.0
        for _ in range(500):
            abandoned = calls_with_code(server, "DEADLINE_EXCEEDED")
            abandoned += calls_with_code(server, "CANCELLED")
            if abandoned:
                break
            threading.Event().wait(0.02)  # polling the server's own count
        assert abandoned == 1.0
        assert calls_with_code(server, "OK") == 1.0
        # The abandoned read left no reply behind on a pooled connection: answers stay right.
        got = client.get_online_features({"user_id": [1, 2]}, ["users:clicks"], timeout=10)
        assert got["users:clicks"] == [7, None]
        assert calls_with_code(server, "OK") == 2.0


def _metric(port: int, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    return None


def test_sigterm_finishes_the_call_in_flight_and_refuses_new_ones(users, own_redis, tmp_path):
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "NBF_REDIS_URL": own_redis.url,
        "NBF_SERVE_KEY_PREFIX": users.prefix,
        **plane_env(),
        "NBF_SERVE_METRICS_PORT": str(metrics_port),
        # Longer than the pause below, so the paused read waits rather than fails.
        "NBF_SERVE_REDIS_TIMEOUT_SECONDS": "20",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbfeatures.cli", "--workspace", str(tmp_path), "serve",
         "--port", str(port)],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    answers: queue.Queue[object] = queue.Queue()
    try:
        assert proc.stderr is not None
        assert f"serving on 127.0.0.1:{port}" in proc.stderr.readline()
        target = f"127.0.0.1:{port}"
        with FeatureClient(target, timeout=10) as warm:
            assert warm.get_online_features({"user_id": 1}, ["users:clicks"])["users:clicks"] == [7]
        pause_redis(own_redis, 4000)

        def in_flight_call() -> None:
            try:
                # A connection of its own: the late client's channel below cannot touch it.
                own = [("grpc.use_local_subchannel_pool", 1)]
                with FeatureClient(target, timeout=30, options=own) as client:
                    answers.put(client.get_online_features({"user_id": 1}, ["users:tier"]))
            except Exception as exc:  # handed to the test thread, which fails on it
                answers.put(exc)

        caller = threading.Thread(target=in_flight_call)
        caller.start()
        for _ in range(500):
            if _metric(metrics_port, "nbf_serving_in_flight") == 1.0:
                break
            threading.Event().wait(0.01)  # polling until the call reached the server
        assert _metric(metrics_port, "nbf_serving_in_flight") == 1.0
        proc.send_signal(signal.SIGTERM)
        lines = []
        while "no new calls accepted" not in "".join(lines):
            line = proc.stderr.readline()
            assert line, f"the server exited early: {''.join(lines)}"
            lines.append(line)
        with FeatureClient(target, timeout=1.0) as late, pytest.raises(ServingUnavailable):
            late.get_online_features({"user_id": 1}, ["users:tier"])
        caller.join(timeout=60)
        answer = answers.get(timeout=1)
        assert not isinstance(answer, Exception), answer
        assert answer["users:tier"] == ["gold"]
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


# -- SIGTERM with many calls in flight, Redis hung (its process stopped) -------------------


class Serve:
    """``nbfeatures serve`` as a process of its own on this test's Redis and data plane."""

    def __init__(self, redis_server: RedisServer, store: OnlineStore, folder, **env: str):
        self.port, self.metrics_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nbfeatures.cli", "--workspace", str(folder), "serve",
             "--port", str(self.port)],
            env={**os.environ, "NBF_REDIS_URL": redis_server.url,
                 "NBF_SERVE_KEY_PREFIX": store.prefix, **plane_env(),
                 "NBF_SERVE_METRICS_PORT": str(self.metrics_port), **env},
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr
        banner = self.stderr.readline()
        assert f"serving on 127.0.0.1:{self.port}" in banner, banner
        self.target = f"127.0.0.1:{self.port}"
        self.front = front_pid(self.proc.pid)  # None on the Python plane
        assert (self.front is not None) == (plane_env()["NBF_SERVE_DATA_PLANE"] == "native")
        # Several connections, as several clients would open.
        self.channels = [
            grpc.insecure_channel(self.target, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(8)
        ]
        for channel in self.channels:  # connected now, so every call below reaches the server
            grpc.channel_ready_future(channel).result(timeout=30)

    def call(self, index: int, message: Any) -> grpc.Future:
        stub = convert.feature_stub(self.channels[index % len(self.channels)])
        return stub.GetOnlineFeatures.future(message, timeout=60)  # type: ignore[no-any-return]

    def list_call(self, index: int) -> grpc.Future:
        stub = convert.feature_stub(self.channels[index % len(self.channels)])
        return stub.ListFeatures.future(convert.list_request(), timeout=60)  # type: ignore[no-any-return]

    def in_flight(self) -> float | None:
        return _metric(self.metrics_port, "nbf_serving_in_flight")

    def wait_in_flight(self, count: int) -> None:
        for _ in range(3000):
            if self.in_flight() == count:
                return
            threading.Event().wait(0.01)  # polling until every call reached a handler
        assert self.in_flight() == count

    def draining(self, processes: int = 1) -> str:
        """stderr up to the line of each of ``processes`` saying new calls are refused."""
        lines: list[str] = []
        while "".join(lines).count("no new calls accepted") < processes:
            line = self.stderr.readline()
            assert line, f"the server exited early: {''.join(lines)}"
            lines.append(line)
        return "".join(lines)

    def refuses_new_calls(self) -> None:
        with FeatureClient(self.target, timeout=1.0) as late, pytest.raises(ServingUnavailable):
            late.get_online_features({"user_id": 1}, ["users:tier"])

    def close(self) -> None:
        for channel in self.channels:
            channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.front is not None:  # left behind when its parent was killed
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.front, signal.SIGKILL)


def request(rows: int) -> Any:
    ids = [1 + i % 3 for i in range(rows)]  # user 1 is held, 2 and 3 are not
    return convert.build_request({"user_id": ids}, ["users:tier"])


def tiers(response: Any) -> list[str]:
    return list(response.families[0].features[0].values.string_values.values)


@contextmanager
def redis_stopped(server: RedisServer) -> Iterator[None]:
    """The test's own redis-server stopped (SIGSTOP): connections open, no answer."""
    server.pause()
    try:
        yield
    finally:
        server.resume()


def front_pid(parent: int) -> int | None:
    """The native front: the child of ``nbfeatures serve`` running nbf-serve-native."""
    for folder in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int((folder / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent and b"nbf-serve-native" in (folder / "cmdline").read_bytes():
                return int(folder.name)
    return None


def test_sigterm_finishes_every_call_in_flight_while_redis_hangs(users, own_redis, tmp_path):
    serve = Serve(own_redis, users, tmp_path, NBF_SERVE_REDIS_TIMEOUT_SECONDS="40")
    try:
        data = request(50)
        assert tiers(serve.call(0, data).result()) == ["gold", "", ""] * 16 + ["gold", ""]
        with redis_stopped(own_redis):
            calls = [serve.call(i, data) for i in range(120)]
            serve.wait_in_flight(120)
            serve.proc.send_signal(signal.SIGTERM)
            # New calls are refused at once, while Redis still hangs.
            serve.draining()
            serve.refuses_new_calls()
            assert not any(call.done() for call in calls)
        for call in calls:
            assert tiers(call.result()) == ["gold", "", ""] * 16 + ["gold", ""]
        assert serve.proc.wait(timeout=60) == 0
    finally:
        serve.close()


def test_sigterm_finishes_the_calls_a_busy_server_had_received(users, own_redis, tmp_path):
    """Calls that arrived while the server was busy (here: stopped) are answered, not dropped."""
    # The live version stays cached, so the burst's reads are its values alone.
    serve = Serve(own_redis, users, tmp_path, NBF_SERVE_LIVE_CACHE_SECONDS="600")
    try:
        data = request(900)  # large requests keep the server busy once it runs again
        expected = tiers(serve.call(0, data).result())
        busy = serve.front or serve.proc.pid
        os.kill(busy, signal.SIGSTOP)
        try:
            calls = [serve.call(i, data) for i in range(150)]
            threading.Event().wait(1.0)  # the client writes them to the (stopped) server
            serve.proc.send_signal(signal.SIGTERM)  # taken once the server runs again
            if busy != serve.proc.pid:
                # The native front is stopped by its parent: wait until it is told to stop.
                threading.Event().wait(0.5)
        finally:
            os.kill(busy, signal.SIGCONT)
        outcomes = collections.Counter()
        for call in calls:
            try:
                outcomes["OK" if tiers(call.result()) == expected else "wrong"] += 1
            except grpc.RpcError as exc:
                outcomes[f"{exc.code().name}: {exc.details()}"] += 1
        assert outcomes == {"OK": 150}
        assert serve.proc.wait(timeout=60) == 0
    finally:
        serve.close()


def test_sigterm_stops_several_processes_each_finishing_its_calls(
    users, own_redis, tmp_path, data_plane
):
    if data_plane == "native":
        pytest.skip("the native data plane runs one process")
    serve = Serve(own_redis, users, tmp_path, NBF_SERVE_PROCESSES="2")
    try:
        data = request(3)
        with redis_stopped(own_redis):
            calls = [serve.call(i, data) for i in range(40)]
            for _ in range(3000):
                held = sum(
                    _metric(serve.metrics_port + i, "nbf_serving_in_flight") or 0 for i in (0, 1)
                )
                if held == 40:
                    break
                threading.Event().wait(0.01)  # polling until every call reached a handler
            assert held == 40
            serve.proc.send_signal(signal.SIGTERM)
            serve.draining(processes=2)  # else a late call may reach one still taking calls
            serve.refuses_new_calls()
        for call in calls:
            assert tiers(call.result()) == ["gold", "", ""]
        assert serve.proc.wait(timeout=60) == 0
    finally:
        serve.close()


def test_calls_still_waiting_when_the_grace_ends_say_so_and_the_server_exits(
    users, own_redis, tmp_path
):
    serve = Serve(
        own_redis, users, tmp_path,
        NBF_SERVE_REDIS_TIMEOUT_SECONDS="120", NBF_SERVE_GRACE_SECONDS="1.5",
    )  # fmt: skip
    try:
        data = request(3)
        assert tiers(serve.call(0, data).result()) == ["gold", "", ""]
        with redis_stopped(own_redis):
            calls = [serve.call(i, data) for i in range(60)]
            # Listing reads Redis on the Python server (behind the native front: forwarded).
            calls += [serve.list_call(i) for i in range(4)]
            serve.wait_in_flight(64)
            serve.proc.send_signal(signal.SIGTERM)
            serve.draining()
            serve.refuses_new_calls()
            # Redis never answers within the grace: every call ends, naming why, and the
            # server exits while Redis still hangs.
            for call in calls:
                with pytest.raises(grpc.RpcError) as ended:
                    call.result()
                assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "grace period (1.5 s) ended before this call finished" in (
                    ended.value.details() or ""
                )
            assert serve.proc.wait(timeout=60) == 0
    finally:
        serve.close()


def test_mutual_tls(users, tmp_path):
    for name in ("server", "client", "stranger"):
        (tmp_path / name).mkdir()
    server_cert, server_key = self_signed_cert(tmp_path / "server")
    client_cert, client_key = self_signed_cert(tmp_path / "client")
    stranger_cert, stranger_key = self_signed_cert(tmp_path / "stranger")
    settings = {
        "tls_cert": str(server_cert),
        "tls_key": str(server_key),
        "tls_client_ca": str(client_cert),  # the client's self-signed certificate is its CA
    }
    with running_server(users, **settings) as server:
        target = f"localhost:{server.port}"
        with FeatureClient(
            target, tls=str(server_cert), client_cert=str(client_cert), client_key=str(client_key)
        ) as client:
            assert client.get_online_features({"user_id": 1}, ["users:tier"])["users:tier"] == [
                "gold"
            ]
        without = FeatureClient(target, tls=str(server_cert), timeout=1.0)
        with without as client, pytest.raises(ServingUnavailable):
            client.get_online_features({"user_id": 1}, ["users:tier"])
        stranger = FeatureClient(
            target, tls=str(server_cert), client_cert=stranger_cert.read_bytes(),
            client_key=stranger_key.read_bytes(), timeout=1.0,
        )  # fmt: skip
        with stranger as client, pytest.raises(ServingUnavailable):
            client.get_online_features({"user_id": 1}, ["users:tier"])
    with pytest.raises(ConfigError, match="client_key"):
        FeatureClient("localhost:1", tls=True, client_cert=str(client_cert))
