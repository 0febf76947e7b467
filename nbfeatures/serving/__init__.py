"""Feature serving over gRPC: the server, its settings, metrics and served-vector log.

``create_server(config, store)`` builds a server bound to ``config.port`` (0 picks a free one);
``nbfeatures serve`` reads the workspace settings and a serving YAML file and runs it until
SIGTERM. Only ``convert`` touches the generated code in ``_generated``. Nothing here imports
Spark, MLflow or Jupyter: a serving container installs ``nbfeatures[serving]`` alone.
"""

from __future__ import annotations
