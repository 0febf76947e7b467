"""The machine's gRPC limit: a bare grpcio unary server doing no work.

    python -m bench.serving.echo PORT

Method ``/bench.Echo/Echo`` takes raw bytes whose first 4 bytes (big-endian) say how long
the answer must be, and returns that many bytes (cached per length), so the echo moves the
same request and response sizes as the feature server for each case. Same thread pool size
as ``nbfeatures serve``'s default (8 workers).
"""

from __future__ import annotations

import sys
from concurrent import futures

import grpc

METHOD = "/bench.Echo/Echo"


def main() -> None:
    answers: dict[int, bytes] = {}

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        size = int.from_bytes(request[:4], "big")
        answer = answers.get(size)
        if answer is None:
            answer = answers.setdefault(size, b"\x01" * size)
        return answer

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=(handler,))
    server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
    server.start()
    print("echo serving", file=sys.stderr, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
