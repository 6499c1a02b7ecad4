"""The ``sentinel`` command.

    sentinel worker                         run a screening worker (Faust)
    sentinel topics create                  create the input, alert and dead-letter topics
    sentinel rules check [PATH ...]         validate rule files and print what they define
    sentinel rules test [PATH ...]          run the test cases kept beside each rule
    sentinel rules publish [DIR ...]        switch every worker to these rules (control topic, signed)
    sentinel keys generate NAME             an Ed25519 key pair for signing published rules
    sentinel backtest --input F --output A  screen a JSONL file offline with the same engine (--labels: scored)
    sentinel explain --input F --event ID   every rule's verdict on one event, and why
    sentinel allow add|revoke|list|history  allowlist entries with expiry and audit (signed)
    sentinel lists import-ofac SDN.xml.bz2  write rules/lists/ofac-sdn.csv from OFAC's SDN Advanced XML
    sentinel lists diff OLD NEW             addresses added and removed per entity
    sentinel rescreen --since 365d --old L  alert on past events touching newly designated addresses
    sentinel generate --events N --output F write a synthetic event stream (fixed seed)
    sentinel feed FILE [--now] [--new-ids]  produce a JSONL file of events to the input topics
    sentinel watch [--from-beginning]       print alerts and dead letters as they arrive
    sentinel console                        the alert queue in the browser, with triage actions

Connection settings come from the environment (``KAFKA_BOOTSTRAP_SERVERS``,
``SENTINEL_*``; see docs/operations.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from streams import __version__
from streams.commands.allow import add_parsers as add_allow_parsers
from streams.commands.common import existing_file, positive
from streams.commands.common import ruleset as load_rules
from streams.commands.common import settings as settings_from_env
from streams.commands.control import cmd_keys_generate, cmd_rules_publish
from streams.commands.offline import add_parsers as add_offline_parsers
from streams.core.events import wall_clock
from streams.core.lists import AddressList
from streams.shell.memory import offline_collections


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.shell.app import run_worker
    from streams.shell.clients import check_connection
    from streams.shell.control import control_trust
    from streams.shell.signing import KeyFileError

    settings = settings_from_env()
    load_rules(settings.rule_paths)  # fail fast, with a clear message, before Faust starts
    try:
        control_trust(settings)
    except KeyFileError as exc:
        raise SystemExit(f"sentinel: SENTINEL_CONTROL_PUBLIC_KEYS: {exc}") from None
    try:
        # One attempt: a wrong password is a configuration error, not a reason to retry forever.
        asyncio.run(check_connection(settings, tuple(settings.topic_event_types)))
    except ConnectionError as exc:
        raise SystemExit(f"sentinel: {exc}") from None
    run_worker(settings)
    return 0


def cmd_topics_create(args: argparse.Namespace) -> int:
    from streams.shell.topics import create_topics

    settings = settings_from_env()
    created = asyncio.run(create_topics(settings, args.replication_factor))
    print(f"created: {', '.join(created)}" if created else "all topics already exist")
    return 0


def cmd_rules_check(args: argparse.Namespace) -> int:
    paths = args.paths or settings_from_env().rule_paths
    ruleset = load_rules(paths)
    print(
        f"ruleset {ruleset.version}: {len(ruleset.files)} file(s), {len(ruleset.rules)} rule(s), "
        f"{len(ruleset.lists)} list(s)"
    )
    for address_list in ruleset.lists.values():
        info = address_list.info
        dupes = f", {address_list.duplicates} duplicate(s) merged" if address_list.duplicates else ""
        print(
            f"  list {info.id:<24} {len(address_list):>9} addresses  {info.category:<10} version {info.version}{dupes}"
        )
    for rule in ruleset.rules:
        spec = rule.spec
        state = "" if spec.enabled else "  (disabled)"
        print(
            f"  rule {spec.id:<32} {spec.version:<8} {spec.typology:<18} {spec.severity:<8} "
            f"{spec.action:<6} {spec.mode}{state}"
        )
    return 0


def cmd_rules_test(args: argparse.Namespace) -> int:
    from streams.core.rule_tests import run_rule_tests

    ruleset = load_rules(args.paths or settings_from_env().rule_paths)
    results = run_rule_tests(ruleset)
    failed = 0
    for result in results:
        if result.skipped:
            print(f"SKIP  {result.rule_id}: {result.name} ({result.problem})")
        elif result.passed:
            print(f"PASS  {result.rule_id}: {result.name}")
        else:
            failed += 1
            print(f"FAIL  {result.rule_id}: {result.name}\n      {result.problem}")
    untested = [r.spec.id for r in ruleset.rules if not r.spec.tests]
    print(f"\n{len(results) - failed} passed, {failed} failed")
    if untested:
        print(f"rules without tests: {', '.join(untested)}")
    return 1 if failed or not results else 0


def cmd_lists_import_ofac(args: argparse.Namespace) -> int:
    from streams.core.ofac import read_sdn_advanced, write_list

    source = existing_file(args.file)
    started = time.perf_counter()
    try:
        report = read_sdn_advanced(source)
    except Exception as exc:  # a damaged download must say so, not dump a traceback
        raise SystemExit(f"sentinel: {source}: not a readable SDN Advanced XML file: {exc}") from None
    if not report.addresses:
        raise SystemExit(f"sentinel: {source}: no digital-currency addresses found; refusing to write an empty list")
    output = Path(args.output)
    source_text = f"US Treasury OFAC SDN Advanced XML ({source.name}), issued {report.issue_date}"
    write_list(report, output, source_text, imported_at=time.time())
    print(report.summary())
    print(f"wrote {output} in {time.perf_counter() - started:.1f}s")
    if args.publish:
        return cmd_rules_publish(
            argparse.Namespace(paths=None, source=f"OFAC SDN {report.issue_date}", key=args.key, unsigned=False)
        )
    return 0


def cmd_lists_diff(args: argparse.Namespace) -> int:
    from streams.core.ofac import diff_lists
    from streams.core.rescreen import load_sdn_list

    old, new = load_sdn_list(Path(args.old)), load_sdn_list(Path(args.new))

    def by_key(address_list: AddressList) -> dict[str, tuple[str, str]]:
        return {key: (e.address, e.label or "unnamed") for key, e in address_list.entries.items()}

    changes = diff_lists(by_key(old), by_key(new))
    added = sum(len(c.added) for c in changes)
    removed = sum(len(c.removed) for c in changes)
    print(f"{old.info.version} -> {new.info.version}: {added} added, {removed} removed, {len(changes)} entities")
    for change in changes:
        print(f"\n{change.entity}: +{len(change.added)} -{len(change.removed)}")
        print("".join(f"  + {a}\n" for a in change.added) + "".join(f"  - {a}\n" for a in change.removed), end="")
    return 0


def cmd_rescreen(args: argparse.Namespace) -> int:
    from streams.core import rescreen
    from streams.shell import replay

    settings = settings_from_env()
    new_path = Path(args.new)
    added = rescreen.added_between(rescreen.load_sdn_list(Path(args.old)), rescreen.load_sdn_list(new_path))
    print(f"{len(added)} address(es) on {new_path.name} ({added.info.version}) that {args.old} did not have")
    screener = rescreen.Rescreener(added, settings.topic_event_types, clock=wall_clock)
    report = rescreen.RescreenReport()
    try:
        since = rescreen.parse_since(args.since, time.time())
    except ValueError as exc:
        raise SystemExit(f"sentinel: --since: {exc}") from None
    if args.input:
        with offline_collections():
            screener.screen_all(rescreen.file_events(Path(args.input)), report, jobs=args.jobs)
    else:
        now = time.time()
        until = rescreen.parse_since(args.until, now) if args.until else rescreen.default_until(new_path, now)
        started = time.perf_counter()
        records = asyncio.run(replay.topic_events(settings, since, until))
        report.seconds += time.perf_counter() - started
        with offline_collections():
            screener.screen_all(records, report, jobs=args.jobs)
    if args.output:
        Path(args.output).write_bytes(b"".join(a.to_json() + b"\n" for a in report.alerts))
    if not args.input and not args.dry_run:
        present = asyncio.run(replay.existing_alert_ids(settings, since))
        fresh = [a for a in report.alerts if a.alert_id not in present]
        report.already_alerted = len(report.alerts) - len(fresh)
        asyncio.run(replay.produce_alerts(settings, fresh))
        report.produced = len(fresh)
    print(report.table())
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from streams.core.synthetic import write_synthetic

    count = write_synthetic(
        Path(args.output), args.events, seed=args.seed, accounts=args.accounts, poison_share=args.poison
    )
    print(f"wrote {count} events to {args.output}")
    return 0


def cmd_feed(args: argparse.Namespace) -> int:
    from streams.shell.feed import produce_file

    path = existing_file(args.file)
    count = asyncio.run(produce_file(path, settings_from_env(), shift_to_now=args.now, new_ids=args.new_ids))
    print(f"produced {count} records from {path}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from streams.shell.watch import watch

    try:
        asyncio.run(watch(settings_from_env(), from_beginning=args.from_beginning, stop_after=args.seconds))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    from streams.shell.console.run import serve

    settings = settings_from_env()
    if args.port is not None:
        settings = settings.model_copy(update={"console_port": args.port})
    asyncio.run(serve(settings))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sentinel``."""
    parser = argparse.ArgumentParser(prog="sentinel", description="deposit-sentinel: freeze alerts from Kafka.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("worker", help="run a screening worker").set_defaults(func=cmd_worker)

    topics = commands.add_parser("topics", help="manage the project's topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    create = topics_sub.add_parser("create", help="create missing topics")
    create.add_argument("--replication-factor", type=int, default=1)
    create.set_defaults(func=cmd_topics_create)

    rules = commands.add_parser("rules", help="work with rule files")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_sub.add_parser("check", help="validate rule files and print a summary")
    check.add_argument("paths", nargs="*", help="rule directories or files (default: $SENTINEL_RULES)")
    check.set_defaults(func=cmd_rules_check)

    test = rules_sub.add_parser("test", help="run the test cases kept beside each rule")
    test.add_argument("paths", nargs="*", help="rule directories or files (default: $SENTINEL_RULES)")
    test.set_defaults(func=cmd_rules_test)

    publish = rules_sub.add_parser("publish", help="send rule directories to every worker (control topic)")
    publish.add_argument("paths", nargs="*", help="rule directories (default: $SENTINEL_RULES)")
    publish.add_argument("--source", help="a note on where this ruleset comes from (e.g. a git commit)")
    publish.add_argument("--key", type=Path, help="private key to sign with (default: $SENTINEL_CONTROL_SIGNING_KEY)")
    publish.add_argument(
        "--unsigned", action="store_true", help="publish without a signature (workers refuse it unless told not to)"
    )
    publish.set_defaults(func=cmd_rules_publish)

    keys = commands.add_parser("keys", help="signing keys for the control topic")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    generate_keys = keys_sub.add_parser("generate", help="write a new Ed25519 key pair (NAME.key, NAME.pub)")
    generate_keys.add_argument("name", help="file name of the pair, e.g. publisher-2026-11")
    generate_keys.add_argument("--directory", default=".", help="where to write the two files")
    generate_keys.set_defaults(func=cmd_keys_generate)

    add_allow_parsers(commands)

    lists = commands.add_parser("lists", help="import and compare address lists")
    lists_sub = lists.add_subparsers(dest="lists_command", required=True)
    importer = lists_sub.add_parser("import-ofac", help="write the OFAC list from an SDN Advanced XML file")
    importer.add_argument("file", help="sdn_advanced.xml, .xml.bz2 or .xml.gz")
    importer.add_argument("--output", default="rules/lists/ofac-sdn.csv")
    importer.add_argument("--publish", action="store_true", help="then send the rules to every worker")
    importer.add_argument(
        "--key", type=Path, help="with --publish: the signing key (default: $SENTINEL_CONTROL_SIGNING_KEY)"
    )
    importer.set_defaults(func=cmd_lists_import_ofac)
    differ = lists_sub.add_parser("diff", help="addresses added and removed per entity between two OFAC lists")
    differ.add_argument("old", help="list CSV or SDN Advanced XML")
    differ.add_argument("new", help="list CSV or SDN Advanced XML")
    differ.set_defaults(func=cmd_lists_diff)

    rescreen = commands.add_parser("rescreen", help="find past events touching newly designated addresses")
    rescreen.add_argument("--since", required=True, help="how far back: 365d, or a date such as 2025-01-01")
    rescreen.add_argument("--until", help="up to (default: when the new list was imported)")
    rescreen.add_argument("--old", required=True, help="the OFAC list before the update (CSV or XML)")
    rescreen.add_argument("--new", default="rules/lists/ofac-sdn.csv", help="the OFAC list after it")
    rescreen.add_argument("--input", help="a JSONL file of typed events instead of the topics")
    rescreen.add_argument("--output", help="also write the alerts found to this JSONL file")
    rescreen.add_argument("--dry-run", action="store_true", help="report, write nothing to the alert topic")
    rescreen.add_argument(
        "--jobs", type=positive, default=1, help="processes to share the accounts over (same output; default 1)"
    )
    rescreen.set_defaults(func=cmd_rescreen)

    add_offline_parsers(commands)

    generate = commands.add_parser("generate", help="write a synthetic JSONL event stream (benchmarks)")
    generate.add_argument("--events", type=int, default=1_000_000)
    generate.add_argument("--output", required=True)
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument("--accounts", type=int, default=1_000_000)
    generate.add_argument("--poison", type=float, default=0.0, help="share of bad lines, e.g. 0.001")
    generate.set_defaults(func=cmd_generate)

    feed = commands.add_parser("feed", help="produce a JSONL file of events to the input topics")
    feed.add_argument("file")
    feed.add_argument("--now", action="store_true", help="shift timestamps so the last event is now")
    feed.add_argument(
        "--new-ids",
        action="store_true",
        help="suffix event ids with this moment, so a file fed again is screened again (not dropped as resends)",
    )
    feed.set_defaults(func=cmd_feed)

    watch = commands.add_parser("watch", help="print alerts and dead letters as they arrive")
    watch.add_argument("--from-beginning", action="store_true")
    watch.add_argument("--seconds", type=float, help="stop after this many seconds")
    watch.set_defaults(func=cmd_watch)

    console = commands.add_parser("console", help="the alert queue in the browser, with triage actions")
    console.add_argument("--port", type=int, help="port to serve on (default: $SENTINEL_CONSOLE_PORT, 9300)")
    console.set_defaults(func=cmd_console)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sentinel`` console script."""
    args = build_parser().parse_args(argv)
    # The worker logs its progress; the other commands print only their results and problems.
    level = logging.INFO if args.command in ("worker", "console") else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except RuntimeError as exc:  # aiokafka's errors are RuntimeErrors; imported only when one happens
        from aiokafka.errors import KafkaError

        from streams.shell.clients import explain_refusal

        if not isinstance(exc, KafkaError):
            raise
        # A refusal (ACLs, TLS, an unreachable cluster) is a plain message, not a traceback.
        raise SystemExit(f"sentinel: {asyncio.run(explain_refusal(settings_from_env(), exc))}") from None


if __name__ == "__main__":
    sys.exit(main())
