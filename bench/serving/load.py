"""The load generator: a process of its own, the same code and interpreter for every system.

    python -m bench.serving.load MODE KIND TARGET PATH POOL [options]

MODE is ``latency`` (a closed loop: one request in flight, ``--warmup`` requests first, then up
to ``--requests`` requests or ``--max-seconds``, whichever ends first; p50/p99 of each call's
time) or ``throughput`` (``--concurrency`` requests kept in flight for ``--duration`` seconds
after ``--warmup-seconds``; completed requests/s, spread over ``--channels`` gRPC channels,
each its own TCP connection). KIND is ``grpc`` (``PATH`` is the method;
requests and responses travel as raw bytes, so no message is built or parsed while timing:
the pool holds serialized requests) or ``http`` (``PATH`` is the URL path; JSON bodies over
HTTP/1.1 keep-alive connections). ``POOL`` is a pickled list of request bytes, cycled through.

With ``--feature-client`` (gRPC latency only) the calls go through nbfeatures' ``FeatureClient``
instead (building the request from ids and parsing the answer into Python lists); the pool is
then a JSON file of entity sets and ``--features`` the refs. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pickle
import statistics
import time
from pathlib import Path
from typing import Any


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, int(q * n))] / 1e6

    return {
        "n": n,
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "mean_ms": statistics.fmean(ordered) / 1e6,
        "max_ms": ordered[-1] / 1e6,
    }


def _http_request(host: str, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _http_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> int:
    """Send one request and read its whole answer; returns the body's length."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = head[9:12]
    length = -1
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length < 0:
        raise RuntimeError(f"answer without Content-Length: {head[:200]!r}")
    body = await reader.readexactly(length)
    if status != b"200":
        raise RuntimeError(f"HTTP {status!r}: {body[:300]!r}")
    return length


def latency(args: argparse.Namespace, pool: list[Any]) -> dict[str, Any]:
    samples: list[int] = []
    sizes: list[int] = []
    if args.feature_client:
        from nbfeatures.client import FeatureClient

        client = FeatureClient(args.target, timeout=30.0)

        def once(item: Any) -> int:
            got = client.get_online_features({"entity_id": item}, args.features)
            return len(got)

        close = client.close
    elif args.kind == "grpc":
        import grpc

        channel = grpc.insecure_channel(args.target)
        call = channel.unary_unary(args.path)

        def once(item: Any) -> int:
            return len(call(item, timeout=30.0))

        close = channel.close
    else:
        import socket

        host, port = args.target.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader_file = sock.makefile("rb")
        raws = [_http_request(args.target, args.path, body) for body in pool]
        pool = raws

        def once(item: Any) -> int:
            sock.sendall(item)
            status = reader_file.readline()
            length = -1
            while True:
                line = reader_file.readline()
                if line in (b"\r\n", b""):
                    break
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = reader_file.read(length)
            if status[9:12] != b"200":
                raise RuntimeError(f"HTTP {status!r}: {body[:300]!r}")
            return len(body)

        close = sock.close
    size = len(pool)
    for i in range(args.warmup):
        once(pool[i % size])
    started = time.monotonic()
    for i in range(args.requests):
        item = pool[i % size]
        t0 = time.perf_counter_ns()
        sizes.append(once(item))
        samples.append(time.perf_counter_ns() - t0)
        if time.monotonic() - started > args.max_seconds:
            break
    close()
    result = percentiles(samples)
    result["response_bytes"] = statistics.fmean(sizes)
    return result


async def _grpc_throughput(args: argparse.Namespace, pool: list[bytes]) -> dict[str, Any]:
    import grpc

    counts = [0, 0]  # completed, failed
    size = len(pool)
    # A local subchannel pool per channel: otherwise grpc shares one TCP connection between
    # channels to the same target, and a server of several processes would see only one.
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [
        grpc.aio.insecure_channel(args.target, options=options) for _ in range(args.channels)
    ]
    calls = [channel.unary_unary(args.path) for channel in channels]
    try:

        async def worker(offset: int, until: float, counting: bool) -> None:
            call = calls[offset % len(calls)]
            i = offset
            while time.monotonic() < until:
                try:
                    await call(pool[i % size], timeout=30.0)
                    counts[0] += counting
                except grpc.aio.AioRpcError:
                    counts[1] += 1
                i += 1

        result = await _run_workers(args, worker, counts)
        result["channels"] = args.channels
        return result
    finally:
        for channel in channels:
            await channel.close()


async def _http_throughput(args: argparse.Namespace, pool: list[bytes]) -> dict[str, Any]:
    host, port = args.target.rsplit(":", 1)
    raws = [_http_request(args.target, args.path, body) for body in pool]
    size = len(raws)
    counts = [0, 0]
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(args.concurrency)]

    async def worker(offset: int, until: float, counting: bool) -> None:
        reader, writer = connections[offset]
        i = offset
        while time.monotonic() < until:
            try:
                await _http_exchange(reader, writer, raws[i % size])
                counts[0] += counting
            except RuntimeError:
                counts[1] += 1
            except (OSError, asyncio.IncompleteReadError):
                # The server dropped the connection (e.g. gunicorn restarting a timed-out
                # worker): count the failure and reconnect, bounded by the same deadline.
                counts[1] += 1
                writer.close()
                await asyncio.sleep(0.1)
                with contextlib.suppress(OSError):
                    reader, writer = await asyncio.open_connection(host, int(port))
                    connections[offset] = (reader, writer)
            i += 1

    try:
        return await _run_workers(args, worker, counts)
    finally:
        for _, writer in connections:
            writer.close()


async def _run_workers(args: argparse.Namespace, worker: Any, counts: list[int]) -> dict[str, Any]:
    warm_until = time.monotonic() + args.warmup_seconds
    await asyncio.gather(*(worker(k, warm_until, False) for k in range(args.concurrency)))
    started = time.monotonic()
    until = started + args.duration
    await asyncio.gather(*(worker(k, until, True) for k in range(args.concurrency)))
    elapsed = time.monotonic() - started
    return {
        "completed": counts[0],
        "failed": counts[1],
        "seconds": elapsed,
        "requests_per_s": counts[0] / elapsed,
        "concurrency": args.concurrency,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("latency", "throughput"))
    parser.add_argument("kind", choices=("grpc", "http"))
    parser.add_argument("target")
    parser.add_argument("path")
    parser.add_argument("pool")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=32)
    # gRPC throughput only: requests are spread over this many channels (TCP connections).
    # HTTP always uses one connection per request in flight.
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--feature-client", action="store_true")
    parser.add_argument("--features", nargs="*", default=[])
    args = parser.parse_args()
    if args.feature_client:
        pool: list[Any] = json.loads(Path(args.pool).read_text())
    else:
        pool = pickle.loads(Path(args.pool).read_bytes())
    if args.mode == "latency":
        result = latency(args, pool)
    elif args.kind == "grpc":
        result = asyncio.run(_grpc_throughput(args, pool))
    else:
        result = asyncio.run(_http_throughput(args, pool))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
