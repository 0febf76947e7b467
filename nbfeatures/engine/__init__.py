"""The engine owns batch work: Spark and in-process Arrow compute, offline store, PIT joins.

Importing this package loads no Spark; each module imports pyspark when first used.
"""
