"""On-demand owns request-time features: one Python function, run in batch and in the server.

    define_on_demand(name, body, entity_key=..., inputs={ref: type}, request={field: type}, ...)
    apply_on_demand(family, frame, input_types) -> DataFrame       the batch path (pandas)
    publish_on_demand(store, family, version, live=True)          make it servable (no Spark)

``training_set`` and the feature server both call ``OnDemandFunction.apply`` from
``nbfeatures.on_demand.function``, so the values of a request-time feature are computed by the
same code in batch and in serving. The server executes code registered in the catalog: serve
only catalogs whose writers you trust. Importing this package loads no Spark, MLflow or gRPC.
"""

from __future__ import annotations

from nbfeatures.on_demand.batch import apply_on_demand
from nbfeatures.on_demand.define import define_on_demand
from nbfeatures.on_demand.function import OnDemandFunction, input_column
from nbfeatures.on_demand.publish import OnDemandLayout, load_on_demand, publish_on_demand

__all__ = [
    "OnDemandFunction",
    "OnDemandLayout",
    "apply_on_demand",
    "define_on_demand",
    "input_column",
    "load_on_demand",
    "publish_on_demand",
]
