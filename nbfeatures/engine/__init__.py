"""The engine owns batch work: two engines behind one port, and the offline store they share.

- ``port``: the ``Engine`` protocol (compute a version, read its offline rows, point-in-time
  join, latest value per entity); ``factory``: ``ENGINES`` and the one ``auto`` rule.
- ``spark/``: the Spark engine (session, family compute and offline writes, the Spark join).
- ``arrow/``: the in-process Arrow engine (pyarrow reads, numpy joins, the join index).
- Shared, importing neither engine: ``offline_store`` (manifests, version paths, Arrow
  reads), ``pit_rules`` (the join's column and key checks), ``ranges``, ``gcs``.

Importing this package loads no Spark; each module imports pyspark when first used.
"""
