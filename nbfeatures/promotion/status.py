"""What ``nbfeatures status`` prints: the online store, live versions and what promotions left.

It sits above ``online/`` because it also asks the catalog (is production lost?) and the
promotion locks (did a promotion die holding one?).
"""

from __future__ import annotations

from nbfeatures.config import Settings
from nbfeatures.online.connect import redacted
from nbfeatures.online.embedded import embedded_paths, running_embedded
from nbfeatures.online.store import OnlineStore
from nbfeatures.online.version_stats import version_stats
from nbfeatures.promotion.leftovers import status_lines
from nbfeatures.promotion.lost import print_lost_production


def print_status(settings: Settings) -> int:
    """Print the server (embedded: socket, pid, memory, keys) and the live version per family.

    Then each family whose production version (catalog) is not live and whole in Redis, and
    exit 1 if any is (``nbfeatures.promotion.lost``). Never starts the embedded server, nor
    creates a catalog: a status check must not change what it reports.
    """
    if settings.redis_url:
        print(f"online store: {redacted(settings.redis_url)}")
        store = OnlineStore.from_url(settings.redis_url, settings.key_prefix)
    else:
        server = running_embedded(settings)
        if server is None:
            print(f"embedded redis: not running (socket {embedded_paths(settings).socket})")
            return 0
        store = OnlineStore.from_url(server.url, settings.key_prefix)
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
    code = print_lost_production(settings, store)  # the catalog's production, lost?
    for line in status_lines(store):  # what killed promotions left
        print(line)
    store.close()
    return code
