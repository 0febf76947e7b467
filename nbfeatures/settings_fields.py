"""The one settings loader: a YAML mapping, prefixed environment variables and overrides.

Both settings models (``nbfeatures.config.Settings``, ``nbfeatures.serving.config
.ServerConfig``) are frozen dataclasses loaded by ``load_fields``. Each value is coerced from
the field's declared type (``str``, ``int``, ``float``, ``bool``, ``Path``, or ``X | None``
of those), and a bad value raises ``ConfigError`` naming the setting and where the value came
from (``/ws/nbfeatures.yaml:preview_rows``, ``NBF_PREVIEW_ROWS``, ``override``).

Later sources win: the file, then the environment, then the overrides. An empty value (YAML
``null`` or ``""``, or an empty variable) turns an optional setting off (``None``) and leaves a
required one at what it was. An override of ``None`` means "not given". A field whose metadata
has ``parse`` (a nested mapping, like ``monitoring:``) is read from the file and overrides only,
through that function.

Imports nothing of ours but ``errors``: the serving tier loads it without the library's heavy
parts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from nbfeatures.errors import ConfigError

T = TypeVar("T")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_SCALARS: tuple[type, ...] = (bool, int, float, str, Path)


# Field metadata key: the field holds the names that were set, and is not a setting itself.
RECORDS_GIVEN = "records_given"


def _scalar_of(hint: Any) -> tuple[type | None, bool]:
    """The scalar type a field holds and whether it may be None (``None`` type: not a scalar)."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else None
    return (hint if hint in _SCALARS else None), optional


def coerce(kind: type, value: Any) -> Any:
    """``value`` (text from the environment, or what YAML made of it) as ``kind``.

    Raises ``ValueError`` with the reason; the loader adds the setting and the source.
    """
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError(f"{value!r} is not true or false")
    if kind is int:
        if isinstance(value, bool):  # YAML's yes/no are not numbers
            raise ValueError(f"{value!r} is not a whole number")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a whole number") from None
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a number") from None
    if not isinstance(value, str | int | float):
        raise ValueError(f"expected text, got {type(value).__name__}")
    if kind is Path:
        return Path(str(value)).expanduser()
    return str(value)


def load_fields(
    model: type[T],
    *,
    label: Callable[[str], str],
    env_prefix: str,
    environ: Mapping[str, str],
    file_values: Mapping[Any, Any] | None = None,
    file_name: str = "",
    overrides: Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> T:
    """Build ``model`` from ``file_values`` (read from ``file_name``), ``<env_prefix><NAME>``
    variables and ``overrides``; ``fixed`` fields (e.g. the workspace) are given, not loaded.
    A field marked ``RECORDS_GIVEN`` in its metadata is not loaded: it receives the names of
    the fields that were set (not defaulted).

    ``label(name)`` is how errors name a field (``preview_rows``, ``serve.port``). An unknown
    key in the file is refused as ``<file_name>:<key>``; an unknown override as ``label(key)``.
    Errors the model's own checks raise for a field get that field's source added.
    """
    fixed = dict(fixed or {})
    hints = typing.get_type_hints(model)
    every = dataclasses.fields(typing.cast(Any, model))
    recorders = [f.name for f in every if f.metadata.get(RECORDS_GIVEN)]
    settable = [f for f in every if f.name not in fixed and f.name not in recorders]
    known = {f.name: f for f in settable}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def put(name: str, value: Any, source: str) -> None:
        spec = known[name]
        parse = spec.metadata.get("parse")
        kind, optional = _scalar_of(hints[name])
        if value is None or value == "":
            if parse is not None or optional:
                values[name], sources[name] = None, source
            return
        try:
            values[name] = parse(value) if parse is not None else coerce(kind or str, value)
        except ValueError as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(label(name), str(exc), source=source) from None
        sources[name] = source

    names = ", ".join(sorted(known))
    for key, value in (file_values or {}).items():
        if key not in known:
            raise ConfigError(f"{file_name}:{key}", f"unknown setting; known: {names}")
        put(key, value, f"{file_name}:{key}")
    for name, spec in known.items():
        variable = env_prefix + name.upper()
        if "parse" not in spec.metadata and variable in environ:
            put(name, environ[variable], variable)
    for key, value in (overrides or {}).items():
        if key not in known:
            raise ConfigError(label(key), f"unknown setting; known: {names}")
        if value is not None:
            put(key, value, "override")
    for name in recorders:
        fixed[name] = frozenset(sources)
    try:
        return model(**fixed, **values)
    except ConfigError as exc:
        # The model's own checks know the field, not where its value came from.
        named = {label(name): name for name in sources}
        if exc.source is None and exc.key in named:
            raise ConfigError(exc.key, exc.reason, source=sources[named[exc.key]]) from None
        raise
