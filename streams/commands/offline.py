"""``sentinel backtest`` (optionally scored against labels) and ``sentinel explain``: the engine over a file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson

from streams.commands.common import positive
from streams.commands.common import ruleset as load_rules
from streams.commands.common import settings as settings_from_env
from streams.core.allowlist import Allowlist, AllowlistError, changes_from_lines
from streams.core.events import parse_moment, wall_clock
from streams.shell.memory import offline_collections


def add_parsers(commands: Any) -> None:
    """The ``backtest`` and ``explain`` commands."""
    backtest = commands.add_parser("backtest", help="screen a JSONL file of events offline")
    backtest.add_argument("--input", required=True, help="JSONL, one typed event a line")
    backtest.add_argument("--output", help="where to write alerts as JSONL")
    backtest.add_argument("--rules", action="append", help="rule directory or file (repeatable)")
    backtest.add_argument(
        "--jobs", type=positive, default=1, help="processes to share the accounts over (same output; default 1)"
    )
    backtest.add_argument("--labels", help="CSV of event_id or account_id, label[, typology]: score the rules")
    backtest.add_argument("--score-output", help="with --labels: also write the scores and examples as JSON here")
    _allowlist_argument(backtest)
    backtest.set_defaults(func=cmd_backtest)

    explain = commands.add_parser("explain", help="every rule's verdict on one event (or an account's events), and why")
    explain.add_argument("--input", required=True, help="JSONL of events: the event and what came before it")
    target = explain.add_mutually_exclusive_group(required=True)
    target.add_argument("--event", help="the event_id to explain")
    target.add_argument("--account", help="explain every event of this account (see --since, --until)")
    explain.add_argument("--since", help="with --account: from this time (RFC 3339)")
    explain.add_argument("--until", help="with --account: before this time (RFC 3339)")
    explain.add_argument("--rules", action="append", help="rule directory or file (repeatable)")
    explain.add_argument("--json", action="store_true", help="one JSON object per event")
    _allowlist_argument(explain)
    explain.set_defaults(func=cmd_explain)


def _allowlist_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allowlist", help="allowlist changes as JSONL (e.g. `sentinel allow history --json`), applied in event time"
    )


def _allowlist(path: str | None) -> Allowlist | None:
    if path is None:
        return None
    try:
        changes = changes_from_lines(Path(path).read_bytes().splitlines())
    except OSError as exc:
        raise SystemExit(f"sentinel: {path}: {exc.strerror}") from None
    except AllowlistError as exc:
        raise SystemExit(f"sentinel: {path}: {exc}") from None
    book = Allowlist()
    for change, reason in book.apply_all(changes):
        print(f"sentinel: {path}: change of {change.entry_id} ignored: {reason}")
    return book


def cmd_backtest(args: argparse.Namespace) -> int:
    """Screen a file; with ``--labels``, score every rule and typology against them."""
    from streams.core.backtest import backtest_file
    from streams.core.scoring import LabelError, Labels, score

    ruleset = load_rules(args.rules or settings_from_env().rule_paths)
    labels = None
    if args.labels:
        try:
            labels = Labels.from_csv(Path(args.labels).read_text(), args.labels)
        except OSError as exc:
            raise SystemExit(f"sentinel: {args.labels}: {exc.strerror}") from None
        except LabelError as exc:
            raise SystemExit(f"sentinel: {exc}") from None
    allowlist = _allowlist(args.allowlist)
    try:
        output = Path(args.output) if args.output else None
        with offline_collections():
            report = backtest_file(
                Path(args.input),
                ruleset,
                output,
                clock=wall_clock,
                jobs=args.jobs,
                keep_alerts=labels is not None,
                allowlist=allowlist,
            )
    except OSError as exc:
        raise SystemExit(f"sentinel: {exc.filename}: {exc.strerror}") from None
    print(f"ruleset {ruleset.version}")
    print(report.table())
    if labels is not None:
        scored = score(report.alerts, labels, [(r.spec.id, r.spec.typology) for r in ruleset.rules if r.spec.enabled])
        print()
        print(scored.table())
        if args.score_output:
            Path(args.score_output).write_bytes(orjson.dumps(scored.as_dict(), option=orjson.OPT_INDENT_2))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Print every rule's verdict and reason for the chosen event(s)."""
    from streams.core.explain import explain_lines

    if (args.since or args.until) and not args.account:
        raise SystemExit("sentinel: --since and --until go with --account")
    ruleset = load_rules(args.rules or settings_from_env().rule_paths)
    try:
        lines = [line for line in Path(args.input).read_bytes().splitlines() if line.strip()]
    except OSError as exc:
        raise SystemExit(f"sentinel: {args.input}: {exc.strerror}") from None
    try:
        since = parse_moment(args.since) if args.since else None
        until = parse_moment(args.until) if args.until else None
    except ValueError as exc:
        raise SystemExit(f"sentinel: --since/--until: {exc}") from None
    try:
        explained = explain_lines(
            lines,
            ruleset,
            clock=wall_clock,
            allowlist=_allowlist(args.allowlist),
            event_id=args.event,
            account_id=args.account,
            since=since,
            until=until,
        )
    except ValueError as exc:
        raise SystemExit(f"sentinel: {args.input}: {exc}") from None
    for explanation in explained:
        print(orjson.dumps(explanation.as_dict()).decode() if args.json else explanation.text())
    if not explained and not args.json:
        print(f"no events of account {args.account} in that time range")
    return 0
