"""Serve on-demand families: fetch their inputs, take request data, run their function.

A family version is on-demand when Redis holds its published definition (see
``nbfeatures.on_demand.publish``). For such a version the server, per request:

1. checks the request carries every request field the family reads (else INVALID_ARGUMENT
   naming the field) and that each has one value per entity row;
2. reads the input features through the normal lookup (live or pinned versions), keeping a
   value only where its status is PRESENT: a missing or STALE value is null, as a point-in-time
   join leaves it null when there is no row or the row is older than the ttl;
3. calls the same ``OnDemandFunction.apply`` that training sets call. If it raises, every value
   of the block gets status ERROR and the block carries the message; the call still succeeds.

Definitions and compiled functions are cached per version: a version never changes.
This runs code published to Redis from the catalog: serve only trusted catalogs.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from nbfeatures.definitions import FeatureRef
from nbfeatures.errors import InvalidRequest, SchemaError, TransformationError
from nbfeatures.on_demand.function import OnDemandFunction, input_column, prepare
from nbfeatures.on_demand.publish import OnDemandLayout, load_on_demand
from nbfeatures.serving.lookup import Column, FamilyResult, FeatureLookup, OnlineQuery, Status

if TYPE_CHECKING:
    from nbfeatures.online import FamilyLayout

log = logging.getLogger(__name__)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class OnDemandServing:
    """Knows which versions are on-demand and computes their blocks."""

    def __init__(self, lookup: FeatureLookup) -> None:
        self.lookup = lookup
        self._definitions: dict[tuple[str, int], OnDemandLayout | None] = {}
        self._functions: dict[tuple[str, int], OnDemandFunction] = {}
        self._lock = threading.Lock()

    def definition(self, layout: FamilyLayout) -> OnDemandLayout | None:
        """The published definition of ``layout``'s version, None for a batch family.

        Cached either way: the definition is written before the layout, so once a layout is
        readable the answer never changes.
        """
        key = (layout.family, layout.version)
        with self._lock:
            if key in self._definitions:
                return self._definitions[key]
        found = load_on_demand(self.lookup.store, layout.family, layout.version)
        with self._lock:
            self._definitions[key] = found
        return found

    def _function(self, definition: OnDemandLayout) -> OnDemandFunction:
        key = (definition.family.name, definition.version)
        with self._lock:
            cached = self._functions.get(key)
        if cached is None:
            cached = OnDemandFunction(definition.family)  # compiled once per version
            with self._lock:
                self._functions[key] = cached
        return cached

    def compute(
        self,
        query: OnlineQuery,
        layout: FamilyLayout,
        definition: OnDemandLayout,
        features: list[str],
        pinned: bool,
        now: dt.datetime,
    ) -> FamilyResult:
        """One on-demand family's block for every entity row of ``query``."""
        import pyarrow as pa

        family = definition.family
        rows = query.row_count
        request = self._request_columns(query, definition)
        inputs = self._inputs(query, definition, now)
        kinds = dict(zip(layout.feature_names, layout.feature_types, strict=True))
        now_us = (now - _EPOCH) // dt.timedelta(microseconds=1)
        try:
            function = self._function(definition)
            frame = prepare(family.name, request, inputs, rows)
            values = function.apply(frame)
        except SchemaError as exc:
            if exc.column in request:
                raise InvalidRequest(
                    "request", f"request field {exc.column!r}: {exc.reason}"
                ) from None
            return self._failed(layout, features, pinned, rows, str(exc))
        except TransformationError as exc:
            return self._failed(layout, features, pinned, rows, str(exc))
        columns = {
            name: Column.from_arrow(kinds[name], pa.array(values[name], from_pandas=True))
            for name in features
        }
        return FamilyResult(
            family=layout.family,
            version=layout.version,
            pinned=pinned,
            entity_key=layout.entity_key,
            statuses=np.full(rows, Status.PRESENT, dtype=np.int8),
            event_us=np.full(rows, now_us, dtype=np.int64),
            columns=columns,
        )

    def _request_columns(self, query: OnlineQuery, definition: OnDemandLayout) -> dict[str, Any]:
        family = definition.family
        sent = query.request_data
        missing = [f for f in family.request if f.name not in sent]
        if missing:
            wanted = ", ".join(f"{f.name} ({f.dtype.value})" for f in missing)
            raise InvalidRequest(
                "request",
                f"on-demand family {family.name} needs request field {wanted} in request_data; "
                f"the request has: {', '.join(sent) or 'none'}",
            )
        columns: dict[str, Any] = {}
        for field in family.request:
            values = sent[field.name]
            if len(values) != query.row_count:
                raise InvalidRequest(
                    "request",
                    f"request field {field.name!r} has {len(values)} values for "
                    f"{query.row_count} entity rows",
                )
            columns[field.name] = (field.dtype, list(values))
        return columns

    def _inputs(
        self, query: OnlineQuery, definition: OnDemandLayout, now: dt.datetime
    ) -> dict[str, Any]:
        """Each input feature's values, null wherever the value is not PRESENT."""
        import pyarrow as pa
        import pyarrow.compute as pc

        refs = [FeatureRef.parse(text) for text in definition.family.inputs]
        if not refs:
            return {}
        columns: dict[str, Any] = {}
        for plan in self.lookup.resolve(refs):
            layout = plan.layout
            if self.definition(layout) is not None:
                raise InvalidRequest(
                    "request",
                    f"on-demand family {definition.family.name} reads {layout.family}, which "
                    "is on-demand too; inputs must be materialized families",
                )
            result = self.lookup.read_one(query, plan, now)
            present = pa.array(result.statuses == Status.PRESENT)
            for name, column in result.columns.items():
                kind, array = column.kind, column.to_arrow()
                if pa.types.is_null(array.type):
                    kept = array
                else:
                    kept = pc.if_else(present, array, pa.scalar(None, type=array.type))
                columns[input_column(f"{layout.family}:{name}")] = (kind, kept)
        return columns

    @staticmethod
    def _failed(
        layout: FamilyLayout, features: list[str], pinned: bool, rows: int, message: str
    ) -> FamilyResult:
        log.warning("on-demand family %s v%s failed: %s", layout.family, layout.version, message)
        kinds = dict(zip(layout.feature_names, layout.feature_types, strict=True))
        return FamilyResult(
            family=layout.family,
            version=layout.version,
            pinned=pinned,
            entity_key=layout.entity_key,
            statuses=np.full(rows, Status.ERROR, dtype=np.int8),
            event_us=np.zeros(rows, dtype=np.int64),
            columns={name: Column.all_null(kinds[name], rows) for name in features},
            error=message,
        )
