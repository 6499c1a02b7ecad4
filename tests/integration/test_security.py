"""SASL on a real broker: SCRAM-SHA-512 and PLAIN work, a wrong password fails once and clearly.

ACLs and TLS on the same broker: tests/integration/test_acls.py and test_tls.py."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from streams.shell.clients import check_connection
from streams.shell.settings import Settings
from tests.factories import RONIN_EXPLOITER, deposit, raw
from tests.integration.conftest import ADMIN_PASSWORD, SecureBroker
from tests.integration.helpers import REPO, collect, isolated_settings, produce, settings_env, start_worker

pytestmark = pytest.mark.kafka

PASSWORD = ADMIN_PASSWORD


def sasl_settings(plain: str, sasl: str, tmp_path: Path, mechanism: str, password: str) -> Settings:
    secret = tmp_path / "kafka-password"
    secret.write_text(password + "\n")
    base = isolated_settings(plain, uuid.uuid4().hex[:8])
    return base.model_copy(
        update={
            "kafka_bootstrap_servers": sasl,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": mechanism,
            "sasl_username": "sentinel",
            "sasl_password_file": secret,
        }
    )


def test_worker_screens_over_scram(secure_broker: SecureBroker, tmp_path: Path) -> None:
    plain, sasl = secure_broker.plain, secure_broker.sasl
    settings = sasl_settings(plain, sasl, tmp_path, "SCRAM-SHA-512", PASSWORD)
    from streams.shell.topics import create_topics

    asyncio.run(create_topics(settings))  # over SASL too
    worker = start_worker(settings, tmp_path)
    try:
        value = raw(deposit(event_id="scram-1", from_addresses=[RONIN_EXPLOITER]))
        asyncio.run(produce(plain, [(settings.deposits_topic, b"acct-1", value)]))
        records = asyncio.run(collect(plain, [settings.alerts_topic], expected=1))
        assert [orjson.loads(r.value)["event_ids"] for r in records] == [["scram-1"]]
        assert PASSWORD not in worker.log()
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]


def test_plain_mechanism_connects(secure_broker: SecureBroker, tmp_path: Path) -> None:
    plain, sasl = secure_broker.plain, secure_broker.sasl
    asyncio.run(check_connection(sasl_settings(plain, sasl, tmp_path, "PLAIN", PASSWORD)))


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_wrong_password_is_one_clear_error(secure_broker: SecureBroker, tmp_path: Path, mechanism: str) -> None:
    plain, sasl, broker_log = secure_broker.plain, secure_broker.sasl, secure_broker.log
    settings = sasl_settings(plain, sasl, tmp_path, mechanism, "not-the-password")
    failures_before = broker_log.read_text(errors="replace").count("Failed authentication")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "streams.commands.cli", "worker"],
        env=settings_env(settings, tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    took = time.monotonic() - started
    assert result.returncode != 0
    assert f"cannot connect to {sasl} over SASL_PLAINTEXT as 'sentinel' ({mechanism})" in result.stderr
    assert "not-the-password" not in result.stdout + result.stderr
    assert took < 60
    time.sleep(1)
    failures = broker_log.read_text(errors="replace").count("Failed authentication") - failures_before
    assert 1 <= failures <= 3, f"{failures} failed authentications: a retry storm"
