"""Templates own the papermill notebooks shipped in the wheel: ``promote.ipynb`` (promotion)."""
