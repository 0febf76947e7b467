"""The ``nbfeatures`` command: catalog, offline compute, promotion and serving from a terminal.

    nbfeatures list                         every family, latest and production versions
    nbfeatures show NAME [--version N]      one family's versions and its definition
    nbfeatures search [TEXT] [--owner O] [--tag T]
    nbfeatures set NAME [--owner O] [--description D] [--tags a,b]
                        [--ttl 2h] [--retention 1d] [--freshness 30m]
    nbfeatures deprecate NAME --reason R [--replacement X] [--sunset YYYY-MM-DD]
    nbfeatures status                       the online store: embedded server, live versions;
                                            repairs what killed promotions left
    nbfeatures stop                         stop the workspace's embedded Redis server
    nbfeatures compute NAME [--version N] [--start T] [--end T] [--index-only]
                                            write the version's offline feature set
    nbfeatures promote NAME [--version N] [--engine auto|arrow|spark] [--recompute] [--restore]
                       [--allow-expired]   compute (or reuse the current offline set),
                                            materialize, verify, make it live; --restore puts
                                            production back after data loss
    nbfeatures cleanup [--dry-run]          release dead promotion locks, delete orphan
                                            keyspaces (neither live nor in the history)
    nbfeatures rollback NAME                back to the previous production version
    nbfeatures materialize --incremental (NAME... | --all) [--force] [--engine auto|arrow|spark]
    nbfeatures serve [--config serving.yaml] [--port P] [--processes N] [--data-plane native]
                                            serve online features over gRPC
    nbfeatures logs flush [--config serving.yaml]
                                            served-vector log to Parquet in the offline store
    nbfeatures monitor run (--family NAME ... | --all) [--kind K ...] [--in-process]
                                            drift, skew, freshness reports once; exit 0 ok,
                                            1 something in alert, 2 a report could not run
    nbfeatures monitor schedule             the reports on the cron schedules of nbfeatures.yaml
    nbfeatures reports list [--family F] [--kind K] [--status S] [--unreviewed] [--limit N]
    nbfeatures reports show ID [--html PATH]    one monitoring report: checks, notes, review
    nbfeatures reports review ID [--by NAME] [--comment TEXT]

Settings are read here, once (``nbfeatures.yaml`` in ``--workspace`` plus ``NBF_*``);
errors of the library become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import yaml

from nbfeatures.config import activate, load_settings
from nbfeatures.definitions import parse_tags
from nbfeatures.errors import NbfeaturesError

if TYPE_CHECKING:
    from nbfeatures.catalog import Catalog, FamilySummary
    from nbfeatures.config import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbfeatures", description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", help="workspace folder (default: $NBF_WORKSPACE or .)")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("list", help="list every family")

    show = commands.add_parser("show", help="a family's versions and definition")
    show.add_argument("name")
    show.add_argument("--version", type=int, help="the version whose definition to print")

    search = commands.add_parser("search", help="find families by text, owner or tag")
    search.add_argument("text", nargs="?")
    search.add_argument("--owner")
    search.add_argument("--tag")

    meta = commands.add_parser(
        "set", help="change owner, description, tags, ttl, retention, freshness (no new version)"
    )
    meta.add_argument("name")
    meta.add_argument("--owner")
    meta.add_argument("--description")
    meta.add_argument("--tags", help="comma-separated; replaces the current tags")
    meta.add_argument("--ttl", help="max age of a served value before it is STALE, e.g. 2h")
    meta.add_argument("--retention", help="how long past the ttl values are kept, e.g. 1d")
    meta.add_argument("--freshness", help="freshness SLA, e.g. 30m")

    deprecate = commands.add_parser("deprecate", help="deprecate a family")
    deprecate.add_argument("name")
    deprecate.add_argument("--reason", required=True)
    deprecate.add_argument("--replacement", help="the family to use instead")
    deprecate.add_argument(
        "--sunset",
        type=dt.date.fromisoformat,
        help="after this date (YYYY-MM-DD) new training sets refuse the family",
    )

    promote = commands.add_parser("promote", help="make a family version what production serves")
    promote.add_argument("name")
    promote.add_argument("--version", type=int, help="the version to promote (default: latest)")
    promote.add_argument(
        "--engine",
        choices=("auto", "arrow", "spark"),
        default="auto",
        help="writer: arrow (no JVM) or spark (executors); auto: arrow when Spark is local",
    )
    promote.add_argument(
        "--allow-expired",
        action="store_true",
        help="make it live even if its keyspace is empty or mostly past the ttl",
    )

    promote.add_argument(
        "--recompute",
        action="store_true",
        help="compute the offline set even when a current one can be reused",
    )
    promote.add_argument(
        "--restore",
        action="store_true",
        help="put the catalog's production version back into the online store (data loss)",
    )

    cleanup = commands.add_parser(
        "cleanup", help="release dead promotion locks and delete orphan keyspaces"
    )
    cleanup.add_argument("--dry-run", action="store_true", help="only say what would be done")

    rollback = commands.add_parser("rollback", help="serve the previous production version")
    rollback.add_argument("name")

    refresh = commands.add_parser("materialize", help="refresh live keyspaces from new events")
    refresh.add_argument("names", nargs="*", metavar="NAME")
    refresh.add_argument("--incremental", action="store_true", required=True)
    refresh.add_argument("--all", action="store_true", help="every family with a live version")
    refresh.add_argument("--force", action="store_true", help="also families within their SLA")
    refresh.add_argument(
        "--engine",
        choices=("auto", "arrow", "spark"),
        default="auto",
        help="writer: arrow (no JVM) or spark (executors); auto: arrow when Spark is local",
    )

    compute = commands.add_parser("compute", help="compute a version's offline feature set")
    compute.add_argument("name")
    compute.add_argument("--version", type=int, help="default: production, else the latest")
    compute.add_argument(
        "--start", type=dt.datetime.fromisoformat, help="first event time (ISO 8601, UTC)"
    )
    compute.add_argument(
        "--end", type=dt.datetime.fromisoformat, help="end of the range, exclusive (ISO 8601)"
    )
    compute.add_argument(
        "--index-only",
        action="store_true",
        help="only (re)write the join index of what is stored (no Spark)",
    )

    commands.add_parser("status", help="the online store: embedded server and live versions")
    commands.add_parser("stop", help="stop the workspace's embedded Redis server")

    serve = commands.add_parser("serve", help="serve online features over gRPC")
    serve.add_argument("--config", help="serving YAML file (see serving/example.yaml)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--metrics-port", type=int)
    serve.add_argument(
        "--processes", type=int, help="server processes sharing the port (default 1)"
    )
    serve.add_argument(
        "--data-plane",
        choices=["python", "native"],
        help="python (default) or native: the C++ front built by `make native`",
    )

    logs = commands.add_parser("logs", help="the served-vector log")
    logs.add_argument("action", choices=["flush"], help="flush: write it to Parquet and trim it")
    logs.add_argument("--config", help="serving YAML file (names the stream)")

    from nbfeatures.monitoring import monitor_cli, reports_cli

    monitor_cli.add_parser(commands)
    reports_cli.add_parser(commands)
    return parser


def _print_summaries(summaries: Sequence[FamilySummary]) -> None:
    if not summaries:
        print("no feature families")
        return
    print(f"{'family':<24}{'latest':>7}{'prod':>6}  {'status':<11}{'owner':<16}features")
    for s in summaries:
        production = f"v{s.production_version}" if s.production_version else "-"
        print(
            f"{s.name:<24}{'v' + str(s.latest_version):>7}{production:>6}  {s.status:<11}"
            f"{s.owner:<16}{', '.join(s.features)}"
        )


def _show(catalog: Catalog, name: str, version: int | None) -> None:
    history = catalog.history(name)
    print(f"{'version':<9}{'hash':<14}{'created (UTC)':<22}{'status':<12}aliases")
    for v in history:
        created = v.created_at.strftime("%Y-%m-%d %H:%M:%S")
        print(f"v{v.version:<8}{v.hash[:12]:<14}{created:<22}{v.status:<12}{','.join(v.aliases)}")
    chosen = catalog.get(name, version=version)
    if chosen.deprecation is not None:
        d = chosen.deprecation
        print(f"\ndeprecated: {d.reason}; replacement: {d.replacement or '-'}; sunset: {d.sunset}")
    print(f"\n# definition of {name} v{chosen.version}")
    print(yaml.safe_dump(chosen.family.to_dict(), sort_keys=False), end="")


def _repair(settings: Settings) -> None:
    """``status`` also sets right what killed promotions left (``promotion.repair``)."""
    from nbfeatures.online.store import OnlineStore
    from nbfeatures.promotion.lost import has_catalog
    from nbfeatures.promotion.repair import repair_all

    if not has_catalog(settings):
        return  # nor does it create a catalog
    if not settings.redis_url:
        from nbfeatures.online.embedded import running_embedded

        if running_embedded(settings) is None:
            return  # status never starts the embedded server
    try:
        store = OnlineStore.from_settings(settings)
        repairs = repair_all(settings, store)
    except Exception as exc:  # status still reports what it could read
        print(f"could not check promotions: {exc}", file=sys.stderr)
        return
    for repair in repairs:
        print(f"repaired {repair.line()}")


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = activate(load_settings(args.workspace))
    if args.command in ("status", "stop"):
        if args.command == "stop":
            from nbfeatures.online.status import stop

            return stop(settings)
        from nbfeatures.promotion.status import print_status

        code = print_status(settings)
        _repair(settings)
        return code
    if args.command == "monitor":
        from nbfeatures.monitoring import monitor_cli

        return monitor_cli.run(settings, args)
    if args.command in ("serve", "logs"):
        from nbfeatures.serving.config import load_server_config
        from nbfeatures.serving.main import flush_logs, serve

        overrides = vars(args) if args.command == "serve" else {}
        config = load_server_config(
            args.config,
            **{
                k: overrides.get(k)
                for k in ("host", "port", "metrics_port", "processes", "data_plane")
            },
        )
        return serve(settings, config) if args.command == "serve" else flush_logs(settings, config)
    if args.command == "reports":
        from nbfeatures.monitoring import reports_cli

        return reports_cli.run(settings, args)
    from nbfeatures.catalog import Catalog

    catalog = Catalog.from_settings(settings)
    if args.command == "list":
        _print_summaries(catalog.list())
    elif args.command == "show":
        _show(catalog, args.name, args.version)
    elif args.command == "search":
        _print_summaries(catalog.search(text=args.text, owner=args.owner, tag=args.tag))
    elif args.command == "set":
        from nbfeatures.definitions import format_duration
        from nbfeatures.promotion.metadata import set_metadata

        tags = parse_tags(args.tags) if args.tags is not None else None
        updated, rewritten = set_metadata(
            settings, catalog, args.name, owner=args.owner, description=args.description,
            tags=tags, ttl=args.ttl, retention=args.retention, freshness=args.freshness,
        )  # fmt: skip
        family = updated.family
        durations = ", ".join(
            f"{field} {format_duration(getattr(family, field)) or '-'}"
            for field in ("ttl", "retention", "freshness")
        )
        print(f"{updated.ref}: owner {family.owner}, tags {','.join(family.tags)}, {durations}")
        if rewritten:
            shown = ", ".join(f"v{v}" for v in rewritten)
            print(f"online layouts rewritten: {shown} (servers apply the new ttl on read)")
    elif args.command in ("promote", "rollback", "materialize", "cleanup"):
        from nbfeatures.promotion.cli import run_promotion_command

        return run_promotion_command(settings, args)
    elif args.command == "deprecate":
        done = catalog.deprecate(
            args.name, args.reason, replacement=args.replacement, sunset=args.sunset
        )
        print(f"{done.name} deprecated" + (f", sunset {args.sunset}" if args.sunset else ""))
    elif args.command == "compute" and args.index_only:
        from nbfeatures.compute import build_join_index

        folder = build_join_index(args.name, args.version, settings=settings, catalog=catalog)
        if folder is None:
            from nbfeatures.engine.arrow.join_index import MAX_ROWS

            print(
                f"no join index for {args.name}: indexes are kept for local offline roots up "
                f"to {MAX_ROWS:,} rows; its training sets read the Parquet"
            )
        else:
            print(f"join index: {folder}")
    elif args.command == "compute":
        from nbfeatures.compute import compute

        manifest = compute(
            args.name,
            args.version,
            start=args.start,
            end=args.end,
            settings=settings,
            catalog=catalog,
            progress=sys.stderr.isatty(),
        )
        from nbfeatures.engine.offline_store import version_path

        where = version_path(settings, manifest.family, manifest.version)
        print(
            f"{manifest.family} v{manifest.version}: {manifest.rows} rows, "
            f"{manifest.entities} entities in {where}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    try:
        code = run(argv)
    except NbfeaturesError as exc:
        print(f"nbfeatures: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
