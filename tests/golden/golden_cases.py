"""The golden stored-version cases (``stored_version/*.json``): loading them, and their rows
as the Arrow batches and the values the online store is given and serves back."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from nbfeatures.online.layout import FamilyLayout, KeySpace
from nbfeatures.online.packing import Packing

if TYPE_CHECKING:
    from nbfeatures.online.stored import StoredVersion

FOLDER = Path(__file__).parent / "stored_version"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ARROW = {
    "int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(), "float64": pa.float64(),
    "string": pa.string(), "bool": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC"),
}  # fmt: skip


def case_names() -> list[str]:
    return sorted(path.stem for path in FOLDER.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FOLDER / f"{name}.json").read_text())
    return loaded


def layout_of(spec: dict[str, Any]) -> FamilyLayout:
    data = {"hash": "golden", "entity_key": "user_id", "timestamp": "ts", **spec}
    return FamilyLayout.from_json(json.dumps(data))


def stored_of(case: dict[str, Any]) -> StoredVersion:
    from nbfeatures.online.stored import StoredVersion

    packing = None if case["packing"] is None else Packing(**case["packing"])
    return StoredVersion.at(
        KeySpace(case["prefix"]), layout_of(case["layout"]), case["key_id"], packing
    )


def batch_of(layout: FamilyLayout, rows: list[dict[str, Any]]) -> pa.RecordBatch:
    """The rows as the batch ``write_rows`` takes (timestamps given in microseconds)."""
    columns: dict[str, pa.Array] = {
        "user_id": pa.array([r["entity"] for r in rows], pa.int64()),
        "ts": pa.array([r["event_us"] for r in rows], pa.int64()).cast(_ARROW["timestamp"]),
    }
    for name, kind in layout.features:
        values = [r["values"][name] for r in rows]
        if kind == "timestamp":
            columns[name] = pa.array(values, pa.int64()).cast(_ARROW[kind])
        else:
            columns[name] = pa.array(values, _ARROW[kind])
    return pa.RecordBatch.from_pydict(columns)


def asked(case: dict[str, Any]) -> list[str]:
    """The entities a read of the case asks for: rows, gone rows, the missing one."""
    return [str(r["entity"]) for r in case["rows"] + case["gone"]] + [case["missing"]]


def served_value(kind: str, value: Any) -> Any:
    """A row's value as a server answers it (timestamps as aware datetimes)."""
    if value is not None and kind == "timestamp":
        return _EPOCH + dt.timedelta(microseconds=value)
    return value
