"""The load generator for every server: ``h2load`` (nghttp2's C client), driven from here.

A Python client on the same 2 cores as the server spends much of them on its own work, so it
measured itself as much as the server. ``h2load`` costs little CPU per request. What it cannot
do is read gRPC's status (it is in the trailers, and an error answer is still HTTP 200), so
every case is checked twice:

- before timing, ``verify_grpc`` / ``verify_http`` send the same body through a Python client
  and require status OK (HTTP 200) and a known answer size;
- after timing, ``check`` requires 0 failed or errored requests, every request done with a
  2xx status, and the DATA bytes h2load received equal to the expected framed answer size
  times the requests done (plus at most the requests still under way when a timed run
  ends); a gRPC error is trailers-only: it carries no DATA, so it shows up here.

``h2load`` sends one body per run: every request of a case asks for the same entity set.
``h2load`` comes from Debian's ``nghttp2-client`` package (``apt-get install nghttp2-client``).
Warm-up is a separate short run, because h2load counts the DATA bytes of its own warm-up
phase in its totals but not its requests.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.serving.load import percentiles

H2LOAD = "h2load"
GRPC_HEADERS = ("-H", "content-type: application/grpc", "-H", "te: trailers")
HTTP_HEADERS = ("-H", "content-type: application/json")

_REQUESTS = re.compile(
    r"requests: (?P<total>\d+) total, (?P<started>\d+) started, (?P<done>\d+) done, "
    r"(?P<ok>\d+) succeeded, (?P<failed>\d+) failed, (?P<errored>\d+) errored, "
    r"(?P<timeout>\d+) timeout"
)
_STATUS = re.compile(
    r"status codes: (?P<s2>\d+) 2xx, (?P<s3>\d+) 3xx, (?P<s4>\d+) 4xx, (?P<s5>\d+) 5xx"
)
_TRAFFIC = re.compile(r"traffic: .*?\((?P<total>\d+)\) total, .*?\((?P<headers>\d+)\) headers.*?"
                      r"\((?P<data>\d+)\) data")  # fmt: skip
_FINISHED = re.compile(r"finished in (?P<seconds>[\d.]+)(?P<unit>m?s), (?P<rps>[\d.]+) req/s")


class H2loadFailed(RuntimeError):
    """h2load's run is not a measurement: failed requests, wrong answers, or it did not run."""


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: flag 0 (not compressed), 4-byte big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


@dataclass(frozen=True)
class Target:
    """What h2load sends to one server for one case, and the answer size it must get back."""

    url: str  # http://host:port/<method path or URL path>
    body: Path  # the exact bytes of every request
    answer_bytes: int  # DATA bytes per answer: 5 + message for gRPC, the body for HTTP
    http1: bool = False  # HTTP/1.1 (``--h1``) rather than h2c

    def headers(self) -> tuple[str, ...]:
        return HTTP_HEADERS if self.http1 else GRPC_HEADERS


def _duration(seconds: float) -> str:
    """h2load's DURATION: an integer with a unit (it refuses ``1.0``)."""
    return f"{round(seconds * 1000)}ms"


def _command(target: Target, extra: list[str]) -> list[str]:
    return [H2LOAD, *extra, "-t", "1", "-d", str(target.body), *target.headers(),
            *(["--h1"] if target.http1 else []), target.url]  # fmt: skip


def _run(target: Target, extra: list[str], timeout: float) -> dict[str, Any]:
    if shutil.which(H2LOAD) is None:
        raise H2loadFailed("h2load is not installed: apt-get install -y nghttp2-client")
    out = subprocess.run(_command(target, extra), capture_output=True, text=True,
                         timeout=timeout, check=False)  # fmt: skip
    text = out.stdout
    req, status, traffic = _REQUESTS.search(text), _STATUS.search(text), _TRAFFIC.search(text)
    finished = _FINISHED.search(text)
    if out.returncode != 0 or not (req and status and traffic and finished):
        raise H2loadFailed(f"h2load {' '.join(extra)} exited {out.returncode}: "
                           f"{(out.stderr or text)[-600:]}")  # fmt: skip
    seconds = float(finished["seconds"]) / (1000 if finished["unit"] == "ms" else 1)
    return {
        "done": int(req["done"]),
        "succeeded": int(req["ok"]),
        "failed": int(req["failed"]),
        "errored": int(req["errored"]),
        "timeout": int(req["timeout"]),
        "status_2xx": int(status["s2"]),
        "data_bytes": int(traffic["data"]),
        "header_bytes": int(traffic["headers"]),
        "seconds": seconds,
        "requests_per_s": float(finished["rps"]),
    }


def check(target: Target, result: dict[str, Any], in_flight: int = 1) -> None:
    """Every request succeeded and got exactly the expected answer size (see the module doc).

    A timed run ends with up to ``in_flight`` requests under way: h2load counts their status
    line and the DATA they received so far, but not them as done, so those may add up to
    ``in_flight`` statuses and answers beyond the done ones (seen over HTTP/1.1).
    """
    done = result["done"]
    problems = []
    if done == 0:
        problems.append("no request completed")
    if result["failed"] or result["errored"] or result["timeout"]:
        problems.append(f"{result['failed']} failed, {result['errored']} errored, "
                        f"{result['timeout']} timed out")  # fmt: skip
    if result["succeeded"] != done or not done <= result["status_2xx"] <= done + in_flight:
        problems.append(f"{result['status_2xx']} 2xx of {done} done")
    per = result["data_bytes"] / done if done else 0.0
    result["data_bytes_per_request"] = per
    extra = result["data_bytes"] - done * target.answer_bytes
    if not 0 <= extra <= in_flight * target.answer_bytes:
        problems.append(f"{per:.1f} DATA bytes per answer, expected {target.answer_bytes}")
    if problems:
        raise H2loadFailed(f"{target.url}: " + "; ".join(problems))


def warm(target: Target, seconds: float, connections: int = 1, streams: int = 8) -> None:
    result = _run(target, ["-c", str(connections), "-m", str(streams), "-D", _duration(seconds)],
                  timeout=seconds + 60)  # fmt: skip
    check(target, result, connections * streams)


def throughput(target: Target, connections: int, streams: int, seconds: float) -> dict[str, Any]:
    """Requests/s with ``connections`` x ``streams`` requests in flight for ``seconds``."""
    result = _run(target, ["-c", str(connections), "-m", str(streams), "-D", _duration(seconds)],
                  timeout=seconds + 60)  # fmt: skip
    check(target, result, connections * streams)
    result["connections"] = connections
    result["streams_per_connection"] = streams
    result["in_flight"] = connections * streams
    return result


def latency(target: Target, seconds: float) -> dict[str, Any]:
    """A closed loop: one connection, one request in flight, for ``seconds``; p50/p99 of the
    per-request times h2load logs (3rd column of its log file, microseconds)."""
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        log = Path(tmp) / "requests.log"  # h2load appends: a fresh file per run
        result = _run(target, ["-c", "1", "-m", "1", "-D", _duration(seconds), f"--log-file={log}"],
                      timeout=seconds + 60)  # fmt: skip
        check(target, result)
        nanos = [int(line.split("\t")[2]) * 1000 for line in log.read_text().splitlines()]
    return {
        **percentiles(nanos),
        "requests_per_s": result["requests_per_s"],
        "data_bytes_per_request": result["data_bytes_per_request"],
    }


def verify_grpc(address: str, method: str, message: bytes) -> int:
    """One call with the exact request bytes through grpcio; status OK or it raises. Returns the
    answer's length (the gRPC message, without the 5-byte frame header)."""
    import grpc

    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(method)
        try:
            answer: bytes = call(message, timeout=60.0)
        except grpc.RpcError as exc:
            raise H2loadFailed(f"{address}{method}: {exc.code()} {exc.details()}") from exc
    if not answer:
        raise H2loadFailed(f"{address}{method}: an empty answer")
    return len(answer)


def verify_http(url: str, body: bytes) -> int:
    """One POST with the exact body; HTTP 200 or it raises. Returns the answer body's length."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return len(answer.read())
    except urllib.error.HTTPError as exc:
        raise H2loadFailed(f"{url}: HTTP {exc.code} {exc.read()[:300]!r}") from exc
