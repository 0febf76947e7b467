"""Prometheus metrics of one feature server, on a registry of its own and its own HTTP port.

nbf_serving_request_seconds{method}            latency of each call (histogram)
nbf_serving_family_read_seconds{family}        latency of one family's read (histogram)
nbf_serving_requests_total{method,code}        calls by gRPC status code
nbf_serving_in_flight                          calls being answered now
nbf_serving_values_total{family,status}        values served by status (PRESENT, STALE...)
nbf_serving_redis_errors_total                 Redis calls that failed
nbf_serving_staleness_seconds{family}          age of the newest value served, last request
nbf_serving_log_dropped_total                  served vectors dropped: the log queue was full
nbf_serving_log_written_total                  served vectors written to the Redis stream
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServingMetrics:
    """Every metric above; a registry per server so several servers can share a process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_seconds = Histogram(
            "nbf_serving_request_seconds", "Call latency", ["method"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.family_read_seconds = Histogram(
            "nbf_serving_family_read_seconds", "One family's read latency", ["family"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.requests = Counter(
            "nbf_serving_requests", "Calls by status code", ["method", "code"], registry=r
        )
        self.values = Counter(
            "nbf_serving_values", "Values served by status", ["family", "status"], registry=r
        )
        self.in_flight = Gauge("nbf_serving_in_flight", "Calls being answered now", registry=r)
        self.redis_errors = Counter("nbf_serving_redis_errors", "Failed Redis calls", registry=r)
        self.staleness = Gauge(
            "nbf_serving_staleness_seconds",
            "Age of the newest value served by the last request",
            ["family"],
            registry=r,
        )
        self.log_dropped = Counter(
            "nbf_serving_log_dropped", "Served vectors dropped (queue full)", registry=r
        )
        self.log_written = Counter(
            "nbf_serving_log_written", "Served vectors written to the stream", registry=r
        )
        self._http: Any = None

    def serve(self, host: str, port: int) -> int:
        """Expose ``/metrics`` over HTTP; return the bound port (``port`` 0 picks one)."""
        self._http, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(self._http.server_port)

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
