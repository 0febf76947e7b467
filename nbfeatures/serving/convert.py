"""The one module that touches the generated code: messages to and from our own types.

The server turns a ``GetOnlineFeaturesRequest`` into an ``OnlineQuery`` and ``FamilyResult``
objects into a response; the client does the reverse, ending in plain Python values. Both wire
the service through ``add_feature_service`` and ``feature_stub`` so neither imports
``_generated`` itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from google.protobuf.message import DecodeError

from nbfeatures.definitions import FeatureRef, FeatureType, parse_refs
from nbfeatures.errors import DefinitionError, InvalidRequest
from nbfeatures.serving._generated import features_pb2 as pb
from nbfeatures.serving._generated import features_pb2_grpc as pb_grpc
from nbfeatures.serving.lookup import Column, FamilyResult, OnlineQuery, Status

if TYPE_CHECKING:
    import grpc

    from nbfeatures.online import FamilyLayout

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["FeatureService"].full_name

_WIRE_TYPE = {
    FeatureType.INT32: pb.FEATURE_TYPE_INT32,
    FeatureType.INT64: pb.FEATURE_TYPE_INT64,
    FeatureType.FLOAT32: pb.FEATURE_TYPE_FLOAT32,
    FeatureType.FLOAT64: pb.FEATURE_TYPE_FLOAT64,
    FeatureType.STRING: pb.FEATURE_TYPE_STRING,
    FeatureType.BOOL: pb.FEATURE_TYPE_BOOL,
    FeatureType.TIMESTAMP: pb.FEATURE_TYPE_TIMESTAMP,
}
_FEATURE_TYPE = {wire: kind for kind, wire in _WIRE_TYPE.items()}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# -- wiring -------------------------------------------------------------------------------


# Each method's request and response messages.
_MESSAGES: dict[str, tuple[Any, Any]] = {
    "GetOnlineFeatures": (pb.GetOnlineFeaturesRequest, pb.GetOnlineFeaturesResponse),
    "ListFeatures": (pb.ListFeaturesRequest, pb.ListFeaturesResponse),
    "DescribeFamily": (pb.DescribeFamilyRequest, pb.DescribeFamilyResponse),
}


def add_feature_service(server: grpc.Server, servicer: Any) -> None:
    """Register ``servicer`` (GetOnlineFeatures, ListFeatures, DescribeFamily) on ``server``.

    Its methods receive the request's bytes and parse them with ``parse_request``: gRPC's own
    parsing would end malformed bytes with UNKNOWN and a Python exception's text, where they
    are the caller's mistake (INVALID_ARGUMENT, naming the message and the parser's reason).
    """
    import grpc

    handlers = {
        method: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method), response_serializer=response.SerializeToString
        )
        for method, (_, response) in _MESSAGES.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


def parse_request(method: str, data: bytes) -> Any:
    """The request message of ``method`` in ``data``; ``InvalidRequest`` when it does not parse."""
    message = _MESSAGES[method][0]
    try:
        return message.FromString(data)
    except DecodeError as exc:
        # "Error parsing message with type 'x.Y': Wire format was corrupt" -> the reason alone.
        reason = str(exc).rpartition("': ")[2] or "it does not parse"
        raise InvalidRequest(
            "request",
            f"the request is not a valid {message.DESCRIPTOR.full_name}: "
            f"{reason[:1].lower()}{reason[1:]}",
        ) from None


def feature_stub(channel: grpc.Channel | grpc.aio.Channel) -> Any:
    """A stub whose methods take and return the messages built and read here."""
    return pb_grpc.FeatureServiceStub(channel)  # type: ignore[no-untyped-call]


def service_file_descriptor() -> Any:
    return pb.DESCRIPTOR


# -- server side --------------------------------------------------------------------------


_REFS: dict[tuple[str, ...], tuple[FeatureRef, ...]] = {}
_REFS_CACHED = 4096


def _parse_refs(texts: tuple[str, ...]) -> tuple[FeatureRef, ...]:
    """Parsed references, cached: a model sends the same feature list call after call."""
    refs = _REFS.get(texts)
    if refs is None:
        try:
            refs = tuple(parse_refs(texts))
        except DefinitionError as exc:
            raise InvalidRequest("request", exc.reason) from None
        if len(_REFS) >= _REFS_CACHED:
            _REFS.clear()  # bounded: clients choose the lists
        _REFS[texts] = refs
    return refs


def request_to_query(request: pb.GetOnlineFeaturesRequest) -> OnlineQuery:
    """The request as an ``OnlineQuery``; ``InvalidRequest`` for bad references or columns."""
    entities: dict[str, list[str]] = {}
    for name, column in request.entities.items():
        which = column.WhichOneof("kind")
        if which == "int64_values":
            entities[name] = [str(v) for v in column.int64_values.values]
        elif which == "string_values":
            entities[name] = list(column.string_values.values)
        else:
            raise InvalidRequest("request", f"entity column {name!r} holds no values")
    if len(entities) > 1 and len({len(values) for values in entities.values()}) > 1:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in entities.items())
        raise InvalidRequest("request", f"entity columns differ in length ({sizes})")
    if not request.features:
        raise InvalidRequest("request", "no features asked for")
    refs = _parse_refs(tuple(request.features))
    options = request.options
    return OnlineQuery(
        entities=entities,
        refs=refs,
        request_id=options.request_id,
        omit_event_times=options.omit_event_times,
        request_data={
            name: _request_values(values) for name, values in request.request_data.items()
        }
        if request.request_data
        else {},
    )


def _request_values(values: pb.Values) -> list[Any]:
    """A request-data column as Python values (timestamps as aware UTC datetimes)."""
    which = values.WhichOneof("kind")
    if which is None:
        return []
    raw = list(getattr(values, which).values)
    if which == "timestamp_values":
        return [_EPOCH + dt.timedelta(microseconds=v) for v in raw]
    return raw


def request_size(request: pb.GetOnlineFeaturesRequest) -> int:
    return int(request.ByteSize())


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _packed(raw: bytes) -> bytes:
    """``raw`` as field 1 of a message, length-delimited: a packed repeated field."""
    return b"\x0a" + _varint(len(raw)) + raw


def _fill(values: pb.Values, column: Column) -> None:
    """Copy a column into its wire field.

    A numpy column of doubles or bools is handed over as the packed field's bytes, which the
    protobuf runtime parses in C, with no Python object per value (a double's wire form is
    its little-endian bytes, a bool's a one-byte varint); other columns go through one
    ``extend``.
    """
    kind = column.kind
    raw = column.values
    if not isinstance(raw, list):
        if kind in (FeatureType.FLOAT64, FeatureType.FLOAT32):
            values.double_values.MergeFromString(_packed(raw.astype("<f8", copy=False).tobytes()))
            return
        if kind is FeatureType.BOOL:
            values.bool_values.MergeFromString(_packed(raw.astype("u1", copy=False).tobytes()))
            return
    items: list[Any] = raw if isinstance(raw, list) else raw.tolist()
    if kind is FeatureType.STRING:
        values.string_values.values.extend(items)
    elif kind in (FeatureType.FLOAT64, FeatureType.FLOAT32):
        values.double_values.values.extend(items)
    elif kind is FeatureType.BOOL:
        values.bool_values.values.extend(items)
    elif kind is FeatureType.TIMESTAMP:
        values.timestamp_values.values.extend(items)
    else:
        values.int64_values.values.extend(items)


def results_to_response(
    query: OnlineQuery, results: Sequence[FamilyResult], now_us: int
) -> pb.GetOnlineFeaturesResponse:
    response = pb.GetOnlineFeaturesResponse(row_count=query.row_count, request_time_us=now_us)
    for result in results:
        statuses = result.statuses
        block = response.families.add(
            family=result.family,
            version=result.version,
            pinned=result.pinned,
            entity_key=result.entity_key,
            statuses=statuses.tolist(),
            error=result.error,
        )
        if not query.omit_event_times:
            block.event_time_us.extend(result.event_us.tolist())
        found: np.ndarray | None = None
        for name, column in result.columns.items():
            feature = block.features.add(name=name, type=_WIRE_TYPE[column.kind])
            _fill(feature.values, column)
            if column.nulls is not None:
                if found is None:
                    found = statuses != Status.NOT_FOUND
                null_rows = np.flatnonzero(column.nulls & found)
                if len(null_rows):
                    feature.null_rows.extend(null_rows.tolist())
    return response


def _description(
    layout: FamilyLayout, live: int | None, versions: Sequence[int]
) -> pb.FamilyDescription:
    return pb.FamilyDescription(
        family=layout.family,
        live_version=live or 0,
        version=layout.version,
        hash=layout.hash,
        entity_key=layout.entity_key,
        ttl_seconds=layout.ttl_seconds or 0,
        features=[
            pb.FeatureSpec(name=name, type=_WIRE_TYPE[kind])
            for name, kind in zip(layout.feature_names, layout.feature_types, strict=True)
        ],
        versions=list(versions),
    )


def describe_response(
    layout: FamilyLayout, live: int | None, versions: Sequence[int]
) -> pb.DescribeFamilyResponse:
    return pb.DescribeFamilyResponse(family=_description(layout, live, versions))


def list_response(
    families: Sequence[tuple[FamilyLayout, int | None, Sequence[int]]],
) -> pb.ListFeaturesResponse:
    return pb.ListFeaturesResponse(families=[_description(*item) for item in families])


def describe_request_fields(request: pb.DescribeFamilyRequest) -> tuple[str, int | None]:
    return request.family, (int(request.version) or None)


# -- client side --------------------------------------------------------------------------


def build_request(
    entities: Mapping[str, Sequence[str | int]],
    features: Sequence[str],
    request_id: str = "",
    request_data: Mapping[str, Sequence[Any]] | None = None,
) -> pb.GetOnlineFeaturesRequest:
    request = pb.GetOnlineFeaturesRequest(
        features=list(features), options=pb.RequestOptions(request_id=request_id)
    )
    for name, values in (request_data or {}).items():
        request.request_data[name].CopyFrom(_typed_values(name, values))
    for name, values in entities.items():
        column = request.entities[name]
        if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
            column.int64_values.values.extend(int(v) for v in values)
        else:
            column.string_values.values.extend(str(v) for v in values)
    return request


def _typed_values(name: str, values: Sequence[Any]) -> pb.Values:
    """A request-data column in the wire type its Python values have (ints and floats: double)."""
    items = list(values)
    if all(isinstance(v, bool | np.bool_) for v in items):
        return pb.Values(bool_values=pb.BoolArray(values=[bool(v) for v in items]))
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in items):
        return pb.Values(int64_values=pb.Int64Array(values=[int(v) for v in items]))
    if all(isinstance(v, int | float | np.integer | np.floating) for v in items):
        return pb.Values(double_values=pb.DoubleArray(values=[float(v) for v in items]))
    if all(isinstance(v, str) for v in items):
        return pb.Values(string_values=pb.StringArray(values=items))
    if all(isinstance(v, dt.datetime) for v in items):
        micros = [
            ((v if v.tzinfo else v.replace(tzinfo=dt.UTC)) - _EPOCH) // dt.timedelta(microseconds=1)
            for v in items
        ]
        return pb.Values(timestamp_values=pb.Int64Array(values=micros))
    raise InvalidRequest(
        "request", f"request field {name!r}: use one of ints, floats, bools, strings or datetimes"
    )


@dataclass(frozen=True)
class ServedFamily:
    """One family version as served, in plain Python values."""

    family: str
    version: int
    pinned: bool
    entity_key: str
    statuses: list[str]
    event_times: list[dt.datetime | None]
    values: dict[str, list[Any]]
    error: str = ""

    def ref(self, feature: str) -> str:
        pinned = f"@v{self.version}" if self.pinned else ""
        return f"{self.family}{pinned}:{feature}"


def _python_values(column: pb.FeatureColumn, served: list[bool]) -> list[Any]:
    which = column.values.WhichOneof("kind")
    raw: list[Any] = list(getattr(column.values, which).values) if which else []
    if which == "timestamp_values":
        raw = [_EPOCH + dt.timedelta(microseconds=v) for v in raw]
    nulls = set(column.null_rows)
    return [
        v if ok and i not in nulls else None
        for i, (v, ok) in enumerate(zip(raw, served, strict=True))
    ]


def response_to_families(response: pb.GetOnlineFeaturesResponse) -> list[ServedFamily]:
    families = []
    for block in response.families:
        statuses = [pb.ValueStatus.Name(s) for s in block.statuses]
        served = [s in ("PRESENT", "STALE") for s in statuses]
        times: list[dt.datetime | None] = [
            _EPOCH + dt.timedelta(microseconds=us) if ok else None
            for us, ok in zip(block.event_time_us, served, strict=False)
        ]
        families.append(
            ServedFamily(
                family=block.family,
                version=int(block.version),
                pinned=block.pinned,
                entity_key=block.entity_key,
                statuses=statuses,
                event_times=times,
                values={c.name: _python_values(c, served) for c in block.features},
                error=block.error,
            )
        )
    return families


def description_to_dict(description: pb.FamilyDescription) -> dict[str, Any]:
    return {
        "family": description.family,
        "live_version": int(description.live_version) or None,
        "version": int(description.version),
        "hash": description.hash,
        "entity_key": description.entity_key,
        "ttl_seconds": int(description.ttl_seconds) or None,
        "features": {f.name: _FEATURE_TYPE[f.type].value for f in description.features},
        "versions": [int(v) for v in description.versions],
    }


def list_request() -> pb.ListFeaturesRequest:
    return pb.ListFeaturesRequest()


def describe_request(family: str, version: int | None = None) -> pb.DescribeFamilyRequest:
    return pb.DescribeFamilyRequest(family=family, version=version or 0)


def list_to_dicts(response: pb.ListFeaturesResponse) -> list[dict[str, Any]]:
    return [description_to_dict(d) for d in response.families]


def describe_to_dict(response: pb.DescribeFamilyResponse) -> dict[str, Any]:
    return description_to_dict(response.family)
