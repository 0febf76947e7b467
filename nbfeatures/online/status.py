"""What ``nbfeatures status`` and ``nbfeatures stop`` print about the online store."""

from __future__ import annotations

from nbfeatures.config import Settings
from nbfeatures.online.connect import redacted
from nbfeatures.online.embedded import embedded_paths, running_embedded, stop_embedded
from nbfeatures.online.store import OnlineStore
from nbfeatures.online.version_stats import version_stats


def print_status(settings: Settings) -> int:
    """Print the server (embedded: socket, pid, memory, keys) and the live version per family.

    Then each family whose production version (catalog) is not live and whole in Redis, and
    exit 1 if any is (``nbfeatures.promotion.lost``). Never starts the embedded server, nor
    creates a catalog: a status check must not change what it reports.
    """
    if settings.redis_url:
        print(f"online store: {redacted(settings.redis_url)}")
        store = OnlineStore.from_url(settings.redis_url)
    else:
        server = running_embedded(settings)
        if server is None:
            print(f"embedded redis: not running (socket {embedded_paths(settings).socket})")
            return 0
        store = OnlineStore.from_url(server.url)
        memory = store.client.info("memory")
        print(f"embedded redis: running, pid {server.pid}")
        print(f"  socket  {server.socket}")
        print(f"  data    {embedded_paths(settings).data_dir}")
        print(f"  memory  {memory.get('used_memory_human', '?')}")
        print(f"  keys    {store.client.dbsize()}")
    live = store.live_versions()
    if not live:
        print("no live versions")
    for family, version in sorted(live.items()):
        print(f"{family:<32} live v{version}")
        stats = version_stats(store, family, version)  # entities, newest event, expired share
        if stats is not None:
            print(f"{'':<32} {stats.line()}")
    from nbfeatures.promotion.lost import print_lost_production  # the catalog's production

    code = print_lost_production(settings, store)
    from nbfeatures.promotion.leftovers import status_lines  # killed promotions' leftovers

    for line in status_lines(store):
        print(line)
    store.close()
    return code


def stop(settings: Settings) -> int:
    """Stop the embedded server; a configured ``redis_url`` is never stopped from here."""
    if settings.redis_url:
        print("redis_url is configured: nbfeatures does not stop that server")
        return 0
    stopped = stop_embedded(settings)
    print("embedded redis stopped" if stopped else "embedded redis was not running")
    return 0
