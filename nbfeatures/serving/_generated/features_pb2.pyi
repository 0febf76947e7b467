from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeatureType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEATURE_TYPE_UNSPECIFIED: _ClassVar[FeatureType]
    FEATURE_TYPE_INT32: _ClassVar[FeatureType]
    FEATURE_TYPE_INT64: _ClassVar[FeatureType]
    FEATURE_TYPE_FLOAT32: _ClassVar[FeatureType]
    FEATURE_TYPE_FLOAT64: _ClassVar[FeatureType]
    FEATURE_TYPE_STRING: _ClassVar[FeatureType]
    FEATURE_TYPE_BOOL: _ClassVar[FeatureType]
    FEATURE_TYPE_TIMESTAMP: _ClassVar[FeatureType]

class ValueStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VALUE_STATUS_UNSPECIFIED: _ClassVar[ValueStatus]
    PRESENT: _ClassVar[ValueStatus]
    NOT_FOUND: _ClassVar[ValueStatus]
    STALE: _ClassVar[ValueStatus]
    ERROR: _ClassVar[ValueStatus]
FEATURE_TYPE_UNSPECIFIED: FeatureType
FEATURE_TYPE_INT32: FeatureType
FEATURE_TYPE_INT64: FeatureType
FEATURE_TYPE_FLOAT32: FeatureType
FEATURE_TYPE_FLOAT64: FeatureType
FEATURE_TYPE_STRING: FeatureType
FEATURE_TYPE_BOOL: FeatureType
FEATURE_TYPE_TIMESTAMP: FeatureType
VALUE_STATUS_UNSPECIFIED: ValueStatus
PRESENT: ValueStatus
NOT_FOUND: ValueStatus
STALE: ValueStatus
ERROR: ValueStatus

class Int64Array(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class DoubleArray(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class StringArray(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class BoolArray(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, values: _Optional[_Iterable[bool]] = ...) -> None: ...

class Values(_message.Message):
    __slots__ = ("int64_values", "double_values", "string_values", "bool_values", "timestamp_values")
    INT64_VALUES_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUES_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUES_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_VALUES_FIELD_NUMBER: _ClassVar[int]
    int64_values: Int64Array
    double_values: DoubleArray
    string_values: StringArray
    bool_values: BoolArray
    timestamp_values: Int64Array
    def __init__(self, int64_values: _Optional[_Union[Int64Array, _Mapping]] = ..., double_values: _Optional[_Union[DoubleArray, _Mapping]] = ..., string_values: _Optional[_Union[StringArray, _Mapping]] = ..., bool_values: _Optional[_Union[BoolArray, _Mapping]] = ..., timestamp_values: _Optional[_Union[Int64Array, _Mapping]] = ...) -> None: ...

class EntityColumn(_message.Message):
    __slots__ = ("int64_values", "string_values")
    INT64_VALUES_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUES_FIELD_NUMBER: _ClassVar[int]
    int64_values: Int64Array
    string_values: StringArray
    def __init__(self, int64_values: _Optional[_Union[Int64Array, _Mapping]] = ..., string_values: _Optional[_Union[StringArray, _Mapping]] = ...) -> None: ...

class RequestOptions(_message.Message):
    __slots__ = ("omit_event_times", "request_id")
    OMIT_EVENT_TIMES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    omit_event_times: bool
    request_id: str
    def __init__(self, omit_event_times: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetOnlineFeaturesRequest(_message.Message):
    __slots__ = ("entities", "features", "options", "request_data")
    class EntitiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: EntityColumn
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[EntityColumn, _Mapping]] = ...) -> None: ...
    class RequestDataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Values
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Values, _Mapping]] = ...) -> None: ...
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DATA_FIELD_NUMBER: _ClassVar[int]
    entities: _containers.MessageMap[str, EntityColumn]
    features: _containers.RepeatedScalarFieldContainer[str]
    options: RequestOptions
    request_data: _containers.MessageMap[str, Values]
    def __init__(self, entities: _Optional[_Mapping[str, EntityColumn]] = ..., features: _Optional[_Iterable[str]] = ..., options: _Optional[_Union[RequestOptions, _Mapping]] = ..., request_data: _Optional[_Mapping[str, Values]] = ...) -> None: ...

class FeatureColumn(_message.Message):
    __slots__ = ("name", "type", "values", "null_rows")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    NULL_ROWS_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: FeatureType
    values: Values
    null_rows: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[FeatureType, str]] = ..., values: _Optional[_Union[Values, _Mapping]] = ..., null_rows: _Optional[_Iterable[int]] = ...) -> None: ...

class FamilyBlock(_message.Message):
    __slots__ = ("family", "version", "pinned", "entity_key", "statuses", "event_time_us", "features", "error")
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    ENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_US_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    family: str
    version: int
    pinned: bool
    entity_key: str
    statuses: _containers.RepeatedScalarFieldContainer[ValueStatus]
    event_time_us: _containers.RepeatedScalarFieldContainer[int]
    features: _containers.RepeatedCompositeFieldContainer[FeatureColumn]
    error: str
    def __init__(self, family: _Optional[str] = ..., version: _Optional[int] = ..., pinned: _Optional[bool] = ..., entity_key: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[ValueStatus, str]]] = ..., event_time_us: _Optional[_Iterable[int]] = ..., features: _Optional[_Iterable[_Union[FeatureColumn, _Mapping]]] = ..., error: _Optional[str] = ...) -> None: ...

class GetOnlineFeaturesResponse(_message.Message):
    __slots__ = ("row_count", "families", "request_time_us")
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAMILIES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TIME_US_FIELD_NUMBER: _ClassVar[int]
    row_count: int
    families: _containers.RepeatedCompositeFieldContainer[FamilyBlock]
    request_time_us: int
    def __init__(self, row_count: _Optional[int] = ..., families: _Optional[_Iterable[_Union[FamilyBlock, _Mapping]]] = ..., request_time_us: _Optional[int] = ...) -> None: ...

class FeatureSpec(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: FeatureType
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[FeatureType, str]] = ...) -> None: ...

class FamilyDescription(_message.Message):
    __slots__ = ("family", "live_version", "version", "hash", "entity_key", "ttl_seconds", "features", "versions")
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    LIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    ENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    family: str
    live_version: int
    version: int
    hash: str
    entity_key: str
    ttl_seconds: int
    features: _containers.RepeatedCompositeFieldContainer[FeatureSpec]
    versions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, family: _Optional[str] = ..., live_version: _Optional[int] = ..., version: _Optional[int] = ..., hash: _Optional[str] = ..., entity_key: _Optional[str] = ..., ttl_seconds: _Optional[int] = ..., features: _Optional[_Iterable[_Union[FeatureSpec, _Mapping]]] = ..., versions: _Optional[_Iterable[int]] = ...) -> None: ...

class ListFeaturesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListFeaturesResponse(_message.Message):
    __slots__ = ("families",)
    FAMILIES_FIELD_NUMBER: _ClassVar[int]
    families: _containers.RepeatedCompositeFieldContainer[FamilyDescription]
    def __init__(self, families: _Optional[_Iterable[_Union[FamilyDescription, _Mapping]]] = ...) -> None: ...

class DescribeFamilyRequest(_message.Message):
    __slots__ = ("family", "version")
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    family: str
    version: int
    def __init__(self, family: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class DescribeFamilyResponse(_message.Message):
    __slots__ = ("family",)
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    family: FamilyDescription
    def __init__(self, family: _Optional[_Union[FamilyDescription, _Mapping]] = ...) -> None: ...
