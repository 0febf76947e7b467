"""The jupyter_server extension behind the JupyterLab "Features" panel.

Its handlers, under ``{base_url}nbfeatures/api/``, call the same catalog, promotion and
monitoring code as the ``nbfeatures`` command; long promotions run as background jobs the
panel polls. Enabled by ``jupyter-config/jupyter_server_config.d/nbfeatures.json`` (shipped
in the wheel), or by hand with ``jupyter server extension enable nbfeatures.jupyter``.

Importing this package loads no Jupyter, MLflow or Spark; loading the extension does.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The entry point jupyter_server looks for: this module is the extension."""
    return [{"module": "nbfeatures.jupyter"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Read the workspace's settings once and register the panel's handlers."""
    from nbfeatures.jupyter.routes import setup_handlers

    setup_handlers(serverapp)
