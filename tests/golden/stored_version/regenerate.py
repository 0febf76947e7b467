"""Write the golden stored-version cases: what the online store puts in Redis for known rows.

Run only when the stored format changes on purpose (and say so in the CHANGELOG)::

    PYTHONPATH=. python tests/golden/stored_version/regenerate.py

Each case's rows are written by ``OnlineStore.write_rows`` into a redis-server of its own, and
every key, hash field, value and expiry found there afterwards is recorded (bytes as hex), with
the version's records (key id, packing, layout, owner) and the bytes of one read of its
entities. The tests check the encoder, the decoder, the Python server and the native front
against these files, so they catch any change of the bytes, whichever side makes it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent)]  # tests/ (servers.py), tests/golden/

from golden_cases import batch_of, layout_of  # noqa: E402
from servers import RedisServer  # noqa: E402

from nbfeatures.online.codec import encode  # noqa: E402
from nbfeatures.online.layout import FamilyLayout  # noqa: E402
from nbfeatures.online.store import OnlineStore  # noqa: E402

PREFIX = "golden:"
# 2024-01-01T00:00:00Z and 2090-01-01T00:00:00Z, in microseconds.
Y2024 = 1_704_067_200_000_000
Y2090 = 3_786_912_000_000_000
ALL_TYPES = [
    ["i32", "int32"], ["i64", "int64"], ["f32", "float32"], ["f64", "float64"],
    ["text", "string"], ["flag", "bool"], ["seen", "timestamp"],
]  # fmt: skip
NUMBERS = [[f"x{i}", "float64"] for i in range(9)] + [["n", "int32"], ["on", "bool"]]

CASES: dict[str, dict[str, Any]] = {
    "keyed_all_types": {
        "about": "strings, so one key per entity; every feature type, nulls, unicode, "
        "empty text, extreme numbers; no ttl, so no expiry",
        "layout": {"family": "golden_keyed", "version": 1, "features": ALL_TYPES},
        "entities": None,
        "rows": [
            {"entity": 1, "event_us": Y2024, "values": {
                "i32": -2147483648, "i64": 9007199254740993, "f32": 1.5, "f64": -0.1,
                "text": "gold", "flag": True, "seen": Y2024 + 1}},
            {"entity": 22, "event_us": Y2024 + 5, "values": {
                "i32": None, "i64": None, "f32": None, "f64": None, "text": None,
                "flag": None, "seen": None}},
            {"entity": 333, "event_us": Y2024 + 7, "values": {
                "i32": 7, "i64": -1, "f32": -0.25, "f64": 1e300, "text": "ünïcode ✓",
                "flag": False, "seen": None}},
            {"entity": 4444, "event_us": Y2024 + 9, "values": {
                "i32": 0, "i64": 0, "f32": 0.0, "f64": 0.0, "text": "", "flag": None,
                "seen": 0}},
        ],
        "gone": [],
        "statuses": ["PRESENT"] * 4 + ["NOT_FOUND"],
    },
    "packed_two_chunks": {
        "about": "no strings, so packed: 8 buckets, 91-byte records in two chunks (63 + 28); "
        "no ttl",
        "layout": {"family": "golden_packed", "version": 1, "features": NUMBERS},
        "entities": 90,
        "rows": [
            {"entity": e, "event_us": Y2024 + e, "values": {
                **{f"x{i}": None if (e + i) % 4 == 0 else e * 10 + i / 8 for i in range(9)},
                "n": None if e == 5 else -e, "on": e % 2 == 0}}
            for e in (1, 2, 3, 5, 8, 13, 21, 34)
        ],
        "gone": [],
        "statuses": ["PRESENT"] * 8 + ["NOT_FOUND"],
    },
    "packed_stale_retention": {
        "about": "packed with a 1 h ttl and ten years' retention: a 2090 value reads PRESENT, "
        "a 2024 one STALE (until 2034), a 1971 one lingering in its bucket NOT_FOUND "
        "(past ttl + retention: never written by the encoder); each bucket expires at its "
        "newest member's event time + ttl + retention",
        "layout": {"family": "golden_stale", "version": 2, "ttl_seconds": 3600,
                   "retention_seconds": 315_360_000,
                   "features": [["score", "float64"], ["count", "int64"]]},
        "entities": 4,
        "rows": [
            {"entity": 10, "event_us": Y2090, "values": {"score": 0.5, "count": 3}},
            {"entity": 11, "event_us": Y2024, "values": {"score": None, "count": 4}},
        ],
        "gone": [
            {"entity": 12, "event_us": 31_536_000_000_000, "values": {"score": 2.0, "count": 5}},
        ],
        # Rows, then gone rows, then the missing entity (good until 2034).
        "statuses": ["PRESENT", "STALE", "NOT_FOUND", "NOT_FOUND"],
    },
}  # fmt: skip
# Asked for besides the rows: never written, NOT_FOUND.
MISSING = 999_999


def command(*parts: bytes) -> bytes:
    """A RESP command, written out here rather than taken from the package under test."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%b\r\n" % (len(p), p) for p in parts)


def dump(client: Any, store: OnlineStore, layout: FamilyLayout) -> list[dict[str, Any]]:
    """Every value key of the version: its fields (hex), values (hex) and expiry."""
    key_id = store.key_id(layout.family, layout.version) or ""
    found = []
    for key in sorted(client.scan_iter(match=store.keys.values_pattern(key_id))):
        expiry = client.execute_command("PEXPIRETIME", key)
        entry: dict[str, Any] = {"key": key.decode(), "expire_ms": None if expiry < 0 else expiry}
        if client.type(key) == b"hash":
            fields = client.hgetall(key)
            entry["fields"] = {f.hex(): fields[f].hex() for f in sorted(fields)}
        else:
            entry["value"] = client.get(key).hex()
        found.append(entry)
    return found


def main() -> None:
    server = RedisServer()
    server.start()
    try:
        client = server.client()
        store = OnlineStore(server.client(), PREFIX)
        for name, case in CASES.items():
            layout = layout_of(case["layout"])
            target = store.write_layout(layout, case["entities"])
            store.write_rows(layout, batch_of(layout, case["rows"]), target=target)
            stored = dump(client, store, layout)
            lingering = []
            if case["gone"]:
                # What an earlier write left in a bucket kept alive by newer members.
                values = encode(layout, batch_of(layout, case["gone"]))
                assert target.packing is not None
                tag = store.keys.value_tag(target.key_id).encode()
                for row, value in zip(case["gone"], values.to_pylist(), strict=True):
                    text = str(row["entity"]).encode()
                    bucket = target.packing.bucket_key(tag, text)
                    chunk = target.packing.chunk
                    fields = target.packing.fields(text)
                    parts = [value[i * chunk : (i + 1) * chunk] for i in range(len(fields))]
                    lingering.append(
                        {"key": bucket.decode(),
                         "fields": {f.hex(): p.hex() for f, p in zip(fields, parts, strict=True)}}
                    )  # fmt: skip
            keys = store.keys
            records = {
                keys.key_id(layout.family, layout.version): target.key_id,
                keys.packing(layout.family, layout.version): client.get(
                    keys.packing(layout.family, layout.version)
                ).decode(),
                keys.layout(layout.family, layout.version): layout.to_json(),
                keys.owner(target.key_id): keys.owner_text(layout.family, layout.version),
            }
            asked = [str(r["entity"]).encode() for r in case["rows"] + case["gone"]]
            asked.append(str(MISSING).encode())
            tag = keys.value_tag(target.key_id).encode()
            owner = keys.owner(target.key_id).encode()
            if target.packing is None:
                wire = command(b"MGET", owner, *[tag + e for e in asked])
            else:
                from nbfeatures.online.packing import read_commands

                wire = command(b"GET", owner) + read_commands(target.packing, tag, asked)
            document = {
                "about": case["about"],
                "prefix": PREFIX,
                "layout": json.loads(layout.to_json()),
                "key_id": target.key_id,
                "packing": None if target.packing is None else json.loads(target.packing.to_json()),
                "records": records,
                "rows": case["rows"],
                "gone": case["gone"],
                "missing": str(MISSING),
                "statuses": case["statuses"],
                "stored": stored,
                "lingering": lingering,
                "read_wire": wire.hex(),
            }
            path = HERE / f"{name}.json"
            path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
            print(f"wrote {path.name}: {len(stored)} keys")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
