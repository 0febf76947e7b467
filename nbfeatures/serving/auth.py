"""Bearer-token checking and TLS credentials for the feature server.

The rule, the same on both data planes: FeatureService needs the token; health and server
reflection are open. Load balancers probe health without credentials, and reflection tells
only the schema, which is public (``proto/``): a generic client (grpcurl, a reflection-only
client) can then find and health-check the server, and still needs the token to read
features. A call carrying two ``authorization`` headers is refused: which one counts would be
a guess, and proxies differ in which they keep.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

# Open without the token (see above); everything else needs it.
_OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls whose ``authorization`` metadata is not ``Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        if method.startswith(_OPEN_SERVICES):
            return await continuation(handler_call_details)
        sent = [
            value
            for key, value in handler_call_details.invocation_metadata or ()
            if key == "authorization"
        ]
        if not sent:
            return _refusal("this server needs a bearer token in the 'authorization' metadata")
        if len(sent) > 1:
            return _refusal("more than one authorization header was sent")
        given = sent[0].encode() if isinstance(sent[0], str) else bytes(sent[0])
        if not hmac.compare_digest(given, self._expected):
            return _refusal("the bearer token was not accepted")
        return await continuation(handler_call_details)


def _refusal(message: str) -> grpc.RpcMethodHandler:
    async def abort(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.unary_unary_rpc_method_handler(abort)


def server_credentials(cert: str, key: str, client_ca: str | None) -> grpc.ServerCredentials:
    """TLS with the server's certificate; with ``client_ca``, clients must present one too."""
    pair = [(Path(key).read_bytes(), Path(cert).read_bytes())]
    if client_ca:
        return grpc.ssl_server_credentials(
            pair, root_certificates=Path(client_ca).read_bytes(), require_client_auth=True
        )
    return grpc.ssl_server_credentials(pair)
