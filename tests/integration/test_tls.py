"""Every Kafka client of the project over a real TLS listener, and a wrong CA as one clear error."""

from __future__ import annotations

import datetime
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from streams.core.rules.loader import load_ruleset
from streams.shell.settings import Settings
from streams.shell.signing import generate_key_pair
from tests.factories import RONIN_EXPLOITER, deposit, raw
from tests.integration.conftest import SecureBroker
from tests.integration.helpers import isolated_settings, run_sentinel, start_worker

pytestmark = pytest.mark.kafka


def tls_settings(broker: SecureBroker, ca_file: Path, **overrides: object) -> Settings:
    return isolated_settings(
        broker.tls, uuid.uuid4().hex[:8], security_protocol="SSL", ssl_cafile=str(ca_file), **overrides
    )


def sentinel(settings: Settings, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_sentinel(settings, workdir / "cli-data", *args)


def other_ca(path: Path) -> Path:
    """A CA certificate of our own making, which never signed the broker's certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the broker's CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def test_worker_feed_watch_and_publish_over_tls(secure_broker: SecureBroker, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    generate_key_pair(keys, "publisher")
    settings = tls_settings(
        secure_broker,
        secure_broker.ca_file,
        control_public_keys=str(keys / "publisher.pub"),
        control_signing_key=keys / "publisher.key",
    )
    created = sentinel(settings, tmp_path, "topics", "create")
    assert created.returncode == 0, created.stderr
    worker = start_worker(settings, tmp_path, "tls-worker")
    try:
        events = tmp_path / "events.jsonl"
        events.write_bytes(raw(deposit(event_id="tls-1", account_id="acct-tls", from_addresses=[RONIN_EXPLOITER])))
        fed = sentinel(settings, tmp_path, "feed", str(events))
        assert fed.returncode == 0 and "produced 1 records" in fed.stdout, fed.stderr
        deadline = time.monotonic() + 60
        while True:
            watched = sentinel(settings, tmp_path, "watch", "--from-beginning", "--seconds", "3")
            assert watched.returncode == 0, watched.stderr
            if "acct-tls: Deposit" in watched.stdout or time.monotonic() > deadline:
                break
        assert "FREEZE" in watched.stdout and "acct-tls: Deposit" in watched.stdout, worker.log()[-3000:]
        published = sentinel(settings, tmp_path, "rules", "publish", "--source", "over TLS")
        assert published.returncode == 0, published.stderr
        expected = load_ruleset(settings.rule_paths).version
        pattern = r'sentinel_rules_reload_total\{result="success",source="control"\} [1-9]'
        while not re.search(pattern, worker.metrics()):
            assert time.monotonic() < deadline + 30, worker.log()[-3000:]
            time.sleep(0.3)
        assert f'version="{expected}"' in worker.metrics()
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]


@pytest.mark.parametrize("command", [("worker",), ("feed", "EVENTS"), ("watch", "--seconds", "2")])
def test_a_wrong_ca_is_one_clear_error(secure_broker: SecureBroker, tmp_path: Path, command: tuple[str, ...]) -> None:
    settings = tls_settings(secure_broker, other_ca(tmp_path / "other-ca.pem"))
    events = tmp_path / "events.jsonl"
    events.write_bytes(raw(deposit(event_id="tls-2")))
    started = time.monotonic()
    result = sentinel(settings, tmp_path, *(str(events) if part == "EVENTS" else part for part in command))
    assert result.returncode != 0
    assert f"cannot connect to {secure_broker.tls} over SSL: the broker's TLS certificate is not trusted" in (
        result.stderr
    ), result.stderr
    assert (
        "certificate verify failed" in result.stderr
        or "self-signed" in result.stderr
        or "unable to get" in (result.stderr)
    )
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60
