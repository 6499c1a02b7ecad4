"""The secured broker of the security tests: SASL/SCRAM users, ACLs and a TLS listener.

One broker for the session (started on first use, in ``.local/kafka-secure``), apart from
the plain test broker: its StandardAuthorizer and users must not change what the other
tests see.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.helpers import REPO

BROKER = REPO / "deploy" / "kafka" / "broker.sh"
#: The broker's super user (as in deploy/kafka/broker.sh) and the recipe's three principals.
ADMIN_PASSWORD = "sentinel-secret"
USERS = {
    "sentinel-worker": "worker-secret",
    "sentinel-publisher": "publisher-secret",
    "alerts-reader": "reader-secret",
    "sentinel-console": "console-secret",
}


@dataclass(frozen=True)
class SecureBroker:
    """Addresses of one broker's listeners, its CA file and its log."""

    plain: str
    sasl: str
    tls: str
    ca_file: Path
    log: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def secure_broker() -> Iterator[SecureBroker]:
    home = REPO / ".local" / "kafka-secure"
    env = {
        **os.environ,
        "SENTINEL_KAFKA_HOME": str(home),
        "SENTINEL_KAFKA_SASL": "1",
        "SENTINEL_KAFKA_SASL_PASSWORD": ADMIN_PASSWORD,
        "SENTINEL_KAFKA_SCRAM_USERS": " ".join(f"{name}={password}" for name, password in USERS.items()),
        "SENTINEL_KAFKA_ACL": "1",
        "SENTINEL_KAFKA_TLS": "1",
    }
    subprocess.run([str(BROKER), "reset"], env=env, check=True, capture_output=True, timeout=120)
    started = subprocess.run([str(BROKER), "start"], env=env, capture_output=True, text=True, timeout=300)
    if started.returncode != 0:
        pytest.fail(f"could not start the secured broker:\n{started.stdout}\n{started.stderr}")

    def ask(command: str) -> str:
        return subprocess.run(
            [str(BROKER), command], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        yield SecureBroker(
            plain=started.stdout.strip().splitlines()[-1],
            sasl=ask("bootstrap-sasl"),
            tls=ask("bootstrap-tls"),
            ca_file=Path(ask("tls-ca")),
            log=home / "logs" / "server.out",
            env=env,
        )
    finally:
        subprocess.run([str(BROKER), "stop"], env=env, check=False, timeout=120)
