"""Signed control messages: what a worker trusts, and the reloader's refusal of replays."""

from __future__ import annotations

import base64
import shutil
import stat
from pathlib import Path

import orjson
import pytest

from streams.shell.reload import ReloadResult, RulesReloader, make_bundle
from streams.shell.signing import (
    RULESET_BUNDLE,
    ControlRejectedError,
    ControlTrust,
    KeyFileError,
    generate_key_pair,
    key_id,
    load_private_key,
    load_public_keys,
    sign,
)
from tests.integration.helpers import REPO


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    generate_key_pair(tmp_path / "keys", "publisher")
    generate_key_pair(tmp_path / "other", "stranger")
    return tmp_path


def test_a_generated_pair_signs_and_verifies(keys: Path) -> None:
    private = load_private_key(keys / "keys" / "publisher.key")
    trust = ControlTrust(load_public_keys([keys / "keys"]))
    record = sign(b'{"published_at": 1}', RULESET_BUNDLE, private)
    assert trust.open(record, RULESET_BUNDLE) == (b'{"published_at": 1}', key_id(private.public_key()))
    assert stat.S_IMODE((keys / "keys" / "publisher.key").stat().st_mode) == 0o600
    assert b"PRIVATE" not in (keys / "keys" / "publisher.pub").read_bytes()


def test_generate_refuses_to_overwrite_a_key(keys: Path) -> None:
    with pytest.raises(KeyFileError, match="exists"):
        generate_key_pair(keys / "keys", "publisher")


def _tamper(record: bytes, **changes: object) -> bytes:
    data = orjson.loads(record)
    data.update(changes)
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda r, stranger: sign(b"{}", RULESET_BUNDLE, stranger), "unknown key"),
        (lambda r, stranger: _tamper(r, payload=base64.b64encode(b'{"published_at": 2}').decode()), "does not verify"),
        (lambda r, stranger: _tamper(r, kind="allowlist-entry"), "where a 'ruleset-bundle' was expected"),
        (lambda r, stranger: _tamper(r, version=2), "envelope version 2"),
        (lambda r, stranger: _tamper(r, signature="***"), "not base64"),
        (lambda r, stranger: b'{"published_at": 1, "files": {}}', "unsigned"),
        (lambda r, stranger: b"\x00garbage", "not JSON"),
        (lambda r, stranger: b"[1]", "not a JSON object"),
    ],
    ids=[
        "unknown-key",
        "payload-changed",
        "other-kind",
        "future-envelope",
        "bad-base64",
        "unsigned",
        "garbage",
        "list",
    ],
)
def test_untrusted_records_are_rejected_with_a_reason(keys: Path, damage, reason: str) -> None:  # type: ignore[no-untyped-def]
    private = load_private_key(keys / "keys" / "publisher.key")
    stranger = load_private_key(keys / "other" / "stranger.key")
    trust = ControlTrust(load_public_keys([keys / "keys" / "publisher.pub"]))
    record = sign(b'{"published_at": 1}', RULESET_BUNDLE, private)
    with pytest.raises(ControlRejectedError, match=reason):
        trust.open(damage(record, stranger), RULESET_BUNDLE)


def test_without_keys_unsigned_bundles_are_refused_unless_accepted() -> None:
    with pytest.raises(ControlRejectedError, match="no public keys are configured"):
        ControlTrust().open(b'{"files": {}}', RULESET_BUNDLE)
    assert ControlTrust(accept_unsigned=True).open(b'{"files": {}}', RULESET_BUNDLE) == (b'{"files": {}}', None)


def test_a_rotation_trusts_both_keys(keys: Path) -> None:
    trust = ControlTrust(load_public_keys([keys / "keys", keys / "other" / "stranger.pub"]))
    for path in (keys / "keys" / "publisher.key", keys / "other" / "stranger.key"):
        assert trust.open(sign(b"{}", RULESET_BUNDLE, load_private_key(path)), RULESET_BUNDLE)[0] == b"{}"


def test_key_files_that_are_not_keys_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(KeyFileError, match=r"no \*\.pub files"):
        load_public_keys([tmp_path / "empty"])
    with pytest.raises(KeyFileError, match=r"junk\.pub: not a readable public key"):
        load_public_keys([tmp_path / "junk.pub"])
    with pytest.raises(KeyFileError, match=r"missing\.key: not a readable private key"):
        load_private_key(tmp_path / "missing.key")


class Installed:
    def __init__(self) -> None:
        self.versions: list[str] = []
        self.results: list[ReloadResult] = []


def _reloader(tmp_path: Path, trust: ControlTrust, installed: Installed) -> RulesReloader:
    return RulesReloader(
        [str(REPO / "rules")],
        lambda ruleset, source: installed.versions.append(ruleset.version),
        on_result=installed.results.append,
        bundle_dir=tmp_path / "bundles",
        trust=trust,
        mark_file=tmp_path / "data" / "control-mark.json",
    )


def _bundle(tmp_path: Path, name: str, published_at: float) -> bytes:
    rules = tmp_path / name
    if not rules.exists():
        shutil.copytree(REPO / "rules", rules)
    data = orjson.loads(make_bundle([rules], source=name))
    data["published_at"] = published_at
    return orjson.dumps(data)


def test_the_reloader_refuses_a_replayed_older_bundle_even_after_a_restart(keys: Path) -> None:
    private = load_private_key(keys / "keys" / "publisher.key")
    trust = ControlTrust(load_public_keys([keys / "keys"]))
    older = sign(_bundle(keys, "old", 100.0), RULESET_BUNDLE, private)
    newer = sign(_bundle(keys, "new", 200.0), RULESET_BUNDLE, private)
    installed = Installed()
    reloader = _reloader(keys, trust, installed)
    assert reloader.apply_latest([newer]) is not None and installed.results[-1].outcome == "success"
    result = reloader.apply_latest([older])
    assert result is not None and result.outcome == "rejected" and "replay" in (result.error or "")
    assert len(installed.versions) == 1
    # A restarted worker reads its note of the newest bundle: the same bundle again is fine,
    # the older one is still refused.
    restarted = _reloader(keys, trust, Installed())
    assert restarted.apply_latest([newer]).outcome == "success"  # type: ignore[union-attr]
    assert restarted.apply_latest([older]).outcome == "rejected"  # type: ignore[union-attr]


def test_catching_up_takes_the_newest_trusted_bundle_not_the_last_record(keys: Path) -> None:
    private = load_private_key(keys / "keys" / "publisher.key")
    trust = ControlTrust(load_public_keys([keys / "keys"]))
    older = sign(_bundle(keys, "old", 100.0), RULESET_BUNDLE, private)
    newer = sign(_bundle(keys, "new", 200.0), RULESET_BUNDLE, private)
    unsigned = _bundle(keys, "evil", 300.0)
    installed = Installed()
    result = _reloader(keys, trust, installed).apply_latest([newer, older, unsigned])
    assert result is not None and result.outcome == "success"
    assert [r.outcome for r in installed.results] == ["rejected", "success"]
    assert "unsigned" in (installed.results[0].error or "")
    assert _reloader(keys, trust, Installed()).apply_latest([unsigned]) is None  # nothing trusted: nothing loaded
