"""Which failures the clients try again, against a real gRPC server that fails on purpose.

A stopping gRPC server cancels the calls it had received but not started: the caller sees
CANCELLED though nothing ran. The clients retry that like UNAVAILABLE (every call reads), and
give up at the deadline with ``ServingUnavailable``; other failures are not retried.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from nbfeatures.client import AsyncFeatureClient, FeatureClient
from nbfeatures.errors import ServingError, ServingUnavailable
from nbfeatures.serving import convert


class FailingFirst:
    """Answers GetOnlineFeatures (no families) after failing the first ``failures`` calls."""

    def __init__(self) -> None:
        self.code = grpc.StatusCode.CANCELLED
        self.failures = 0
        self.calls = 0
        self._lock = threading.Lock()

    def GetOnlineFeatures(self, data: bytes, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.calls += 1
            failing = self.calls <= self.failures
        if failing:
            # The bare text gRPC core gives the calls a stopping server cancels.
            context.abort(self.code, self.code.name)
        return convert.pb.GetOnlineFeaturesResponse()

    def ListFeatures(self, data: bytes, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")

    DescribeFamily = ListFeatures


@pytest.fixture(scope="module")
def failing() -> Iterator[tuple[FailingFirst, str]]:
    servicer = FailingFirst()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    convert.add_feature_service(server, servicer)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def read(client: FeatureClient) -> dict[str, list[Any]]:
    return client.get_online_features({"user_id": 1}, ["users:tier"])


def fail(servicer: FailingFirst, code: grpc.StatusCode, failures: int) -> None:
    servicer.code, servicer.failures, servicer.calls = code, failures, 0


@pytest.mark.parametrize("code", [grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE])
def test_a_stopping_or_unavailable_server_is_tried_again(failing, code):
    servicer, target = failing
    fail(servicer, code, failures=3)
    with FeatureClient(target, timeout=10.0) as client:
        assert read(client) == {"user_id": [1]}
    assert servicer.calls == 4


def test_the_async_client_tries_a_cancelled_call_again(failing):
    servicer, target = failing
    fail(servicer, grpc.StatusCode.CANCELLED, failures=2)

    async def read_async() -> dict[str, list[Any]]:
        async with AsyncFeatureClient(target, timeout=10.0) as client:
            return await client.get_online_features({"user_id": 1}, ["users:tier"])

    assert asyncio.run(read_async()) == {"user_id": [1]}
    assert servicer.calls == 3


def test_cancelled_until_the_deadline_is_unavailable(failing):
    servicer, target = failing
    fail(servicer, grpc.StatusCode.CANCELLED, failures=10**6)
    with (
        FeatureClient(target, timeout=0.5) as client,
        pytest.raises(ServingUnavailable, match="CANCELLED"),
    ):
        read(client)
    assert servicer.calls > 1


def test_other_failures_are_not_tried_again(failing):
    servicer, target = failing
    fail(servicer, grpc.StatusCode.INTERNAL, failures=1)
    with FeatureClient(target, timeout=10.0) as client, pytest.raises(ServingError) as caught:
        read(client)
    assert not isinstance(caught.value, ServingUnavailable)
    assert "INTERNAL" in str(caught.value)
    assert servicer.calls == 1
