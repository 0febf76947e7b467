"""Fixtures of the serving tests; defined in ``serving_fixtures`` (Redis started once)."""

from serving_fixtures import redis_server, store  # noqa: F401
