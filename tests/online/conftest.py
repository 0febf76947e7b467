"""Fixtures of the online-store tests; defined in ``online_servers`` (servers started once)."""

from online_servers import cluster_url, embedded_settings, local_redis_url, store  # noqa: F401
