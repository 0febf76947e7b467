"""Serving owns the gRPC tier: Python server, native front, settings, metrics, served-vector log.

``factory.create_server(config, store)`` builds one bound to ``config.port`` (0: a free one);
``nbfeatures serve`` reads the workspace settings and a serving YAML file and runs it until
SIGTERM. Only ``convert`` touches the generated code in ``_generated``. Nothing here imports
Spark, MLflow or Jupyter: a serving container installs ``nbfeatures[serving]`` alone.
"""

from __future__ import annotations
