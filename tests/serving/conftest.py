"""Fixtures of the serving tests; defined in ``serving_fixtures`` (Redis started once)."""

from serving_fixtures import data_plane, redis_server, store  # noqa: F401
