"""Batch engine: the Spark session, running transformations, offline store, point-in-time joins.

Importing this package loads no Spark; each module imports pyspark when first used.
"""
