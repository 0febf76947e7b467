"""The panel's routes under ``{base_url}nbfeatures/api/`` and the extension's setup."""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join

from nbfeatures.jupyter import handlers
from nbfeatures.jupyter.panel import load_panel

_NAME = r"(?P<name>[^/]+)"
_ID = r"(?P<{}>[^/]+)"

ROUTES: list[tuple[str, type[Any]]] = [
    ("families", handlers.FamiliesHandler),
    (f"families/{_NAME}", handlers.FamilyHandler),
    (f"families/{_NAME}/promote", handlers.PromoteHandler),
    (f"families/{_NAME}/rollback", handlers.RollbackHandler),
    (f"families/{_NAME}/deprecate", handlers.DeprecateHandler),
    (f"jobs/{_ID.format('job_id')}", handlers.JobHandler),
    ("reports", handlers.ReportsHandler),
    (f"reports/{_ID.format('report_id')}", handlers.ReportHandler),
    (f"reports/{_ID.format('report_id')}/html", handlers.ReportPageHandler),
    (f"reports/{_ID.format('report_id')}/review", handlers.ReviewHandler),
]


def setup_handlers(serverapp: Any) -> None:
    """Read the workspace once and add the routes to the server's web application."""
    panel = load_panel(serverapp.root_dir)
    if panel.settings is None:
        serverapp.log.error("nbfeatures panel: %s", panel.settings_error)
    else:
        serverapp.log.info("nbfeatures panel: workspace %s", panel.settings.workspace)
    web_app = serverapp.web_app
    web_app.settings["nbfeatures_panel"] = panel
    base = url_path_join(web_app.settings["base_url"], "nbfeatures", "api")
    web_app.add_handlers(".*$", [(url_path_join(base, path) + "/?", cls) for path, cls in ROUTES])
