"""The preview widget a ``%%feature`` cell shows: data in, one callback out, no I/O of its own.

The widget renders the tables from ``display`` and a Register button. Registering is the
caller's job: the button calls ``on_register`` (the magic wires it to the catalog) and shows
what came back. Because ipywidgets need a live kernel to draw, the widget's mime bundle also
carries the same tables as ``text/html``, so a saved or papermill-run notebook still shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nbfeatures.errors import MissingDependency, NbfeaturesError
from nbfeatures.notebook import display

if TYPE_CHECKING:
    from nbfeatures.catalog import Registration
    from nbfeatures.engine.spark.preview import Preview
    from nbfeatures.promotion import PromotionRecord

try:
    import ipywidgets as _widgets
except ImportError:  # pragma: no cover - the notebook extra brings it
    raise MissingDependency("notebook", "ipywidgets") from None

RegisterCallback = Callable[[], "Registration"]
PromoteCallback = Callable[[int], "PromotionRecord"]


class PreviewWidget(_widgets.VBox):  # type: ignore[misc]
    """A family's preview (sample, schema, statistics, histograms, changes) and a Register button.

    ``previous_stats`` and ``previous_version`` describe the latest registered version of the
    same name, if any; with them the widget adds a "changes vs vN" table.
    """

    def __init__(
        self,
        preview: Preview,
        *,
        on_register: RegisterCallback | None = None,
        previous_stats: Mapping[str, Any] | None = None,
        previous_version: int | None = None,
        on_promote: PromoteCallback | None = None,
    ) -> None:
        self.preview = preview
        self.previous_version = previous_version
        self.changes: Sequence[Mapping[str, Any]] | None = None
        if previous_version is not None:
            self.changes = type(preview).compare(
                dict(previous_stats) if previous_stats is not None else None,
                preview.stats_dict(),
            )
        self.registration: Registration | None = None
        self.error: str | None = None
        self._on_register = on_register
        self.body = _widgets.HTML(value=self._body_html())
        self.button = _widgets.Button(
            description="Register",
            button_style="primary",
            icon="check",
            tooltip=f"Register {preview.family.name} in the catalog",
            disabled=on_register is None,
        )
        self.status = _widgets.HTML(value="")
        self.button.on_click(self._clicked)
        # Promote appears once the family is registered; it calls ``on_promote(version)``.
        self._on_promote = on_promote
        self.promotion: PromotionRecord | None = None
        self.promote_button = _widgets.Button(
            description="Promote",
            button_style="warning",
            icon="rocket",
            tooltip=f"Make the registered {preview.family.name} version live",
            layout=_widgets.Layout(display="none"),
        )
        self.promote_button.on_click(lambda _button: self.promote())
        row = _widgets.HBox([self.button, self.promote_button, self.status])
        super().__init__(children=[self.body, row])

    def register(self) -> Registration | None:
        """Call ``on_register`` and show its outcome; what the button does when clicked."""
        if self._on_register is None:
            return None
        try:
            registration = self._on_register()
        except NbfeaturesError as exc:
            self.show_error(str(exc))
            return None
        except Exception as exc:  # a click has no caller to raise to: show it
            self.show_error(f"{type(exc).__name__}: {exc}")
            return None
        self.show_registration(registration)
        return registration

    def show_registration(self, registration: Registration) -> None:
        """Show a successful registration (new or existing version) and disable the button."""
        self.registration = registration
        self.error = None
        self.status.value = display.registration_html(registration)
        self.button.disabled = True
        if self._on_promote is not None:
            self.promote_button.layout.display = None

    def promote(self) -> PromotionRecord | None:
        """Call ``on_promote`` with the registered version; what the Promote button does."""
        if self._on_promote is None or self.registration is None:
            return None
        self.promote_button.disabled = True
        try:
            record = self._on_promote(self.registration.version.version)
        except Exception as exc:  # a click has no caller to raise to: show it
            text = str(exc) if isinstance(exc, NbfeaturesError) else f"{type(exc).__name__}: {exc}"
            self.show_error(text)
            self.promote_button.disabled = False
            return None
        self.promotion = record
        self.status.value = f"<span>{record.family} v{record.version} is live</span>"
        return record

    def show_error(self, message: str) -> None:
        """Show why registering failed, in red; the button stays enabled for another try."""
        self.error = message
        self.status.value = display.error_html(message)

    def to_html(self) -> str:
        """The widget's content as static HTML, including the registration status."""
        return display.preview_html(
            self.preview,
            changes=self.changes,
            previous_version=self.previous_version,
            status=self.status.value,
        )

    def _body_html(self) -> str:
        return display.preview_html(
            self.preview, changes=self.changes, previous_version=self.previous_version
        )

    def _clicked(self, _button: Any) -> None:
        self.register()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The live widget plus a ``text/html`` copy for viewers without a kernel."""
        bundle: dict[str, Any] = dict(super()._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = self.to_html()
        return bundle
