"""Registrations from several real processes at once never duplicate numbers or content."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from typing import Any

import pytest

from nbfeatures.catalog import Catalog
from nbfeatures.definitions import FeatureFamily

from .conftest import Backend

WORKERS = 4
Make = Callable[..., FeatureFamily]


def _register(
    backend: Backend, family: FeatureFamily, start: Any, results: Any, index: int
) -> None:
    """Child process: wait for the others, then register (a spawn target must be importable)."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    try:
        catalog = backend.catalog()
        catalog.list()  # import MLflow and connect before the start line, so the calls overlap
        start.wait(timeout=120)
        registration = catalog.register(family)
        results.put(
            (index, registration.version.version, registration.version.hash, registration.created)
        )
    except BaseException as exc:  # report to the parent instead of dying silently
        results.put((index, None, repr(exc), False))


def _run_all(backend: Backend, families: list[FeatureFamily]) -> list[tuple[int, int, str, bool]]:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(families))
    results = context.Queue()
    processes = [
        context.Process(target=_register, args=(backend, fam, start, results, i))
        for i, fam in enumerate(families)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    failures = [o for o in outcomes if o[1] is None]
    assert failures == [], failures
    return sorted(outcomes)


def test_concurrent_registrations(
    backend: Backend, catalog: Catalog, new_name: Callable[[], str], family: Make
) -> None:
    same_name, varied_name = new_name(), new_name()
    same = [family(same_name) for _ in range(WORKERS)]
    varied = [
        family(varied_name, features={f"feature_{i}": "int64"}, sql=f"SELECT {i} AS feature_{i}")
        for i in range(WORKERS)
    ]
    outcomes = _run_all(backend, same + varied)

    same_outcomes, varied_outcomes = outcomes[:WORKERS], outcomes[WORKERS:]
    # The same content: one process creates v1, all others get v1 back.
    assert {o[1] for o in same_outcomes} == {1}
    assert sum(o[3] for o in same_outcomes) == 1
    assert [v.version for v in catalog.history(same_name)] == [1]
    # No duplicate was created and deleted behind the scenes: that would burn number 2.
    follow_up = catalog.register(family(same_name, features={"later": "int64"}))
    assert follow_up.version.version == 2
    # Different content: versions 1..N without gaps, every hash once.
    history = catalog.history(varied_name)
    assert [v.version for v in history] == list(range(1, WORKERS + 1))
    assert len({v.hash for v in history}) == WORKERS
    assert sorted(o[1] for o in varied_outcomes) == list(range(1, WORKERS + 1))
    assert all(o[3] for o in varied_outcomes)
    assert {v.hash for v in history} == {f.version_hash for f in varied}


@pytest.mark.usefixtures("catalog")
def test_stale_lock_is_broken(backend: Backend, new_name: Callable[[], str], family: Make) -> None:
    name = new_name()
    crashed = backend.catalog(lock_stale_after=1.0, lock_timeout=30.0)
    client = crashed._connection.client
    # A registration that died while holding the lock leaves it behind.
    client.create_registered_model(
        crashed._lock.lock_name(name), tags={"nbfeatures.lock.holder": "gone:1:dead"}
    )
    registration = crashed.register(family(name))
    assert registration.version.version == 1
    assert client.search_registered_models(f"name = '{crashed._lock.lock_name(name)}'") == []


def test_lock_timeout_raises_registration_conflict(
    backend: Backend, new_name: Callable[[], str], family: Make
) -> None:
    from nbfeatures.errors import RegistrationConflict

    name = new_name()
    impatient = backend.catalog(lock_stale_after=600.0, lock_timeout=0.5)
    client = impatient._connection.client
    client.create_registered_model(
        impatient._lock.lock_name(name), tags={"nbfeatures.lock.holder": "busy:1:alive"}
    )
    with pytest.raises(RegistrationConflict) as raised:
        impatient.register(family(name))
    assert raised.value.name == name
    assert impatient.latest(name) is None
