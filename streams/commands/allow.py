"""``sentinel allow add|revoke|list|history``: allowlist entries, signed, on the allowlist topic.

An entry is checked against the rules before it is written (the rule or typology exists; no
rule it would touch is ``overridable: false``), signed with the same key as rules bundles,
and every worker applies it within about a second. Nothing is ever edited in place: a
revoke is a new record, and ``history`` prints every change with who, why and when.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from streams.commands.common import ruleset as load_rules
from streams.commands.common import settings as settings_from_env
from streams.core.allowlist import Allowlist, AllowlistChange, describe, parse_until, scope_problem
from streams.core.events import format_timestamp
from streams.core.rules.engine import Ruleset
from streams.shell.settings import Settings


def add_parsers(commands: Any) -> None:
    """The ``allow`` command and its subcommands."""
    allow = commands.add_parser("allow", help="allowlist entries: suppress a rule's findings for a while, with audit")
    sub = allow.add_subparsers(dest="allow_command", required=True)

    add = sub.add_parser("add", help="add an entry (signed) that every worker applies within seconds")
    target = add.add_mutually_exclusive_group(required=True)
    target.add_argument("--rule", help="the rule id whose findings the entry covers")
    target.add_argument("--typology", help="or every overridable rule of this typology")
    who = add.add_mutually_exclusive_group(required=True)
    who.add_argument("--account", help="the account the entry covers")
    who.add_argument("--address", help="or the counterparty address it covers")
    add.add_argument("--until", required=True, help="expiry: a date (the end of that day, UTC), a time, or 30d / 12h")
    add.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    add.add_argument("--by", required=True, help="who decided (kept in the audit trail)")
    add.add_argument(
        "--rules",
        action="append",
        help="the rules the workers run, to check the scope against (repeatable; default: $SENTINEL_RULES)",
    )
    _signing_arguments(add)
    add.set_defaults(func=cmd_allow_add)

    revoke = sub.add_parser("revoke", help="end an entry now")
    revoke.add_argument("entry_id")
    revoke.add_argument("--reason", required=True)
    revoke.add_argument("--by", required=True)
    _signing_arguments(revoke)
    revoke.set_defaults(func=cmd_allow_revoke)

    listing = sub.add_parser("list", help="the entries in force now (--all: expired and revoked too)")
    listing.add_argument("--all", action="store_true")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=cmd_allow_list)

    history = sub.add_parser("history", help="every add and revoke, with who, why and when")
    history.add_argument("entry_id", nargs="?")
    history.add_argument("--json", action="store_true", help="one JSON object per line")
    history.set_defaults(func=cmd_allow_history)


def _signing_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", type=Path, help="private key to sign with (default: $SENTINEL_CONTROL_SIGNING_KEY)")
    parser.add_argument(
        "--unsigned", action="store_true", help="write it unsigned (only workers that accept unsigned changes apply it)"
    )


def check_scope(ruleset: Ruleset, rule_id: str | None, typology: str | None) -> None:
    """Refuse an entry for an unknown rule or typology, or one that would touch a non-overridable rule."""
    problem = scope_problem((r.spec for r in ruleset.rules), rule_id, typology)
    if problem is not None:
        raise SystemExit(f"sentinel: {problem}")


def cmd_allow_add(args: argparse.Namespace) -> int:
    """Check, sign and write one new entry."""
    settings = settings_from_env()
    check_scope(load_rules(args.rules or settings.rule_paths), args.rule, args.typology)
    now = datetime.now(UTC)
    change = _change(
        action="add",
        entry_id=f"al-{secrets.token_hex(6)}",
        by=args.by,
        reason=args.reason,
        at=now,
        rule_id=args.rule,
        typology=args.typology,
        account_id=args.account,
        address=args.address,
        until=_until(args.until, now),
    )
    signer = _publish(settings, change, args)
    assert change.until is not None
    print(f"added {change.entry_id}: {change.scope}, until {format_timestamp(change.until)} ({signer})")
    return 0


def cmd_allow_revoke(args: argparse.Namespace) -> int:
    """End an entry: a revoke record, so the add stays in the history."""
    settings = settings_from_env()
    book, _ = _read(settings)
    now = datetime.now(UTC)
    status = book.status(args.entry_id, now)
    if status != "active":
        raise SystemExit(f"sentinel: entry {args.entry_id} is {status}, not active: nothing to revoke")
    change = _change(action="revoke", entry_id=args.entry_id, by=args.by, reason=args.reason, at=now)
    signer = _publish(settings, change, args)
    print(f"revoked {change.entry_id} ({signer})")
    return 0


def cmd_allow_list(args: argparse.Namespace) -> int:
    """The entries in force (or all of them), with their status."""
    book, _ = _read(settings_from_env())
    now = datetime.now(UTC)
    shown = 0
    for entry_id, add in sorted(book.adds.items(), key=lambda item: item[1].at):
        status = book.status(entry_id, now)
        if status != "active" and not args.all:
            continue
        shown += 1
        if args.json:
            print(orjson.dumps({**describe(add), "status": status}).decode())
        else:
            assert add.until is not None
            print(
                f"{entry_id}  {status:<8} {add.scope}  until {format_timestamp(add.until)}  by {add.by}: {add.reason}"
            )
    if not shown and not args.json:
        print("no entries in force" if not args.all else "no entries")
    return 0


def cmd_allow_history(args: argparse.Namespace) -> int:
    """Every change on the topic, in order, including the ones workers refused."""
    _, read = _read(settings_from_env())
    for item in read:
        change = item.change
        if args.entry_id and (change is None or change.entry_id != args.entry_id):
            continue
        if args.json:
            data: dict[str, Any] = {"offset": item.offset, "key": item.key}
            data.update(describe(change) if change is not None else {"rejected": item.problem})
            if item.signer is not None:
                data["signed_by"] = item.signer
            print(orjson.dumps(data).decode())
        elif change is None:
            print(f"#{item.offset}  REJECTED by workers ({item.key}): {item.problem}")
        else:
            what = change.scope if change.action == "add" else ""
            print(
                f"#{item.offset}  {format_timestamp(change.at)}  {change.action:<6} {change.entry_id}  {what}"
                f"  by {change.by}: {change.reason}"
            )
    return 0


def _until(text: str, now: datetime) -> datetime:
    try:
        return parse_until(text, now)
    except ValueError as exc:
        raise SystemExit(f"sentinel: --until {exc}") from None


def _change(**fields: Any) -> AllowlistChange:
    from pydantic import ValidationError

    try:
        return AllowlistChange(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SystemExit(f"sentinel: {'.'.join(map(str, first['loc'])) or 'entry'}: {first['msg']}") from None


def _publish(settings: Settings, change: AllowlistChange, args: argparse.Namespace) -> str:
    from streams.commands.control import signed_record
    from streams.shell.allowlist_feed import publish_change
    from streams.shell.signing import ALLOWLIST_CHANGE

    record, signer = signed_record(
        change.to_json(), ALLOWLIST_CHANGE, args.key or settings.control_signing_key, args.unsigned
    )
    asyncio.run(publish_change(settings, change, record))
    return signer


def _read(settings: Settings) -> tuple[Allowlist, list[Any]]:
    """The allowlist as the workers build it, and every record read (refused ones with their reason)."""
    from streams.shell.allowlist_feed import read_topic
    from streams.shell.control import control_trust
    from streams.shell.signing import KeyFileError

    try:
        trust = control_trust(settings)
    except KeyFileError as exc:
        raise SystemExit(f"sentinel: {exc}") from None
    read = asyncio.run(read_topic(settings, trust))
    book = Allowlist()
    refused = dict((id(c), reason) for c, reason in book.apply_all(i.change for i in read if i.change is not None))
    if refused:
        print(f"sentinel: {len(refused)} change(s) contradict earlier ones and are ignored", file=sys.stderr)
    return book, read
