"""The wire, on both data planes: malformed request bytes, reflection, health and the token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from serving_fixtures import layout, put_family, running_server

from nbfeatures.online import OnlineStore

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("data_plane")]

SERVICE = "nbfeatures.serving.v1.FeatureService"
METHODS = ("GetOnlineFeatures", "ListFeatures", "DescribeFamily")
# Not protobuf: field 15 with wire type 7 (no such type), then a truncated length.
GARBAGE = b"\x7f\xff\xff\xff\xff\x0a\x99"


@pytest.fixture
def users(store: OnlineStore) -> Iterator[OnlineStore]:
    put_family(store, layout("users", 1), [{"user_id": 1, "clicks": 7, "tier": "gold"}])
    yield store


def raw_call(
    channel: grpc.Channel, method: str, data: bytes, metadata: tuple[tuple[str, str], ...] = ()
) -> bytes:
    call = channel.unary_unary(f"/{SERVICE}/{method}")  # bytes in, bytes out
    return call(data, timeout=10, metadata=metadata)  # type: ignore[no-any-return]


@pytest.mark.parametrize("method", METHODS)
def test_malformed_request_bytes_are_invalid_argument_naming_the_message(users, method):
    with running_server(users) as server, grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        with pytest.raises(grpc.RpcError) as refused:
            raw_call(ch, method, GARBAGE)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = refused.value.details()
        request_type = "ListFeaturesRequest" if method == "ListFeatures" else f"{method}Request"
        assert f"the request is not a valid nbfeatures.serving.v1.{request_type}: " in details
        assert "wire format" in details
        # The server still answers well-formed calls afterwards.
        assert raw_call(ch, "ListFeatures", b"")


def test_malformed_bytes_with_a_token_are_refused_as_invalid_not_answered(users):
    with (
        running_server(users, token="s3cret") as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch,
    ):
        with pytest.raises(grpc.RpcError) as without:
            raw_call(ch, "GetOnlineFeatures", GARBAGE)
        assert without.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as refused:
            raw_call(ch, "GetOnlineFeatures", GARBAGE, (("authorization", "Bearer s3cret"),))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- reflection, health and the token: one rule on both planes ------------------------------


def reflected(channel: grpc.Channel, service: str, method: str) -> tuple[Any, Any, Any]:
    """The request and response classes of ``service/method`` built from reflection alone."""
    from google.protobuf import descriptor_pool, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    database = ProtoReflectionDescriptorDatabase(channel)
    assert service in database.get_services()
    pool = descriptor_pool.DescriptorPool(database)
    found = pool.FindServiceByName(service).methods_by_name[method]
    request = message_factory.GetMessageClass(found.input_type)
    response = message_factory.GetMessageClass(found.output_type)
    call = channel.unary_unary(
        f"/{service}/{method}",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=response.FromString,
    )
    return request, call, pool


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_a_reflection_only_client_health_checks_without_a_token(users, token):
    with (
        running_server(users, token=token) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        request, check, pool = reflected(channel, "grpc.health.v1.Health", "Check")
        answer = check(request(service=""), timeout=10)
        serving = pool.FindEnumTypeByName("grpc.health.v1.HealthCheckResponse.ServingStatus")
        assert serving.values_by_number[answer.status].name == "SERVING"
        answer = check(request(service=SERVICE), timeout=10)
        assert serving.values_by_number[answer.status].name == "SERVING"
        # Reflection and health are open; the features are not.
        request, get, _ = reflected(channel, SERVICE, "GetOnlineFeatures")
        message = request(features=["users:tier"])
        message.entities["user_id"].int64_values.values.append(1)
        if token is not None:
            with pytest.raises(grpc.RpcError) as refused:
                get(message, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        answer = get(message, timeout=10, metadata=metadata)
        assert list(answer.families[0].features[0].values.string_values.values) == ["gold"]


@pytest.mark.parametrize("second", ["Bearer s3cret", "Bearer wrong"])
@pytest.mark.parametrize("method", METHODS)
def test_two_authorization_headers_are_refused(users, method, second):
    with (
        running_server(users, token="s3cret") as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        good = (("authorization", "Bearer s3cret"),)
        assert raw_call(channel, "ListFeatures", b"", good)
        other = ("authorization", second)
        for headers in ((*good, other), (other, *good)):
            with pytest.raises(grpc.RpcError) as refused:
                raw_call(channel, method, b"", headers)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert refused.value.details() == "more than one authorization header was sent"
