"""Both data planes serve the golden stored bytes (``tests/golden/stored_version``) as the
rows they were encoded from.

The recorded keys, hash fields and values are written raw into Redis with the version's
records and a live pointer, nothing encoded here; then the Python server and the native front
each answer a read of every row, a gone row and a missing entity over gRPC.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from golden.golden_cases import asked, case_names, layout_of, load, served_value
from servers import RedisServer
from serving_fixtures import open_store, running_server

from nbfeatures.online import OnlineStore
from nbfeatures.serving import convert

pytestmark = pytest.mark.integration


@pytest.fixture
def golden(redis_server: RedisServer) -> Iterator[OnlineStore]:
    """Every golden case in Redis under the cases' own prefix, live; removed afterwards."""
    cases = [load(name) for name in case_names()]
    prefix = cases[0]["prefix"]
    assert all(case["prefix"] == prefix for case in cases)
    store = open_store(redis_server.url, prefix)
    client = store.client
    assert not list(client.scan_iter(match=f"{prefix}*"))
    for case in cases:
        for key, value in case["records"].items():
            client.set(key, value)
        for entry in case["stored"] + case["lingering"]:
            if "value" in entry:
                client.set(entry["key"], bytes.fromhex(entry["value"]))
            for field, value in entry.get("fields", {}).items():
                client.hset(entry["key"], bytes.fromhex(field), bytes.fromhex(value))
        layout = case["layout"]
        client.set(store.keys.live(layout["family"]), layout["version"])
    yield store
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    store.close()


def _expected(case: dict[str, Any]) -> dict[str, Any]:
    layout = layout_of(case["layout"])
    rows = case["rows"] + case["gone"]
    statuses = case["statuses"]
    served = [s in ("PRESENT", "STALE") for s in statuses]
    values = {
        name: [
            served_value(kind, row["values"][name]) if ok else None
            for row, ok in zip([*rows, None], served, strict=True)
        ]
        for name, kind in layout.features
    }
    times = [
        served_value("timestamp", row["event_us"]) if ok else None
        for row, ok in zip([*rows, None], served, strict=True)
    ]
    return {"version": layout.version, "statuses": statuses, "times": times, "values": values}


@pytest.mark.parametrize("plane", ["python", "native"])
def test_each_data_plane_serves_the_golden_bytes_as_their_rows(
    golden: OnlineStore, plane: str
) -> None:
    with running_server(golden, data_plane=plane) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        stub = convert.feature_stub(channel)
        for name in case_names():
            case = load(name)
            entities = [int(e) for e in asked(case)]
            request = convert.build_request(
                {"user_id": entities}, [f"{case['layout']['family']}:*"]
            )
            (family,) = convert.response_to_families(stub.GetOnlineFeatures(request, timeout=10))
            got = {
                "version": family.version,
                "statuses": family.statuses,
                "times": family.event_times,
                "values": family.values,
            }
            assert got == _expected(case), (plane, name)
        channel.close()
        if plane == "native":  # answered by the front's own decoder, none passed to Python
            calls = server.metrics.registry.get_sample_value(
                "nbf_serving_backend_calls_total", {"method": "GetOnlineFeatures"}
            )
            assert not calls
