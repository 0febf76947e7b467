"""The stored form's bytes against the golden cases (``tests/golden/stored_version``).

Encoding a case's rows gives exactly the recorded keys, hash fields, values and expiries, and
its read exactly the recorded command bytes; decoding the recorded bytes gives the rows back.
No Redis: the write commands are parsed with hiredis, the read replies built from the files.
"""

from __future__ import annotations

from typing import Any

import hiredis
import pytest
from golden.golden_cases import asked, batch_of, case_names, load, stored_of

CASES = case_names()


def test_the_golden_folder_has_every_case() -> None:
    assert CASES == ["keyed_all_types", "packed_stale_retention", "packed_two_chunks"]


def _written(wire: bytes) -> dict[str, dict[str, Any]]:
    """What write commands store, per key: its value or hash fields (hex) and its expiry."""
    reader = hiredis.Reader()
    reader.feed(wire)
    found: dict[str, dict[str, Any]] = {}
    while (command := reader.gets()) is not False:
        name = command[0]
        if name == b"SET":
            expiry = int(command[4]) if len(command) > 3 else None
            found[command[1].decode()] = {"value": command[2].hex(), "expire_ms": expiry}
        elif name == b"EVALSHA":  # the packed write script: key, expiry, field/value pairs
            entry = found.setdefault(command[3].decode(), {"fields": {}, "expire_ms": None})
            pairs = zip(command[5::2], command[6::2], strict=True)
            entry["fields"].update({f.hex(): v.hex() for f, v in pairs})
            if command[4]:
                entry["expire_ms"] = max(entry["expire_ms"] or 0, int(command[4]))
        else:
            assert command[:2] == [b"SCRIPT", b"LOAD"], command
    return found


@pytest.mark.parametrize("name", CASES)
def test_encoding_the_rows_gives_the_golden_bytes(name: str) -> None:
    case = load(name)
    stored = stored_of(case)
    built = stored.write_batch(batch_of(stored.layout, case["rows"] + case["gone"]))
    assert built is not None
    wire = b"".join(bytes(part) for part in built.parts)
    expected = {entry.pop("key"): entry for entry in case["stored"]}
    assert _written(wire) == expected
    assert built.rows == len(case["rows"])  # gone rows (past ttl + retention) are not written


@pytest.mark.parametrize("name", CASES)
def test_the_read_is_the_golden_command_bytes(name: str) -> None:
    case = load(name)
    wire, replies = stored_of(case).read_wire([e.encode() for e in asked(case)])
    assert wire.hex() == case["read_wire"]
    assert replies == (0 if case["packing"] is None else len(asked(case)) + 1)


def _replies(case: dict[str, Any]) -> list[Any]:
    """What Redis answers ``read_wire`` with, holding the golden keys (and lingering fields)."""
    stored = stored_of(case)
    values: dict[bytes, bytes] = {}
    for entry in case["stored"] + case["lingering"]:
        key = entry["key"].encode()
        if "value" in entry:
            values[key] = bytes.fromhex(entry["value"])
        for field, value in entry.get("fields", {}).items():
            values[key + b"/" + bytes.fromhex(field)] = bytes.fromhex(value)
    owner = case["records"][stored.owner_key.decode()].encode()
    entities = [e.encode() for e in asked(case)]
    if stored.packing is None:
        return [owner, *[values.get(stored.value_key(e)) for e in entities]]
    return [owner] + [
        [values.get(stored.value_key(e) + b"/" + f) for f in stored.entity_fields(e) or []]
        for e in entities
    ]


@pytest.mark.parametrize("name", CASES)
def test_decoding_the_golden_bytes_gives_the_rows(name: str) -> None:
    case = load(name)
    stored = stored_of(case)
    payloads = stored.payloads(_replies(case))
    assert payloads is not None
    got = stored.decode(payloads)
    rows = case["rows"] + case["gone"]
    assert got.present.tolist() == [True] * len(rows) + [False]
    assert got.event_us.tolist()[: len(rows)] == [r["event_us"] for r in rows]
    for name_, _ in stored.layout.features:
        nulls = got.nulls[name_]
        values = list(got.values[name_])
        served = [None if nulls is not None and nulls[i] else values[i] for i in range(len(rows))]
        assert served == [r["values"][name_] for r in rows], name_
        assert nulls is not None and bool(nulls[len(rows)])  # the missing entity


@pytest.mark.parametrize("name", CASES)
def test_values_under_another_versions_owner_record_are_not_read(name: str) -> None:
    case = load(name)
    replies = _replies(case)
    replies[0] = b"someone_else:v1"
    assert stored_of(case).payloads(replies) is None
