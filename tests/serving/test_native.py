"""The native data plane: what its front answers itself, what it leaves to the Python server.

Every serving test also runs on the native plane (the ``data_plane`` fixture); these check what
only it has: answers byte for byte equal to the Python server's, which calls reach the backend
(its ``nbf_serving_backend_calls_total``), and its configuration errors.
"""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pytest
from serving_fixtures import NOW, layout, put_family, running_server

from nbfeatures.errors import ConfigError
from nbfeatures.online import OnlineStore
from nbfeatures.serving import convert, native
from nbfeatures.serving.config import ServerConfig
from nbfeatures.serving.factory import create_server
from nbfeatures.serving.native import NativeServer, find_binary

pytestmark = pytest.mark.integration

# Past the 1 h ttl, inside its retention (another hour by default): read STALE.
OLD = NOW - dt.timedelta(minutes=65)  # past the 1 h ttl, well inside the retention


@pytest.fixture
def families(store: OnlineStore) -> OnlineStore:
    """``users`` (strings: one key per entity) and ``scores`` (packed), two versions each."""
    for version, clicks in ((1, 100), (2, 7)):
        put_family(
            store,
            layout("users", version, ttl=3600),
            [
                {"user_id": 1, "clicks": clicks, "score": 0.5, "tier": "gold", "active": True,
                 "seen": NOW},
                {"user_id": 2, "clicks": None, "score": 1.5, "tier": None, "ts": OLD},
                {"user_id": 3, "tier": "ünïcode", "active": False},
            ],
        )  # fmt: skip
    numbers = replace(
        layout("scores", 1, ttl=3600),
        features=(("clicks", "int32"), ("score", "float32"), ("active", "bool"),
                  ("seen", "timestamp")),
    )  # fmt: skip
    ids = list(range(40))
    target = store.write_layout(numbers, entities=len(ids))
    assert target.packing is not None
    batch = pa.RecordBatch.from_pydict(
        {
            "user_id": pa.array(ids, pa.int64()),
            "ts": pa.array([OLD if u % 4 == 0 else NOW for u in ids], pa.timestamp("us", "UTC")),
            "clicks": pa.array([u if u % 5 else None for u in ids], pa.int32()),
            "score": pa.array([u / 4 for u in ids], pa.float32()),
            "active": pa.array([u % 2 == 0 for u in ids], pa.bool_()),
            "seen": pa.array([NOW] * len(ids), pa.timestamp("us", "UTC")),
        }
    )
    store.write_rows(replace(numbers, ttl_seconds=None), batch, target=target)
    store.flip("scores", 1, None)
    # Twenty float64 features: 172-byte records in three chunks, so a read of a few features
    # fetches only the chunks holding them.
    wide = replace(
        layout("wide", 1, ttl=3600), features=tuple((f"f{i}", "float64") for i in range(20))
    )
    target = store.write_layout(wide, entities=len(ids))
    assert target.packing is not None and target.packing.chunks == 3
    columns: dict[str, Any] = {
        f"f{i}": pa.array([u * 100 + i if (u + i) % 7 else None for u in ids], pa.float64())
        for i in range(20)
    }
    columns["user_id"] = pa.array(ids, pa.int64())
    columns["ts"] = pa.array([NOW] * len(ids), pa.timestamp("us", "UTC"))
    store.write_rows(wide, pa.RecordBatch.from_pydict(columns), target=target)
    store.flip("wide", 1, None)
    return store


def call(server: Any, request: Any, method: str = "GetOnlineFeatures") -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        return getattr(convert.feature_stub(channel), method)(request, timeout=10)


def outcome(server: Any, request: Any) -> tuple[Any, ...]:
    """The answer without its request time, or the error's code and message."""
    try:
        response = call(server, request)
    except grpc.RpcError as exc:
        return (exc.code(), exc.details())
    response.request_time_us = 0
    return ("OK", response.SerializeToString(deterministic=True))


def backend_calls(server: NativeServer, method: str = "GetOnlineFeatures") -> float:
    value = server.metrics.registry.get_sample_value(
        "nbf_serving_backend_calls_total", {"method": method}
    )
    return value or 0.0


READS = [
    ({"user_id": [1, 2, 3, 4]}, ["users:*"]),
    ({"user_id": [2, 1]}, ["users@v1:clicks", "users:clicks", "users:tier"]),
    ({"user_id": ["1", "3"]}, ["users:tier", "scores:score", "users@v2:seen"]),
    ({"user_id": list(range(-2, 45))}, ["scores:*"]),
    ({"user_id": [0, 5, 39]}, ["scores:clicks", "scores@v1:active", "users:active"]),
    ({"user_id": [0, 6, 13, 99]}, ["wide:f0"]),
    ({"user_id": [1, 6, 7, 8]}, ["wide:f19", "wide:f7"]),
    ({"user_id": list(range(42))}, ["wide:*", "scores:seen"]),
    ({"user_id": [3]}, ["wide@v1:f12", "wide:f13"]),
]


def test_materialized_reads_equal_the_python_servers_byte_for_byte(families):
    requests = [convert.build_request(entities, refs) for entities, refs in READS]
    omitted = convert.build_request({"user_id": [1, 2]}, ["users:*"])
    omitted.options.omit_event_times = True
    requests.append(omitted)
    with running_server(families, data_plane="python") as python:
        expected = [outcome(python, r) for r in requests]
    with running_server(families, data_plane="native") as front:
        got = [outcome(front, r) for r in requests]
        assert backend_calls(front) == 0.0  # every one answered by the front itself
    assert all(e[0] == "OK" for e in expected)
    assert got == expected


def test_everything_else_reaches_the_python_server_with_its_answers(families):
    requests = [
        convert.build_request({"user_id": [1]}, ["users:nope", "ghost:x"]),  # NOT_FOUND
        convert.build_request({"user_id": [1]}, ["Users:clicks"]),  # not a reference
        convert.build_request({"user_id": [1]}, ["users:clicks", "users:clicks"]),  # twice
        convert.build_request({"account": [1]}, ["users:clicks"]),  # the family's key missing
        convert.build_request({"user_id": list(range(1001))}, ["users:clicks"]),  # over limit
        convert.build_request({"user_id": [1]}, []),  # nothing asked for
        convert.build_request({"user_id": [1]}, ["users@v9:clicks"]),  # no such version
    ]
    with running_server(families, data_plane="python") as python:
        expected = [outcome(python, r) for r in requests]
    with running_server(families, data_plane="native") as front:
        got = [outcome(front, r) for r in requests]
        assert backend_calls(front) == len(requests)
        listed = call(front, convert.list_request(), "ListFeatures")
        described = call(front, convert.describe_request("users", 1), "DescribeFamily")
        assert backend_calls(front, "ListFeatures") == backend_calls(front, "DescribeFamily") == 1
    assert [e[0] for e in expected] == [
        grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
    ]  # fmt: skip
    assert got == expected
    assert sorted(d.family for d in listed.families) == ["scores", "users", "wide"]
    assert described.family.version == 1 and list(described.family.versions) == [1, 2]


def test_a_flip_reaches_the_front_within_the_live_cache(families):
    request = convert.build_request({"user_id": [1]}, ["users:clicks"])
    with running_server(families, data_plane="native") as front:
        assert list(call(front, request).families[0].features[0].values.int64_values.values) == [7]
        families.flip("users", 1, 2)
        for _ in range(100):
            block = call(front, request).families[0]
            if block.version == 1:
                break
            threading_wait(0.05)  # the live version is trusted for live_cache_seconds (0.2)
        assert block.version == 1
        assert list(block.features[0].values.int64_values.values) == [100]
        assert backend_calls(front) == 0.0


def test_the_sampled_calls_and_only_they_are_logged_by_the_backend(families):
    stream = f"{families.prefix}served"
    request = convert.build_request({"user_id": [1, 2]}, ["scores:clicks"])
    with running_server(
        families, data_plane="native", log_sample_rate=0.5, log_stream=stream
    ) as front:
        answers = [call(front, request) for _ in range(200)]
        sampled = backend_calls(front)
    assert all(a.families[0].statuses == answers[0].families[0].statuses for a in answers)
    # stop() drained the backend's log queue: one entry per call the front sampled.
    assert 0 < sampled < 200  # at a rate of 0.5, never none or all of 200 in practice
    assert families.client.xlen(stream) == sampled


def threading_wait(seconds: float) -> None:
    import threading

    threading.Event().wait(seconds)


def test_configuration_errors_name_the_setting(families, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"data_plane.*'rust' is not one of: python, native"):
        ServerConfig(data_plane="rust")
    config = ServerConfig(port=0, data_plane="native")
    with pytest.raises(ConfigError, match=r"processes.*leave processes at 1"):
        create_server(replace(config, processes=2), families)
    tls_store = OnlineStore(families.client, families.prefix, url="rediss://127.0.0.1:6380/0")
    with pytest.raises(ConfigError, match="not rediss://; use data_plane: python"):
        create_server(config, tls_store)
    with pytest.raises(ConfigError, match=r"native_binary.*is not an executable file"):
        create_server(replace(config, native_binary=str(tmp_path / "missing")), families)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(native, "_SOURCE_BUILD", tmp_path / "missing")
    with pytest.raises(ConfigError, match="run `make native`"):
        find_binary(None)


def test_a_front_that_cannot_start_is_an_error_and_stops_the_backend(families):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = ServerConfig(port=port, metrics_port=None, data_plane="native")
        server, _ = create_server(config, families)
        assert isinstance(server, NativeServer)
        with pytest.raises(ConfigError, match="did not start"):
            server.start()
    backend = server.backend
    assert backend._stopped.is_set()  # nothing left running behind the failed front
    assert not Path(backend.config.host.removeprefix("unix:")).parent.exists()


def test_redis_addresses_become_the_fronts_flags():
    flags, env = native.redis_flags("redis://bob:s3cret@db.example:6390/4")
    assert flags == ["--redis-db=4", "--redis-host=db.example", "--redis-port=6390",
                     "--redis-username=bob"]  # fmt: skip
    assert env == {"NBF_NATIVE_REDIS_PASSWORD": "s3cret"}
    flags, env = native.redis_flags("unix:///run/redis.sock?db=2")
    assert flags == ["--redis-db=2", "--redis-unix=/run/redis.sock"] and env == {}
    with pytest.raises(ConfigError, match=r"serve\.redis_url.*needs the online store's URL"):
        native.redis_flags("")
