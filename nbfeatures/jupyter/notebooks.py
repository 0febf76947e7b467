"""A promotion's executed notebook, at a path JupyterLab can open.

Promotions archive their notebook under the workspace's ``.nbfeatures/promotions/`` (and in
MLflow). JupyterLab opens only files under the server's root and, by default, refuses any path
with a hidden folder in it (``ContentsManager.allow_hidden``), so that archive is never
openable as it is. When the notebook lies under the root in no hidden folder its own path is
used; otherwise it is copied to ``<root>/nbfeatures-promotions/<run>.ipynb`` (the run's folder
name: family, time, a short id), a visible folder the file browser shows too.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

#: The folder under the server root that receives copies of promotion notebooks.
COPIES_FOLDER = "nbfeatures-promotions"


def openable_path(notebook: str | Path, root: Path) -> str | None:
    """``notebook``'s path relative to ``root`` (``/``-separated), copying it where needed.

    None when there is no such notebook or it cannot be copied (a read-only root): the panel
    then shows no link, and the notebook is still in the workspace and in MLflow.
    """
    source = Path(notebook).resolve()
    root = root.resolve()
    if not source.is_file():
        return None
    if source.is_relative_to(root):
        relative = source.relative_to(root)
        if not any(part.startswith(".") for part in relative.parts):
            return relative.as_posix()
    target = root / COPIES_FOLDER / f"{source.parent.name}.ipynb"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    except OSError as exc:
        log.warning("could not copy the promotion notebook %s to %s: %s", source, target, exc)
        return None
    return target.relative_to(root).as_posix()
