"""Fixtures of the serving tests; defined in ``serving_fixtures`` and ``servers`` (Redis
started once)."""

from servers import redis_server  # noqa: F401
from serving_fixtures import data_plane, store  # noqa: F401
