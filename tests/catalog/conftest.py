"""Catalog backends for the whole test run: embedded SQLite and a real MLflow server.

Both are started once per test run; tests isolate themselves by using unique family names.
The server runs on PostgreSQL (a database made for this run and dropped after) with
artifacts served by the server itself, as in production.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import free_port, wait_for_http

# MLflow 3 reports usage to its vendor unless told not to; tests reach no outside network.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from nbfeatures.catalog import Catalog
from nbfeatures.definitions import (
    Entity,
    Feature,
    FeatureFamily,
    FeatureType,
    Source,
    Transformation,
    TransformationKind,
)

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
SERVER_START_TIMEOUT = 120.0


@dataclass(frozen=True)
class Backend:
    """How to reach one catalog backend: what tests (and child processes) need to connect."""

    kind: str
    tracking_uri: str
    artifact_location: str | None

    def catalog(self, **options: object) -> Catalog:
        return Catalog(self.tracking_uri, self.artifact_location, **options)  # type: ignore[arg-type]


def _ensure_postgres() -> None:
    import psycopg2  # type: ignore[import-untyped]

    try:
        psycopg2.connect(PG_DSN, connect_timeout=3).close()
        return
    except psycopg2.OperationalError:
        pass
    if shutil.which("pg_ctlcluster") is None:
        pytest.skip("PostgreSQL is not running and pg_ctlcluster is not installed")
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
        check=True,
        capture_output=True,
    )
    psycopg2.connect(PG_DSN, connect_timeout=10).close()


def _admin(statement: str) -> None:
    import psycopg2

    connection = psycopg2.connect(PG_DSN, connect_timeout=10)
    connection.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


@pytest.fixture(scope="session")
def sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> Backend:
    root = tmp_path_factory.mktemp("catalog-sqlite")
    backend = Backend("sqlite", f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri())
    backend.catalog().list()  # create the schema once, before any concurrent test
    return backend


@pytest.fixture(scope="session")
def server_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    _ensure_postgres()
    database = f"nbf_catalog_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {database}")
    root = tmp_path_factory.mktemp("catalog-server")
    port = free_port()
    log = root / "server.log"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}",
        "--artifacts-destination", str(root / "artifacts"),
        "--serve-artifacts",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=root,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/health", process, log, SERVER_START_TIMEOUT)
        yield Backend("server", url, None)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("server", marks=pytest.mark.integration)],
)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Every catalog test runs against both backends."""
    name = "sqlite_backend" if request.param == "sqlite" else "server_backend"
    result: Backend = request.getfixturevalue(name)
    return result


@pytest.fixture(scope="session")
def catalog(backend: Backend) -> Catalog:
    return backend.catalog()


def unique_name(stem: str = "fam") -> str:
    return f"{stem}_{uuid.uuid4().hex[:10]}"


def make_family(
    name: str,
    *,
    features: dict[str, str] | None = None,
    sql: str = "SELECT user_id, ts, count(*) AS clicks FROM events GROUP BY user_id, ts",
    owner: str = "ana",
    description: str = "",
    tags: tuple[str, ...] = (),
    sources: tuple[Source, ...] = (),
    entity: Entity | None = None,
    python: str | None = None,
) -> FeatureFamily:
    """A family built directly (no Spark needed)."""
    columns = features or {"clicks": "int64"}
    transformation = (
        Transformation(TransformationKind.PYTHON, python)
        if python is not None
        else Transformation(TransformationKind.SQL, sql)
    )
    return FeatureFamily(
        name=name,
        entity=entity or Entity("user", "user_id"),
        timestamp="ts",
        features=tuple(Feature(n, FeatureType(t)) for n, t in columns.items()),
        transformation=transformation,
        sources=sources or (Source.infer("events", "data/events.parquet", "ts"),),
        owner=owner,
        description=description,
        tags=tags,
    )


@pytest.fixture
def new_name() -> Callable[[], str]:
    """A family name no other test uses, so tests share one catalog without interfering."""
    return unique_name


@pytest.fixture
def family() -> Callable[..., FeatureFamily]:
    """``family(name, features=..., sql=..., owner=...)`` builds a FeatureFamily."""
    return make_family
