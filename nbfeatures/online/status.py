"""What ``nbfeatures stop`` does to the online store (``nbfeatures status`` is in promotion)."""

from __future__ import annotations

from nbfeatures.config import Settings
from nbfeatures.online.embedded import stop_embedded


def stop(settings: Settings) -> int:
    """Stop the embedded server; a configured ``redis_url`` is never stopped from here."""
    if settings.redis_url:
        print("redis_url is configured: nbfeatures does not stop that server")
        return 0
    stopped = stop_embedded(settings)
    print("embedded redis stopped" if stopped else "embedded redis was not running")
    return 0
