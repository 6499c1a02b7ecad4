"""Shared fixtures: the real local Kafka broker and helpers to use it.

The broker is a real Apache Kafka (KRaft) started by ``deploy/kafka/broker.sh`` for the
test session, in its own data folder, and stopped afterwards. Set
``KAFKA_BOOTSTRAP_SERVERS`` to run the Kafka tests against a cluster of your own
instead. If the broker cannot be started the Kafka tests fail; they never skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.data import REPO

BROKER_SCRIPT = REPO / "deploy" / "kafka" / "broker.sh"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port of a running broker for this test session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    home = REPO / ".local" / "kafka-test"
    env = {**os.environ, "SENTINEL_KAFKA_HOME": str(home)}
    running = subprocess.run([str(BROKER_SCRIPT), "status"], env=env, capture_output=True, timeout=30, check=False)
    if running.returncode != 0:
        # Every session starts from an empty broker: each test's topics are its own, and those
        # of earlier local runs piled up (6,400 topic folders) made the broker take two minutes
        # to start, and its restart in the broker-kill test time out.
        shutil.rmtree(home / "data", ignore_errors=True)
    started = subprocess.run(
        [str(BROKER_SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if started.returncode != 0:
        pytest.fail(f"could not start the local Kafka broker:\n{started.stdout}\n{started.stderr}")
    bootstrap = started.stdout.strip().splitlines()[-1]
    try:
        yield bootstrap
    finally:
        subprocess.run([str(BROKER_SCRIPT), "stop"], env=env, timeout=120, check=False)


@pytest.fixture(scope="session")
def broker_env(kafka_bootstrap: str) -> dict[str, str] | None:
    """The environment that makes deploy/kafka/broker.sh act on the test broker (None if external)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return None
    return {"SENTINEL_KAFKA_HOME": str(REPO / ".local" / "kafka-test")}


@pytest.fixture
def unique() -> str:
    """A short unique suffix, so each test has its own topics and consumer group."""
    return uuid.uuid4().hex[:8]
