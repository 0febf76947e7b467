"""Redis clients from URLs: standalone, TLS, AUTH, unix sockets and Redis Cluster.

    redis://[user:password@]host:6379/0         plain TCP (AUTH from the URL's credentials)
    rediss://[user:password@]host:6380/0?ssl_ca_certs=/ca.pem&ssl_cert_reqs=required
                                                TLS; redis-py reads the ``ssl_*`` options
    unix:///path/redis.sock[?password=...]      a unix socket (the embedded server)
    redis+cluster://host:7000  rediss+cluster://host:7000
                                                Redis Cluster, discovered from any one node

The cluster is chosen by the scheme, not a query option, so a URL says what it is at a glance
and the standalone URL forms keep redis-py's own meaning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbfeatures._deps import require
from nbfeatures.errors import OnlineStoreUnavailable

if TYPE_CHECKING:
    import redis

    RedisClient = redis.Redis[Any] | redis.RedisCluster[Any]

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user + ':' if user else ':'}***@{host}"


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in _CLUSTER_SCHEMES


def client_from_url(url: str, **options: Any) -> RedisClient:
    """A connected client for ``url``; fails with ``OnlineStoreUnavailable`` if unreachable.

    ``options`` go to redis-py (e.g. ``socket_timeout``). The connection is checked with a
    ``PING`` so a wrong password or host fails here, clearly, and not on the first read.
    """
    redis = require("redis", "online")
    scheme, _, rest = url.partition("://")
    try:
        client: RedisClient
        if scheme.lower() in _CLUSTER_SCHEMES:
            plain = f"{_CLUSTER_SCHEMES[scheme.lower()]}://{rest}"
            client = redis.RedisCluster.from_url(plain, **options)
        else:
            client = redis.Redis.from_url(url, **options)
        client.ping()
    except redis.AuthenticationError as exc:
        raise OnlineStoreUnavailable(
            redacted(url), f"authentication failed ({exc}); check the password in the URL"
        ) from None
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise OnlineStoreUnavailable(
                redacted(url), f"authentication failed ({exc}); check the password in the URL"
            ) from None
        raise OnlineStoreUnavailable(redacted(url), str(exc)) from None
    except (
        redis.ConnectionError,
        redis.TimeoutError,
        redis.exceptions.RedisClusterException,
    ) as exc:
        raise OnlineStoreUnavailable(redacted(url), f"cannot connect: {exc}") from None
    except ValueError as exc:
        raise OnlineStoreUnavailable(redacted(url), f"not a usable Redis URL: {exc}") from None
    return client
