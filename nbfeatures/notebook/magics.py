"""The notebook's magics: thin shells that parse a line, call the library, and display.

    %nbf_config [--workspace DIR] [--owner WHO] [--catalog-uri URI]
    %nbf_source NAME PATH_OR_TABLE [--timestamp COL]
    %%feature NAME --entity KEY --timestamp COL [--owner WHO] [--ttl 7d] [--retention 7d]
              [--freshness 1h]
              [--description TEXT] [--tags a,b] [--python] [--register]
    %nbf_register                      register the family the last %%feature cell previewed
    %features [NAME]
    %promote NAME [vN] [--recompute] [--restore] [--allow-expired]
                                       compute, materialize, verify and make a version live
    %reports [FAMILY]                  monitoring reports: show one, mark it reviewed

Every ``NbfeaturesError`` becomes one ``UsageError`` with a clear message: IPython prints it
without a traceback, nothing is registered, and the next cell runs as usual.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

from IPython.core import magic as _magic
from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class

from nbfeatures._deps import require
from nbfeatures.config import load_settings
from nbfeatures.definitions import FeatureRef, Source, parse_tags
from nbfeatures.errors import NbfeaturesError, TransformationError
from nbfeatures.notebook import display as html
from nbfeatures.notebook.state import FeatureCell, KernelState, configure, current
from nbfeatures.notebook.widgets import PreviewWidget

if TYPE_CHECKING:
    from nbfeatures.catalog import Registration
    from nbfeatures.promotion import PromotionRecord, StepEvent
    from nbfeatures.promotion.records import PromotionOptions

# IPython's argument decorators and display helpers carry no annotations; the typed wrappers
# below keep the magics typed.
_args = require("IPython.core.magic_arguments", "notebook")
_display = require("IPython.display", "notebook")
_F = TypeVar("_F", bound=Callable[..., Any])


def magic_arguments() -> Callable[[_F], _F]:
    """IPython's ``@magic_arguments()``: makes the function's ``argument``s its parser."""
    decorator: Callable[[_F], _F] = _args.magic_arguments()
    return decorator


def argument(*names: str, **options: Any) -> Callable[[_F], _F]:
    """IPython's ``@argument``: one ``argparse`` argument of a magic."""
    decorator: Callable[[_F], _F] = _args.argument(*names, **options)
    return decorator


def line_magic(method: _F) -> _F:
    """IPython's ``@line_magic`` (its declared return type is a union that hides the method)."""
    return cast(_F, _magic.line_magic(method))


def cell_magic(method: _F) -> _F:
    """IPython's ``@cell_magic``, typed like ``line_magic``."""
    return cast(_F, _magic.cell_magic(method))


def parse_argstring(magic: Callable[..., Any], line: str) -> Any:
    """Parse a magic's line as a shell would; a bad line raises ``UsageError`` with usage.

    IPython's own parsing keeps quotes in values (``--description 'a b'`` gave ``'a b'``
    with its quotes), so the line is split with ``shlex`` first.
    """
    try:
        argv = shlex.split(line)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        name = getattr(magic, "__name__", "magic")
        raise UsageError(f"%{name}: cannot read the arguments ({exc}): {line}") from None
    return magic.parser.parse_args(argv)  # type: ignore[attr-defined]


LAST_NAME = "_nbf_last"


def describe_error(exc: NbfeaturesError) -> str:
    """One line for the notebook; SQL errors lead with where: ``line 3, column 8: ...``."""
    if isinstance(exc, TransformationError) and exc.line:
        where = f"line {exc.line}" + (f", column {exc.column}" if exc.column else "")
        return f"feature family {exc.family!r}: {where}: {exc.reason}"
    return str(exc)


@contextmanager
def usage_errors() -> Iterator[None]:
    """Turn the library's errors into ``UsageError``: a message, not a traceback."""
    try:
        yield
    except NbfeaturesError as exc:
        raise UsageError(describe_error(exc)) from exc


@magics_class
class FeatureMagics(Magics):
    """``%nbf_config``, ``%nbf_source``, ``%%feature``, ``%nbf_register`` and ``%features``."""

    @property
    def state(self) -> KernelState:
        return current()

    @magic_arguments()
    @argument("--workspace", help="workspace directory (holds nbfeatures.yaml and .nbfeatures/)")
    @argument("--owner", help="default owner for families defined in this notebook")
    @argument("--catalog-uri", help="MLflow tracking URI of the catalog")
    @line_magic
    def nbf_config(self, line: str) -> None:
        """Point this kernel at a workspace; forgets the kernel's sources and last family."""
        args = parse_argstring(self.nbf_config, line)
        with usage_errors():
            settings = load_settings(args.workspace, owner=args.owner, catalog_uri=args.catalog_uri)
        configure(settings)
        print(
            f"nbfeatures workspace {settings.workspace}; catalog {settings.catalog}; "
            f"owner {settings.owner or '(none: pass --owner to %%feature)'}"
        )

    @magic_arguments()
    @argument("name", help="the name cells use for this source, e.g. in FROM name")
    @argument("location", help="a Parquet/CSV path or a Spark table name")
    @argument("--timestamp", help="the source's event-time column")
    @line_magic
    def nbf_source(self, line: str) -> None:
        """Register a named source for this kernel, reading one row now to fail early."""
        args = parse_argstring(self.nbf_source, line)
        from nbfeatures.engine.spark.session import get_spark
        from nbfeatures.engine.spark.sources import read_source

        with usage_errors():
            source = Source.infer(args.name, args.location, args.timestamp)
            settings = self.state.get_settings()
            frame = read_source(get_spark(settings), source, limit=1)
        self.state.sources[source.name] = source
        print(
            f"source {source.name}: {source.format.value} {source.location} "
            f"({', '.join(frame.columns)})"
        )

    @magic_arguments()
    @argument("name", help="the family's name")
    @argument("--entity", required=True, help="the entity's join key column, e.g. user_id")
    @argument("--timestamp", help="the output's event-time column (not for --on-demand)")
    @argument("--owner", help="who answers for this family (default: settings.owner)")
    @argument("--ttl", help="max age a served value may have, e.g. 7d")
    @argument("--retention", help="how long past the ttl values are kept, served STALE")
    @argument("--freshness", help="freshness SLA, e.g. 1h")
    @argument("--description", default="", help="what the family describes")
    @argument("--tags", help="comma-separated tags")
    @argument("--python", action="store_true", help="the body is Python defining one function")
    @argument(
        "--on-demand",
        action="store_true",
        help="computed at request time: a Python function of one pandas DataFrame",
    )
    @argument("--inputs", help="on-demand: features it reads, e.g. user_spend:spend,user_spend:n")
    @argument("--request", help="on-demand: request fields and types, e.g. amount:float64")
    @argument("--register", action="store_true", help="register at once, without a click")
    @cell_magic
    def feature(self, line: str, cell: str) -> None:
        """Define a family, preview it on a bounded sample, and offer (or do) registration."""
        args = parse_argstring(self.feature, line)
        if args.on_demand:
            with usage_errors():
                self._define_on_demand(args, cell)
            return
        if not args.timestamp:
            raise UsageError(f"%%feature {args.name}: --timestamp COL is required")
        with usage_errors():
            result, widget = self._define(args, cell)
            if args.register:
                registration = self._register(result)
                widget.show_registration(registration)
        if self.shell is not None:
            self.shell.user_ns[LAST_NAME] = result
        _display.display(widget)

    @line_magic
    def nbf_register(self, line: str) -> None:
        """Register the family the last ``%%feature`` cell previewed (the button, as a line)."""
        if line.strip():
            raise UsageError("%nbf_register takes no arguments")
        last = self.state.last
        if last is None:
            raise UsageError("no family to register: run a %%feature cell first")
        with usage_errors():
            registration = self._register(last)
        _display.display(_display.HTML(html.standalone(html.registration_html(registration))))

    @magic_arguments()
    @argument("name", help="the family to promote")
    @argument("version", nargs="?", help="the version, e.g. v3 (default: the latest)")
    @argument("--recompute", action="store_true", help="recompute the offline set, never reuse")
    @argument(
        "--restore",
        action="store_true",
        help="put the production version back into the online store (after data loss)",
    )
    @argument(
        "--allow-expired",
        action="store_true",
        help="promote even when most values are older than the ttl",
    )
    @line_magic
    def promote(self, line: str) -> None:
        """Promote a family version: the same run as ``nbfeatures promote``, steps printed."""
        from nbfeatures.promotion.records import PromotionOptions

        args = parse_argstring(self.promote, line)
        text = (args.version or "").lower().removeprefix("v")
        if text and not text.isdigit():
            raise UsageError(f"%promote: {args.version!r} is not a version like v3")
        options = PromotionOptions(
            allow_expired=args.allow_expired, recompute=args.recompute, restore=args.restore
        )
        with usage_errors():
            record = self._promote(args.name, int(text) if text else None, options)
        done = "restored into the online store" if args.restore else "is live"
        print(f"{record.family} v{record.version} {done}; notebook {record.notebook}")

    @magic_arguments()
    @argument("name", nargs="?", help="a family: show its versions")
    @line_magic
    def features(self, line: str) -> None:
        """List the catalog's families, or one family's versions and metadata."""
        args = parse_argstring(self.features, line)
        with usage_errors():
            catalog = self.state.catalog()
            if args.name:
                page = html.history_html(args.name, catalog.history(args.name))
            else:
                page = html.catalog_html(catalog.list())
        _display.display(_display.HTML(page))

    @magic_arguments()
    @argument("family", nargs="?", help="only this family's reports")
    @line_magic
    def reports(self, line: str) -> None:
        """The monitoring reports widget: list, show a report's page, mark it reviewed."""
        from nbfeatures.notebook.reports import reports_widget

        args = parse_argstring(self.reports, line)
        with usage_errors():
            widget = reports_widget(self.state.get_settings(), family=args.family)
        _display.display(widget)

    def _define_on_demand(self, args: Any, body: str) -> None:
        """An on-demand family: no data to preview; its features come from the function."""
        from nbfeatures.on_demand import define_on_demand

        settings = self.state.get_settings()
        owner = args.owner or settings.owner
        if not owner:
            raise UsageError(f"feature family {args.name!r} needs an owner: pass --owner WHO")
        catalog = self.state.catalog()
        inputs: dict[str, Any] = {}
        for ref in parse_tags(args.inputs):
            # The input's type is whatever the catalog's production (else latest) version says.
            parsed = FeatureRef.parse(ref)
            version = catalog.resolve(parsed)
            inputs[str(parsed)] = version.family.feature(parsed.feature).dtype
        request: dict[str, str] = {}
        for item in parse_tags(args.request):
            field, _, kind = item.partition(":")
            if not kind:
                raise UsageError(f"--request {item!r}: write field:type, e.g. amount:float64")
            request[field.strip()] = kind.strip()
        family = define_on_demand(
            args.name,
            body,
            entity_key=args.entity,
            inputs=inputs,
            request=request,
            owner=owner,
            description=args.description,
            tags=parse_tags(args.tags),
            **({"timestamp": args.timestamp} if args.timestamp else {}),
        )
        summary = ", ".join(f"{f.name} ({f.dtype.value})" for f in family.features)
        print(f"on-demand family {family.name}: {summary}; inputs {', '.join(family.inputs)}")
        if args.register:
            registration = catalog.register(family)
            _display.display(_display.HTML(html.standalone(html.registration_html(registration))))
        if self.shell is not None:
            self.shell.user_ns[LAST_NAME] = family

    def _define(self, args: Any, body: str) -> tuple[FeatureCell, PreviewWidget]:
        from nbfeatures.engine.spark.preview import compute_preview
        from nbfeatures.engine.spark.session import get_spark
        from nbfeatures.engine.spark.transform import build_family

        state = self.state
        settings = state.get_settings()
        owner = args.owner or settings.owner
        if not owner:
            raise UsageError(
                f"feature family {args.name!r} needs an owner: pass --owner WHO, "
                "or set owner in nbfeatures.yaml (or NBF_OWNER)"
            )
        # Look the name up first: an unreachable catalog fails before Spark does any work.
        catalog = state.catalog()
        previous = catalog.latest(args.name)
        family, frame = build_family(
            get_spark(settings),
            name=args.name,
            body=body,
            python=args.python,
            entity_key=args.entity,
            timestamp=args.timestamp,
            sources=tuple(state.sources.values()),  # the engine keeps those the body reads
            owner=owner,
            description=args.description,
            tags=parse_tags(args.tags),
            ttl=args.ttl,
            retention=args.retention,
            freshness=args.freshness,
            limit=settings.preview_limit,
        )
        preview = compute_preview(frame, family, rows=settings.preview_rows)
        result = FeatureCell(family=family, preview=preview)
        state.last = result

        def register() -> Registration:
            return self._register(result)

        widget = PreviewWidget(
            preview,
            on_register=register,
            previous_stats=previous.stats if previous is not None else None,
            previous_version=previous.version if previous is not None else None,
            on_promote=lambda version: self._promote(family.name, version),
        )
        result.widget = widget
        return result, widget

    def _promote(
        self, name: str, version: int | None, options: PromotionOptions | None = None
    ) -> PromotionRecord:
        from nbfeatures.promotion import promote

        def show(event: StepEvent) -> None:
            print(event.line(), flush=True)

        return promote(self.state.get_settings(), name, version, progress=show, options=options)

    def _register(self, result: FeatureCell) -> Registration:
        registration = self.state.catalog().register(
            result.family, stats=result.preview.stats_dict()
        )
        result.registration = registration
        if any(change.split(" ", 1)[0] in ("ttl", "retention") for change in registration.updated):
            # Same content, new ttl or retention: servers read them from the online layouts.
            from nbfeatures.promotion.metadata import apply_online

            apply_online(self.state.get_settings(), registration.version.family)
        return registration


def changed_features(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the features a ``Preview.compare`` table marks as changed (for tests/reports)."""
    return [
        str(row.get("feature"))
        for row in rows
        if str(row.get("change", "")).lower() not in ("", "unchanged", "same")
    ]
