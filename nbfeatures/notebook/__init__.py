"""The notebook package owns the ``%%feature`` magics, the cell state and the preview widget.

Importing this package loads IPython and ipywidgets, so ``nbfeatures`` imports it only
inside ``load_ipython_extension``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbfeatures.notebook.state import FeatureCell, configure, current

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["FeatureCell", "configure", "current", "load_ipython_extension"]


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Register ``%nbf_config``, ``%nbf_source``, ``%%feature`` and ``%features``."""
    from nbfeatures.notebook.magics import FeatureMagics

    ipython.register_magics(FeatureMagics)
