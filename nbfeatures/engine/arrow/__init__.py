"""The in-process Arrow engine: pyarrow reads the offline Parquet, numpy joins; no JVM."""
