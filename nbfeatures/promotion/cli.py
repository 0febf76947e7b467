"""The promotion commands of ``nbfeatures``: promote, rollback, materialize --incremental,
cleanup."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from nbfeatures.errors import ConfigError

if TYPE_CHECKING:
    from nbfeatures.config import Settings
    from nbfeatures.promotion.records import StepEvent


def _print_step(event: StepEvent) -> None:
    print(event.line(), file=sys.stderr, flush=True)


def run_promotion_command(settings: Settings, args: Any) -> int:
    """Run one parsed promotion command; library errors propagate to ``cli.main``."""
    from nbfeatures import promotion

    if args.command == "promote":
        from nbfeatures.promotion.records import PromotionOptions
        from nbfeatures.promotion.reuse import offline_line

        options = PromotionOptions(
            engine=args.engine,
            allow_expired=args.allow_expired,
            recompute=args.recompute,
            restore=args.restore,
        )
        record = promotion.promote(
            settings, args.name, args.version, progress=_print_step, options=options
        )
        before = f"v{record.previous}" if record.previous is not None else "nothing"
        print(
            f"{record.family} v{record.version} is live (was {before}) after "
            f"{record.seconds:.1f} s; notebook {record.notebook}; MLflow run {record.run_id}"
        )
        if record.keyspace_line():
            print(f"{record.family} v{record.version}: {record.keyspace_line()}")
        if args.restore:
            print(
                f"restored {record.family} v{record.version}, the production version, into "
                "the online store; the production alias is unchanged"
            )
        offline = offline_line(record.results)
        if offline is not None:
            print(f"offline set: {offline}")
    elif args.command == "cleanup":
        from nbfeatures.online.store import OnlineStore
        from nbfeatures.promotion.leftovers import clean_leftovers

        store = OnlineStore.from_settings(settings)
        lines = clean_leftovers(store, dry_run=args.dry_run)
        for line in lines:
            print(line)
        if not lines:
            print("nothing to clean up: no dead promotion locks, no orphan keyspaces")
    elif args.command == "rollback":
        version = promotion.rollback(settings, args.name)
        print(f"{args.name} rolled back: v{version} is live")
    else:
        from nbfeatures.promotion.incremental import refresh_all

        if args.all == bool(args.names):
            raise ConfigError("materialize", "name the families to refresh, or pass --all")
        if args.all:
            results = refresh_all(settings, force=args.force, engine=args.engine)
        else:
            found = [
                promotion.refresh(settings, n, force=args.force, engine=args.engine)
                for n in args.names
            ]
            results = [r for r in found if r is not None]
        for result in results:
            print(result.line())
        if not results:
            print("no live families to refresh")
    return 0
