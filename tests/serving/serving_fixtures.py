"""Real Redis and real feature servers for the serving tests.

- ``redis_server``: a redis-server of the serving tests' own for the whole session
  (``servers.RedisServer``; tests that stop, pause or flush one start their own).
- ``store``: an ``OnlineStore`` with its own key prefix on it, keys deleted afterwards.
- ``put_family``: writes a family version's layout and rows (``write_rows``, no Spark) and can
  make it live.
- ``running_server``: starts ``create_server`` on port 0 and stops it at the end.
- ``data_plane``: runs a test once per data plane (the Python server, the native front);
  ``running_server`` and ``plane_env`` follow it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from servers import RedisServer

from nbfeatures.online import FamilyLayout, OnlineStore
from nbfeatures.online.connect import client_from_url
from nbfeatures.serving.config import ServerConfig
from nbfeatures.serving.factory import create_server
from nbfeatures.serving.native import NativeServer
from nbfeatures.serving.server import ServingServer

NOW = dt.datetime.now(dt.UTC)
# The data plane ``running_server`` starts unless told otherwise (set by ``data_plane``).
_PLANE = {"name": "python"}


@pytest.fixture(params=["python", "native"])
def data_plane(request: pytest.FixtureRequest) -> Iterator[str]:
    _PLANE["name"] = request.param
    yield request.param
    _PLANE["name"] = "python"


def plane_env() -> dict[str, str]:
    """The environment that gives ``nbfeatures serve`` this test's data plane."""
    return {"NBF_SERVE_DATA_PLANE": _PLANE["name"]}


def open_store(url: str, prefix: str | None = None) -> OnlineStore:
    client = client_from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    return OnlineStore(client, prefix or f"nbfsrv-{uuid.uuid4().hex[:10]}:", url=url)


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[OnlineStore]:
    online = open_store(redis_server.url)
    yield online
    for key in online.client.scan_iter(match=f"{online.prefix}*", count=1000):
        online.client.delete(key)
    online.close()


def layout(
    family: str, version: int, ttl: int | None = None, entity_key: str = "user_id"
) -> FamilyLayout:
    return FamilyLayout(
        family=family,
        version=version,
        hash=f"h{version}",
        entity_key=entity_key,
        timestamp="ts",
        features=(("clicks", "int64"), ("score", "float64"), ("tier", "string"),
                  ("active", "bool"), ("seen", "timestamp")),
        ttl_seconds=ttl,
    )  # fmt: skip


def put_family(
    store: OnlineStore,
    family_layout: FamilyLayout,
    rows: list[dict[str, Any]],
    *,
    live: bool = True,
) -> None:
    """Write rows (event times may be past ttl + retention: they are written without expiry)."""
    columns = {
        "user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
        "ts": pa.array([r.get("ts", NOW) for r in rows], pa.timestamp("us", tz="UTC")),
        "clicks": pa.array([r.get("clicks") for r in rows], pa.int64()),
        "score": pa.array([r.get("score") for r in rows], pa.float64()),
        "tier": pa.array([r.get("tier") for r in rows], pa.string()),
        "active": pa.array([r.get("active") for r in rows], pa.bool_()),
        "seen": pa.array([r.get("seen") for r in rows], pa.timestamp("us", tz="UTC")),
    }
    batch = pa.RecordBatch.from_pydict(columns)
    # Rows past ttl + retention are skipped by write_rows; write them under a ttl-less copy
    # so the server has old values to judge, then record the real layout.
    store.write_rows(replace(family_layout, ttl_seconds=None), batch)
    store.write_layout(family_layout)
    if live:
        store.flip(
            family_layout.family, family_layout.version, store.live_version(family_layout.family)
        )


@contextmanager
def running_server(store: OnlineStore, **settings: Any) -> Iterator[ServingServer | NativeServer]:
    settings.setdefault("data_plane", _PLANE["name"])
    settings.setdefault("live_cache_seconds", 0.2)
    config = ServerConfig(port=0, metrics_port=0, health_interval_seconds=0.1, **settings)
    server, port = create_server(config, store)
    assert port > 0
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for ``localhost`` and its key, written as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
