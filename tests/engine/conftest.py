"""Fixtures shared by the engine tests; defined in ``offline_fixtures`` (servers started once)."""

from offline_fixtures import any_spark, connect_spark, gcs_root  # noqa: F401
