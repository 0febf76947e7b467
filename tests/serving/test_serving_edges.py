"""Contract, security, health, metrics, outages, the served-vector log and shutdown."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pyarrow.parquet as pq
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from servers import RedisServer, free_port
from serving_fixtures import (
    layout,
    open_store,
    put_family,
    running_server,
    self_signed_cert,
)

from nbfeatures.client import FeatureClient
from nbfeatures.errors import ServingUnavailable, Unauthenticated
from nbfeatures.serving.codegen import GENERATED, generate
from nbfeatures.serving.vector_log import flush_served_log

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def users(store):
    put_family(store, layout("users", 1, ttl=3600), [{"user_id": 1, "clicks": 7, "tier": "gold"}])
    return store


def health_status(port: int, channel: grpc.Channel | None = None) -> int:
    own = channel is None
    channel = channel or grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
    finally:
        if own:
            channel.close()


def test_generated_code_matches_the_proto(tmp_path):
    written = generate(tmp_path)
    names = sorted(p.name for p in written)
    assert names == sorted(p.name for p in GENERATED.iterdir() if p.is_file())
    _, mismatch, errors = filecmp.cmpfiles(GENERATED, tmp_path, names, shallow=False)
    assert not mismatch and not errors, f"run `make protos`: {mismatch or errors} out of date"


def test_server_imports_no_spark_mlflow_or_jupyter():
    code = (
        "import sys, nbfeatures.serving.server, nbfeatures.serving.main, nbfeatures.client\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('pyspark', 'mlflow', 'IPython', 'ipykernel', 'jupyter_server', 'papermill')]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.usefixtures("data_plane")
def test_reflection_generic_client_without_generated_code(users):
    from google.protobuf import descriptor_pool, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with running_server(users) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        database = ProtoReflectionDescriptorDatabase(channel)
        services = database.get_services()
        assert "nbfeatures.serving.v1.FeatureService" in services
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName("nbfeatures.serving.v1.FeatureService")
        method = service.methods_by_name["GetOnlineFeatures"]
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        request = request_cls(features=["users:clicks", "users:tier"])
        request.entities["user_id"].string_values.values.extend(["1", "2"])
        call = channel.unary_unary(
            "/nbfeatures.serving.v1.FeatureService/GetOnlineFeatures",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_cls.FromString,
        )
        response = call(request, timeout=5)
        channel.close()
    block = response.families[0]
    assert (block.family, block.version) == ("users", 1)
    status_enum = pool.FindEnumTypeByName("nbfeatures.serving.v1.ValueStatus")
    assert [status_enum.values_by_number[s].name for s in block.statuses] == [
        "PRESENT",
        "NOT_FOUND",
    ]
    columns = {c.name: c for c in block.features}
    assert list(columns["clicks"].values.int64_values.values) == [7, 0]
    assert list(columns["tier"].values.string_values.values) == ["gold", ""]


@pytest.mark.usefixtures("data_plane")
def test_bearer_token(users):
    with running_server(users, token="s3cret") as server:
        target = f"127.0.0.1:{server.port}"
        with FeatureClient(target) as client, pytest.raises(Unauthenticated, match="bearer"):
            client.get_online_features({"user_id": 1}, ["users:clicks"])
        wrong = FeatureClient(target, token="wrong")
        with wrong as client, pytest.raises(Unauthenticated, match="not accepted"):
            client.get_online_features({"user_id": 1}, ["users:clicks"])
        with FeatureClient(target, token="s3cret") as client:
            assert client.get_online_features({"user_id": 1}, ["users:clicks"])["users:clicks"] == [
                7
            ]
        # Load balancers check health without a token.
        assert health_status(server.port) == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.usefixtures("data_plane")
def test_tls(users, tmp_path):
    cert, key = self_signed_cert(tmp_path)
    with running_server(users, tls_cert=str(cert), tls_key=str(key)) as server:
        target = f"localhost:{server.port}"
        with FeatureClient(target, tls=str(cert)) as client:
            got = client.get_online_features({"user_id": 1}, ["users:tier"])
        assert got["users:tier"] == ["gold"]
        with FeatureClient(target, timeout=1.0) as plain, pytest.raises(ServingUnavailable):
            plain.get_online_features({"user_id": 1}, ["users:tier"])


@pytest.mark.usefixtures("data_plane")
def test_metrics_endpoint(users):
    with running_server(users) as server:
        with FeatureClient(f"127.0.0.1:{server.port}") as client:
            client.get_online_features({"user_id": [1, 2]}, ["users:*"])
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
    assert 'nbf_serving_values_total{family="users",status="PRESENT"} 5.0' in text
    assert 'nbf_serving_values_total{family="users",status="NOT_FOUND"} 5.0' in text
    assert 'nbf_serving_request_seconds_count{method="GetOnlineFeatures"} 1.0' in text
    assert 'nbf_serving_family_read_seconds_count{family="users"} 1.0' in text
    assert 'nbf_serving_staleness_seconds{family="users"}' in text
    assert 'nbf_serving_requests_total{code="OK",method="GetOnlineFeatures"} 1.0' in text
    assert "nbf_serving_redis_errors_total 0.0" in text


@pytest.mark.usefixtures("data_plane")
def test_served_vector_log_and_flush(users, tmp_path):
    stream = f"{users.prefix}served"
    with running_server(users, log_sample_rate=1.0, log_stream=stream) as server:
        client = FeatureClient(f"127.0.0.1:{server.port}")
        with client:
            client.get_online_features({"user_id": [1, 2]}, ["users:clicks"], request_id="r-1")
    # stop() drains the queue, so the entry is in the stream now.
    assert users.client.xlen(stream) == 1
    moved, files = flush_served_log(users.client, stream, str(tmp_path))
    assert moved == 1 and len(files) == 1
    assert "/_served/date=" in files[0]
    table = pq.read_table(files[0]).to_pylist()
    assert [(r["entity"], r["feature"], r["status"], r["value"]) for r in table] == [
        ("1", "clicks", "PRESENT", "7"),
        ("2", "clicks", "NOT_FOUND", "null"),
    ]
    assert table[0]["request_id"] == "r-1" and table[0]["version"] == 1
    assert table[0]["event_time"] is not None and table[1]["event_time"] is None
    assert users.client.xlen(stream) == 0


@pytest.mark.usefixtures("data_plane")
def test_redis_outage_and_recovery():
    own = RedisServer()
    own.start()
    try:
        store = open_store(own.url)
        rows = [{"user_id": 1, "clicks": 7}]
        put_family(store, layout("users", 1), rows)
        with running_server(store) as server:
            target = f"127.0.0.1:{server.port}"
            with FeatureClient(target, timeout=1.0) as client:
                assert client.get_online_features({"user_id": 1}, ["users:clicks"])[
                    "users:clicks"
                ] == [7]
                own.stop()
                with pytest.raises(ServingUnavailable, match="online store"):
                    client.get_online_features({"user_id": 1}, ["users@v1:clicks"])
                assert health_status(server.port) == health_pb2.HealthCheckResponse.NOT_SERVING
                own.start()
                put_family(store, layout("users", 1), rows)
                status = None
                for _ in range(100):  # the watcher pings every 0.1 s
                    status = health_status(server.port)
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
                    time.sleep(0.05)  # waiting for the watcher's next ping
                assert status == health_pb2.HealthCheckResponse.SERVING
                got = client.get_online_features({"user_id": 1}, ["users@v1:clicks"])
                assert got["users@v1:clicks"] == [7]
        store.close()
    finally:
        own.stop()


@pytest.mark.usefixtures("data_plane")
def test_serve_command_stops_gracefully_on_sigterm(redis_server, tmp_path):
    port = free_port()
    env = {**os.environ, "NBF_REDIS_URL": redis_server.url, "NBF_SERVE_METRICS_PORT": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbfeatures.cli", "--workspace", str(tmp_path), "serve",
         "--port", str(port)],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        assert f"serving on 127.0.0.1:{port}" in banner
        assert health_status(port) == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "finishing in-flight calls" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
