"""Online serving: nbfeatures' gRPC feature server vs Feast 0.67.0 ``listen`` (gRPC) and
``serve`` (HTTP), with the machine's limits (a bare grpcio echo server, redis-benchmark MGET).

    .venv/bin/python -m bench.serving.run --rounds 3

Data: ``bench/serving/data.py`` (100k int64 entities x 50 float64 features, one Parquet file).
Cases: 1, 10 and 100 entities per request x 10 and 50 features. One dedicated redis-server
(own port, persistence off), ``FLUSHALL`` before each system's data is loaded. Each round runs,
one system at a time: nbfeatures (``nbfeatures serve``, one process, then ``--processes``),
redis-benchmark on nbfeatures' keys, both echo servers, then Feast's data loaded and ``feast
listen`` and ``feast serve`` in turn.

The load generator is ``h2load`` (``bench/serving/h2.py``), a C client that leaves the 2 cores
to the servers; every case's request is first checked through a Python client and every
timed run's answers are checked by count and size. For every server and case: a warm-up, then
serial latency (one connection, one request in flight: p50/p99 of h2load's per-request
log), then for the throughput cases saturation with ``--concurrency`` requests in flight:
for gRPC on 1 connection and spread over 4 (the better counts), for HTTP/1.1 one connection
per request in flight. The Python client (``load.py``), used before h2load, still runs on
``--python-cases`` as a second column. Then serial latency of nbfeatures and the echo server
alternating closely (``--serial-pairs``), so the machine's noise lands on both alike.
Results: ``bench/results/serving.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import pickle
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from bench.serving import h2, nbf_side
from bench.serving.data import (
    ENTITY_KEY,
    FAMILY,
    FEATURES,
    PARQUET,
    entity_ids,
    entity_sets,
    generate,
)
from bench.serving.summary import summarize

ROOT = Path(__file__).resolve().parents[2]
FEAST_BIN = ROOT / "bench" / ".feast-venv" / "bin"
RESULTS = ROOT / "bench" / "results" / "serving.json"
PY = sys.executable
ALL_CASES = ((1, 10), (1, 50), (10, 10), (10, 50), (100, 10), (100, 50))
KEY_CASES = ((1, 10), (100, 10))
POOL_SIZE = 256
ECHO_METHOD = "/bench.Echo/Echo"
FEAST_GRPC_METHOD = "/GrpcFeatureServer/GetOnlineFeatures"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def case_name(case: tuple[int, int]) -> str:
    return f"{case[0]}e_{case[1]}f"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@contextlib.contextmanager
def started(command: list[str], log: Path, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    """A server process, stopped (SIGTERM, then SIGKILL after 20 s) when the block ends."""
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=out, env=env, cwd=cwd)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def wait_grpc(target: str, proc: subprocess.Popen[bytes]) -> None:
    import grpc

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with grpc.insecure_channel(target) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=1.0)
                return
            except grpc.FutureTimeoutError:
                continue
    raise RuntimeError(f"no gRPC server on {target}")


def http_post(url: str, body: bytes) -> Any:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def wait_http(url: str, body: bytes, proc: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            return http_post(url, body)
        except OSError:
            time.sleep(0.5)  # polling for readiness: gunicorn is still starting its worker
    raise RuntimeError(f"no HTTP server at {url}")


class LoadFailed(RuntimeError):
    """The load generator stopped with an error (e.g. the server under test died)."""


def run_load(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [PY, "-m", "bench.serving.load", *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise LoadFailed(out.stderr[-2000:])
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


class Bench:
    def __init__(self, opts: argparse.Namespace, work: Path) -> None:
        self.opts = opts
        self.work = work
        self.cases = [c for c in ALL_CASES if case_name(c) in opts.cases]
        self.throughput_cases = [c for c in self.cases if case_name(c) in opts.throughput_cases]
        self.python_cases = [c for c in self.cases if case_name(c) in opts.python_cases]
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.runs: list[dict[str, Any]] = []
        self.response_bytes: dict[str, int] = {}
        generate()
        ids = entity_ids()
        self.sets: dict[str, list[list[int]]] = {}
        for n, f in self.cases:
            self.sets[case_name((n, f))] = entity_sets(ids, n, POOL_SIZE, seed=n * 1000 + f)
        self.pools: dict[tuple[str, str], Path] = {}
        import pyarrow.parquet as pq

        table = pq.read_table(PARQUET, columns=[ENTITY_KEY, "f0"])
        self.expected_f0 = dict(
            zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=False)
        )

    # -- pools ---------------------------------------------------------------------------------

    def build_pools(self) -> None:
        feast_py = str(FEAST_BIN / "python")
        for case in self.cases:
            name = case_name(case)
            sets = self.sets[name]
            sets_path = self.work / f"sets_{name}.json"
            sets_path.write_text(json.dumps(sets))
            self.pools[("sets", name)] = sets_path
            nbf = self.work / f"nbf_{name}.pkl"
            nbf.write_bytes(pickle.dumps(nbf_side.requests(sets, case[1])))
            self.pools[("nbf", name)] = nbf
            feast_grpc = self.work / f"feast_grpc_{name}.pkl"
            subprocess.run(
                [feast_py, str(ROOT / "bench/serving/feast_side.py"), "requests",
                 str(sets_path), str(case[1]), str(feast_grpc)],
                check=True, timeout=300,
            )  # fmt: skip
            self.pools[("feast_grpc", name)] = feast_grpc
            refs = [f"{FAMILY}:{f}" for f in FEATURES[: case[1]]]
            bodies = [
                json.dumps({"features": refs, "entities": {ENTITY_KEY: ids},
                            "full_feature_names": False}).encode()
                for ids in sets
            ]  # fmt: skip
            feast_http = self.work / f"feast_http_{name}.pkl"
            feast_http.write_bytes(pickle.dumps(bodies))
            self.pools[("feast_http", name)] = feast_http

    def echo_pool(self, case: tuple[int, int]) -> Path:
        """nbfeatures' requests prefixed with the length of nbfeatures' answer for the case."""
        name = case_name(case)
        size = self.response_bytes[name]
        nbf = pickle.loads(self.pools[("nbf", name)].read_bytes())
        path = self.work / f"echo_{name}.pkl"
        path.write_bytes(pickle.dumps([size.to_bytes(4, "big") + raw for raw in nbf]))
        return path

    # -- Redis ---------------------------------------------------------------------------------

    def flush(self) -> redis.Redis:
        client = redis.Redis(port=self.redis_port)
        client.flushall()
        return client

    # -- measuring one server ------------------------------------------------------------------

    def measure(self, system: str, rnd: int, kind: str, target: str, path: str,
                pool_of: Any, protocol: str,
                cases: list[tuple[int, int]] | None = None) -> None:  # fmt: skip
        for case in self.cases if cases is None else cases:
            name = case_name(case)
            pool = pool_of(case)
            record = {"system": system, "protocol": protocol, "round": rnd, "case": name,
                      "entities": case[0], "features": case[1]}  # fmt: skip
            try:
                self._measure_case(record, case, kind, target, path, pool)
            except (LoadFailed, h2.H2loadFailed) as exc:
                record["error"] = str(exc)[-600:]
                self.runs.append(record)
                print(f"  {system:22s} {name:8s} FAILED: {str(exc)[-300:]}", flush=True)
                continue
            self.runs.append(record)
            lat = record["latency"]
            line = (f"  {system:22s} {name:8s} p50 {lat['p50_ms']:.3f} p99 {lat['p99_ms']:.3f} ms"
                    f" (n {lat['n']})")  # fmt: skip
            if "throughput" in record:
                thr = record["throughput"]
                line += f"  {thr['requests_per_s']:.0f} req/s @{thr['connections']}c"
                line += "".join(f" [{t['connections']}c {t['requests_per_s']:.0f}]"
                                for t in record["throughput_by_connections"])  # fmt: skip
            if "throughput_python" in record:
                line += f"  python {record['throughput_python']['requests_per_s']:.0f} req/s"
            if "latency_python" in record:
                line += f"  python p50 {record['latency_python']['p50_ms']:.3f}"
                line += f" p99 {record['latency_python']['p99_ms']:.3f}"
            print(line, flush=True)

    def h2_target(self, kind: str, target: str, path: str, body: bytes,
                  case: str) -> h2.Target:  # fmt: skip
        """The case's first request, checked through a Python client, as h2load's body."""
        body_path = self.work / f"body_{abs(hash((target, path, case)))}.bin"
        if kind == "grpc":
            size = h2.verify_grpc(target, path, body)
            body_path.write_bytes(h2.grpc_frame(body))
            return h2.Target(f"http://{target}{path}", body_path, 5 + size)
        size = h2.verify_http(f"http://{target}{path}", body)
        body_path.write_bytes(body)
        return h2.Target(f"http://{target}{path}", body_path, size, http1=True)

    def _measure_case(self, record: dict[str, Any], case: tuple[int, int], kind: str,
                      target: str, path: str, pool: Path) -> None:  # fmt: skip
        o = self.opts
        first: bytes = pickle.loads(pool.read_bytes())[0]
        h2t = self.h2_target(kind, target, path, first, record["case"])
        record["answer_bytes"] = h2t.answer_bytes
        if record["system"] in ("nbfeatures", "nbfeatures_native"):
            self.response_bytes[record["case"]] = h2t.answer_bytes - 5
        h2.warm(h2t, o.h2_warmup, streams=1)
        record["latency"] = h2.latency(h2t, o.h2_latency_seconds)
        record["load_before"] = load_average()
        if case in self.python_cases:
            record["latency_python"] = run_load(
                ["latency", kind, target, path, str(pool), "--requests", str(o.requests),
                 "--max-seconds", str(o.max_seconds), "--warmup", str(o.warmup)]
            )  # fmt: skip
        if case in self.throughput_cases:
            # The same requests in flight for every system; gRPC on 1 and on 4 connections
            # (the best counts), HTTP/1.1 one connection per request in flight.
            shapes = [(1, o.concurrency), (4, o.concurrency // 4)] if kind == "grpc" else [
                (o.concurrency, 1)]  # fmt: skip
            runs = []
            for conns, streams in shapes:
                h2.warm(h2t, o.h2_warmup, conns, streams)
                runs.append(h2.throughput(h2t, conns, streams, o.duration))
            best = max(runs, key=lambda r: r["requests_per_s"])
            record["throughput_by_connections"] = runs
            record["throughput"] = {**best, "entity_rows_per_s": best["requests_per_s"] * case[0]}
            if case in self.python_cases:
                thr = run_load(["throughput", kind, target, path, str(pool),
                                "--duration", str(o.duration), "--concurrency", str(o.concurrency),
                                "--channels", str(o.channels),
                                "--warmup-seconds", "1"])  # fmt: skip
                thr["entity_rows_per_s"] = thr["requests_per_s"] * case[0]
                if kind == "grpc":
                    thr["channels"] = o.channels
                record["throughput_python"] = thr

    def serial_pairs(self, rnd: int, nbf_target: str, ours: str = "serial_nbfeatures") -> None:
        """Serial latency of nbfeatures and the aio echo server in alternating runs, 1e_10f.

        Both servers are up at once (the idle one costs nothing), so the runs can alternate
        closely: the machine's noise lands on both alike.
        """
        case = (1, 10)
        name = case_name(case)
        if case not in self.cases or name not in self.response_bytes:
            return
        nbf_body = pickle.loads(self.pools[("nbf", name)].read_bytes())[0]
        echo_body = pickle.loads(self.echo_pool(case).read_bytes())[0]
        port = free_port()
        echo_target = f"127.0.0.1:{port}"
        with started([PY, "-m", "bench.serving.echo", str(port), "--aio"],
                     self.work / "echo.log", cwd=ROOT) as proc:  # fmt: skip
            wait_grpc(echo_target, proc)
            targets = {
                ours: self.h2_target("grpc", nbf_target, nbf_side.METHOD, nbf_body, name),
                "serial_grpc_echo_aio": self.h2_target("grpc", echo_target, ECHO_METHOD,
                                                       echo_body, name),
            }  # fmt: skip
            for t in targets.values():
                h2.warm(t, self.opts.h2_warmup, streams=1)
            for pair in range(self.opts.serial_pairs):
                for system, t in targets.items():
                    lat = h2.latency(t, self.opts.serial_seconds)
                    self.runs.append({"system": system, "protocol": "grpc", "round": rnd,
                                      "pair": pair, "case": f"serial_{name}",
                                      "entities": 1, "features": 10, "latency": lat,
                                      "load_before": load_average()})  # fmt: skip
                    print(f"  {system:22s} pair {pair} p50 {lat['p50_ms']:.3f} "
                          f"p99 {lat['p99_ms']:.3f} ms (n {lat['n']})", flush=True)  # fmt: skip

    def feature_client_latency(self, rnd: int, target: str) -> None:
        for case in [c for c in self.cases if c in KEY_CASES]:
            name = case_name(case)
            refs = nbf_side.refs(case[1])
            lat = run_load(["latency", "grpc", target, "-", str(self.pools[("sets", name)]),
                            "--feature-client", "--requests", str(self.opts.requests),
                            "--max-seconds", str(self.opts.max_seconds),
                            "--warmup", str(self.opts.warmup), "--features", *refs])  # fmt: skip
            self.runs.append({"system": "nbfeatures_feature_client", "protocol": "grpc",
                              "round": rnd, "case": name, "entities": case[0],
                              "features": case[1], "latency": lat})  # fmt: skip
            print(f"  {'nbfeatures FeatureClient':22s} {name:8s} p50 {lat['p50_ms']:.3f} "
                  f"p99 {lat['p99_ms']:.3f} ms", flush=True)  # fmt: skip

    # -- systems -------------------------------------------------------------------------------

    def nbfeatures(self, rnd: int) -> None:
        self.flush()
        t0 = time.monotonic()
        rows = nbf_side.load(self.redis_url)
        print(f"  nbfeatures loaded {rows} rows in {time.monotonic() - t0:.1f}s", flush=True)
        if "python" in self.opts.planes:
            self.nbfeatures_server(rnd, 1)
            if self.opts.processes > 1:
                self.nbfeatures_server(rnd, self.opts.processes)
        if "native" in self.opts.planes:
            self.nbfeatures_server(rnd, 1, native=True)
        self.redis_benchmark(rnd)

    def nbfeatures_server(self, rnd: int, processes: int, native: bool = False) -> None:
        """``nbfeatures serve`` with 1 process (every case) or N (the throughput cases).

        ``native``: the native data plane (one process, every case, its own serial pairs).
        """
        port = free_port()
        config = self.work / "serving.yaml"
        config.write_text("host: 127.0.0.1\nmetrics_port: null\nlog_sample_rate: 0\n"
                          f"processes: {processes}\n"
                          f"data_plane: {'native' if native else 'python'}\n")  # fmt: skip
        env = {**os.environ, "NBF_REDIS_URL": self.redis_url}
        command = [str(ROOT / ".venv/bin/nbfeatures"), "serve", "--config", str(config),
                   "--port", str(port)]  # fmt: skip
        target = f"127.0.0.1:{port}"
        system = "nbfeatures" if processes == 1 else f"nbfeatures_{processes}p"
        if native:
            system = "nbfeatures_native"
        with started(command, self.work / "nbfeatures.log", env=env, cwd=self.work) as proc:
            wait_grpc(target, proc)
            first = self.sets[case_name(self.cases[-1])][0]
            nbf_side.check(target, first, 10, self.expected_f0)
            self.measure(system, rnd, "grpc", target, nbf_side.METHOD,
                         lambda c: self.pools[("nbf", case_name(c))], "grpc",
                         None if processes == 1 else self.throughput_cases)  # fmt: skip
            if native:
                self.serial_pairs(rnd, target, "serial_nbfeatures_native")
            elif processes == 1:
                self.feature_client_latency(rnd, target)
                self.serial_pairs(rnd, target)

    def redis_benchmark(self, rnd: int) -> None:
        """MGET of the same keys nbfeatures reads, 1 in flight and at the same concurrency."""
        for n in sorted({c[0] for c in self.cases}):
            name = case_name(next(c for c in self.cases if c[0] == n))
            keys = nbf_side.value_keys(self.redis_url, self.sets[name][0])
            record: dict[str, Any] = {"system": "redis_benchmark_mget", "protocol": "resp",
                                      "round": rnd, "case": f"{n}e", "entities": n}  # fmt: skip
            for label, clients, count in (
                ("latency", 1, 20_000),
                ("throughput", self.opts.concurrency, 100_000),
            ):
                out = subprocess.run(
                    ["redis-benchmark", "-h", "127.0.0.1", "-p", str(self.redis_port),
                     "-n", str(count), "-c", str(clients), "-P", "1", "--csv", "MGET", *keys],
                    capture_output=True, text=True, timeout=120, check=True,
                )  # fmt: skip
                line = out.stdout.strip().splitlines()[-1]
                cells = [c.strip('"') for c in line.split(",")]
                record[label] = {"requests_per_s": float(cells[1]), "p50_ms": float(cells[4]),
                                 "p99_ms": float(cells[6]), "clients": clients}  # fmt: skip
                if label == "throughput":
                    record[label]["entity_rows_per_s"] = float(cells[1]) * n
            self.runs.append(record)
            print(f"  redis-benchmark MGET {n:3d} keys: 1 client p50 "
                  f"{record['latency']['p50_ms']} p99 {record['latency']['p99_ms']} ms, "
                  f"{record['throughput']['requests_per_s']:.0f} req/s at "
                  f"{self.opts.concurrency} clients", flush=True)  # fmt: skip

    def echo(self, rnd: int) -> None:
        """Both echo flavours: thread pool (as nbfeatures was) and grpc.aio (as it is)."""
        pools = {case_name(c): self.echo_pool(c) for c in self.cases}
        for system, flags in (("grpc_echo", []), ("grpc_echo_aio", ["--aio"])):
            port = free_port()
            target = f"127.0.0.1:{port}"
            with started([PY, "-m", "bench.serving.echo", str(port), *flags],
                         self.work / "echo.log", cwd=ROOT) as proc:  # fmt: skip
                wait_grpc(target, proc)
                self.measure(system, rnd, "grpc", target, ECHO_METHOD,
                             lambda c: pools[case_name(c)], "grpc",
                             self.throughput_cases)  # fmt: skip

    def feast(self, rnd: int, repo: Path) -> None:
        self.flush()
        t0 = time.monotonic()
        subprocess.run([str(FEAST_BIN / "python"), str(ROOT / "bench/serving/feast_side.py"),
                        "load", str(repo), str(PARQUET)], check=True, timeout=600)  # fmt: skip
        print(f"  feast loaded in {time.monotonic() - t0:.1f}s", flush=True)
        env = {**os.environ, "PATH": f"{FEAST_BIN}:{os.environ['PATH']}"}
        feast = str(FEAST_BIN / "feast")
        port = free_port()
        target = f"127.0.0.1:{port}"
        with started([feast, "-c", str(repo), "listen", "-a", target],
                     self.work / "feast_listen.log", env=env, cwd=repo) as proc:  # fmt: skip
            wait_grpc(target, proc)
            subprocess.run(
                [str(FEAST_BIN / "python"), str(ROOT / "bench/serving/feast_side.py"),
                 "check-grpc", target, str(self.pools[("sets", case_name(self.cases[-1]))]),
                 "10", str(PARQUET)], check=True, timeout=120,
            )  # fmt: skip
            self.measure("feast_listen", rnd, "grpc", target, FEAST_GRPC_METHOD,
                         lambda c: self.pools[("feast_grpc", case_name(c))], "grpc")  # fmt: skip
        self.feast_serve(rnd, repo, env, 1)
        if self.opts.processes > 1:
            self.feast_serve(rnd, repo, env, self.opts.processes)

    def feast_serve(self, rnd: int, repo: Path, env: dict[str, str], workers: int) -> None:
        """``feast serve`` with 1 worker (every case) or N (the throughput cases)."""
        feast = str(FEAST_BIN / "feast")
        port = free_port()
        target = f"127.0.0.1:{port}"
        command = [feast, "-c", str(repo), "serve", "-h", "127.0.0.1", "-p", str(port),
                   "--no-access-log", "--max-requests", "0",
                   "--workers", str(workers)]  # fmt: skip
        system = "feast_serve" if workers == 1 else f"feast_serve_{workers}w"
        with started(command, self.work / "feast_serve.log", env=env, cwd=repo) as proc:
            ids = self.sets[case_name(self.cases[-1])][0]
            body = json.dumps(
                {"features": [f"{FAMILY}:f0"], "entities": {ENTITY_KEY: ids}}
            ).encode()
            answer = wait_http(f"http://{target}/get-online-features", body, proc)
            names = answer["metadata"]["feature_names"]
            got = answer["results"][names.index("f0")]["values"]
            if got != [self.expected_f0[i] for i in ids]:
                raise RuntimeError(f"feast serve answered wrong values: {got[:3]}")
            self.measure(system, rnd, "http", target, "/get-online-features",
                         lambda c: self.pools[("feast_http", case_name(c))], "http",
                         None if workers == 1 else self.throughput_cases)  # fmt: skip

    def feast_repo(self) -> Path:
        repo = self.work / "feast_repo"
        subprocess.run([str(FEAST_BIN / "python"), str(ROOT / "bench/serving/feast_side.py"),
                        "repo", str(repo), str(PARQUET), str(self.redis_port)],
                       check=True, timeout=120)  # fmt: skip
        subprocess.run([str(FEAST_BIN / "feast"), "apply"], cwd=repo, check=True, timeout=300,
                       capture_output=True)  # fmt: skip
        return repo


def save(opts: argparse.Namespace, bench: Bench, started_at: str, load_start: list[float]) -> None:
    """Write everything measured so far (after every system, so a crash loses one system)."""
    import grpc

    result = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "started": started_at,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "grpcio": grpc.__version__,
            "redis_server": subprocess.run(
                ["redis-server", "--version"], capture_output=True, text=True
            ).stdout.split()[2],
        },
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "feast_version": "0.67.0",
        "settings": {k: v for k, v in vars(opts).items() if k != "out"},
        "response_bytes_nbfeatures": bench.response_bytes,
        "summary": summarize(bench.runs),
        "runs": bench.runs,
    }
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(result, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=[case_name(c) for c in ALL_CASES])
    parser.add_argument("--throughput-cases", nargs="*",
                        default=[case_name(c) for c in KEY_CASES])  # fmt: skip
    # The Python client (load.py), kept as a second column, runs on these cases only.
    parser.add_argument("--python-cases", nargs="*",
                        default=[case_name(c) for c in KEY_CASES])  # fmt: skip
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=int, default=200)
    # h2load: a warm-up run before each measurement, serial latency for this long per case,
    # and throughput for --duration seconds with --concurrency requests in flight.
    parser.add_argument("--h2-warmup", type=float, default=1.0)
    parser.add_argument("--h2-latency-seconds", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=32)
    # Serial latency of nbfeatures and the echo server, 1e_10f, alternating: pairs per round.
    parser.add_argument("--serial-pairs", type=int, default=4)
    parser.add_argument("--serial-seconds", type=float, default=4.0)
    # nbfeatures is also measured with this many server processes, Feast serve with this many
    # gunicorn workers (throughput cases only); 1 turns that off.
    parser.add_argument("--processes", type=int, default=2)
    # gRPC channels (TCP connections) the throughput load is spread over, for every system.
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--systems", nargs="*", default=["nbfeatures", "echo", "feast"])
    # nbfeatures' data planes measured: the Python server (1 and --processes processes) and
    # the native front (`make native` builds it).
    parser.add_argument("--planes", nargs="*", default=["python", "native"])
    parser.add_argument("--out", default=str(RESULTS))
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nbf-bench-serving-"))
    bench = Bench(opts, work)
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load_start = load_average()
    redis_proc = subprocess.Popen(
        ["redis-server", "--port", str(bench.redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(work)], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=bench.redis_port)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                break
            time.sleep(0.1)  # polling for readiness: redis-server is still binding
        bench.build_pools()
        repo = bench.feast_repo() if "feast" in opts.systems else None
        for rnd in range(opts.rounds):
            print(f"round {rnd + 1}/{opts.rounds}, load {load_average()}", flush=True)
            if "nbfeatures" in opts.systems:
                bench.nbfeatures(rnd)
                save(opts, bench, started_at, load_start)
            if "echo" in opts.systems and bench.response_bytes:
                bench.echo(rnd)
                save(opts, bench, started_at, load_start)
            if repo is not None:
                bench.feast(rnd, repo)
                save(opts, bench, started_at, load_start)
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=30)
    save(opts, bench, started_at, load_start)
    out = Path(opts.out).resolve()
    print(f"results in {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
