"""The wire, on both data planes: malformed request bytes, reflection, health and the token."""

from __future__ import annotations

from collections.abc import Iterator

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
