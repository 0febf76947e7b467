"""The Spark engine: session, family compute and offline writes, the Spark point-in-time join."""
