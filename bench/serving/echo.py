"""The machine's gRPC limit: a bare grpcio unary server doing no work.

    python -m bench.serving.echo PORT [--aio] [--reuseport]

Method ``/bench.Echo/Echo`` takes raw bytes whose first 4 bytes (big-endian) say how long
the answer must be, and returns that many bytes (cached per length), so the echo moves the
same request and response sizes as the feature server for each case. Two flavours, as
nbfeatures could be either: the thread-pool server (8 workers, the old default of
``nbfeatures serve``) and, with ``--aio``, a ``grpc.aio`` server on one event loop like
``nbfeatures serve`` now. ``--reuseport`` lets several echo processes share the port.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from concurrent import futures

import grpc

METHOD = "/bench.Echo/Echo"


def _answer(answers: dict[int, bytes], request: bytes) -> bytes:
    size = int.from_bytes(request[:4], "big")
    answer = answers.get(size)
    if answer is None:
        answer = answers.setdefault(size, b"\x01" * size)
    return answer


def serve_threads(port: int, reuseport: bool) -> None:
    answers: dict[int, bytes] = {}

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        return _answer(answers, request)

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        handlers=(handler,),
        options=[("grpc.so_reuseport", int(reuseport))],
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("echo serving (threads)", file=sys.stderr, flush=True)
    server.wait_for_termination()


async def serve_aio(port: int, reuseport: bool) -> None:
    answers: dict[int, bytes] = {}

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return _answer(answers, request)

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.aio.server(handlers=(handler,), options=[("grpc.so_reuseport", int(reuseport))])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("echo serving (aio)", file=sys.stderr, flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--aio", action="store_true")
    parser.add_argument("--reuseport", action="store_true")
    args = parser.parse_args()
    if args.aio:
        asyncio.run(serve_aio(args.port, args.reuseport))
    else:
        serve_threads(args.port, args.reuseport)


if __name__ == "__main__":
    main()
