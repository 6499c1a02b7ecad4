"""``sentinel rules publish`` and ``sentinel keys generate``: changing every worker's rules, signed."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from streams.commands.common import ruleset as load_rules
from streams.commands.common import settings as settings_from_env
from streams.core.rules.source import RuleFileError


def cmd_rules_publish(args: argparse.Namespace) -> int:
    """Check the rules, sign them and write them to the control topic."""
    from streams.shell.reload import make_bundle
    from streams.shell.topics import publish_bundle

    settings = settings_from_env()
    paths = args.paths or settings.rule_paths
    ruleset = load_rules(paths)  # never publish what would not load
    try:
        bundle = make_bundle(paths, source=args.source or ", ".join(paths))
    except RuleFileError as exc:
        raise SystemExit(f"sentinel: {exc}") from None
    from streams.shell.signing import RULESET_BUNDLE

    record, signer = signed_record(bundle, RULESET_BUNDLE, args.key or settings.control_signing_key, args.unsigned)
    asyncio.run(publish_bundle(settings, record))
    print(f"published ruleset {ruleset.version} ({len(record)} bytes, {signer}) to {settings.control_topic}")
    return 0


def signed_record(payload: bytes, kind: str, key_file: Path | None, unsigned: bool) -> tuple[bytes, str]:
    """The control record for ``payload``: signed with ``key_file``, or bare if asked for."""
    from streams.shell.signing import KeyFileError, key_id, load_private_key, sign

    if unsigned:
        return payload, "unsigned"
    if key_file is None:
        raise SystemExit(
            "sentinel: no signing key: set SENTINEL_CONTROL_SIGNING_KEY or pass --key FILE"
            " (`sentinel keys generate` makes one); --unsigned only for workers that accept unsigned control messages"
        )
    try:
        private_key = load_private_key(Path(key_file))
    except KeyFileError as exc:
        raise SystemExit(f"sentinel: {exc}") from None
    return sign(payload, kind, private_key), f"signed by key {key_id(private_key.public_key())}"


def cmd_keys_generate(args: argparse.Namespace) -> int:
    """Write a new Ed25519 key pair for signing published rules."""
    from streams.shell.signing import KeyFileError, generate_key_pair, key_id, load_private_key

    try:
        private_path, public_path = generate_key_pair(Path(args.directory), args.name)
    except KeyFileError as exc:
        raise SystemExit(f"sentinel: {exc}") from None
    print(f"key {key_id(load_private_key(private_path).public_key())}")
    print(f"private (for `rules publish`, keep secret): {private_path}")
    print(f"public (for every worker's SENTINEL_CONTROL_PUBLIC_KEYS): {public_path}")
    return 0
