"""The ACL recipe (deploy/kafka/acls.sh) on a real broker with KRaft's StandardAuthorizer.

Four SCRAM users get the recipe's ACLs; each may do its job and nothing more, and a denied
action is one clear error, not a retry storm.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path

import orjson
import pytest

from streams.core.rules.loader import load_ruleset
from streams.shell.clients import started_producer
from streams.shell.settings import Settings
from streams.shell.signing import generate_key_pair
from tests.factories import RONIN_EXPLOITER, deposit, raw
from tests.integration.browser import TOKEN, start_console
from tests.integration.conftest import USERS, SecureBroker
from tests.integration.helpers import (
    REPO,
    WorkerProcess,
    collect,
    isolated_settings,
    prepare_topics,
    produce,
    run_sentinel,
    settings_env,
    start_worker,
)

pytestmark = pytest.mark.kafka

ACLS = REPO / "deploy" / "kafka" / "acls.sh"


@dataclass
class Cluster:
    broker: SecureBroker
    base: Settings
    keys: Path
    workdir: Path
    worker: WorkerProcess | None = None

    def as_user(self, name: str) -> Settings:
        secret = self.workdir / f"{name}.password"
        secret.write_text(USERS[name])
        return self.base.model_copy(
            update={
                "kafka_bootstrap_servers": self.broker.sasl,
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": name,
                "sasl_password_file": secret,
                "control_public_keys": str(self.keys / "publisher.pub"),
            }
        )

    def sentinel(self, user: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_sentinel(self.as_user(user), self.workdir / f"data-{user}", *args, extra_env=env)

    def denials(self) -> int:
        return len(re.findall(r"is Denied operation", self.broker.log.read_text(errors="replace")))


@pytest.fixture(scope="module")
def cluster(secure_broker: SecureBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("acls")
    base = isolated_settings(secure_broker.plain, uuid.uuid4().hex[:8])
    asyncio.run(prepare_topics(base))  # an administrator's job, over the loopback listener
    keys = workdir / "keys"
    generate_key_pair(keys, "publisher")
    # The recipe, run as an operator would: topic names and app id from the SENTINEL_* variables.
    env = {**settings_env(base, workdir / "unused"), "SENTINEL_KAFKA_HOME": secure_broker.env["SENTINEL_KAFKA_HOME"]}
    applied = subprocess.run(
        [
            str(ACLS),
            "--bootstrap",
            secure_broker.plain,
            "--worker",
            "User:sentinel-worker",
            "--publisher",
            "User:sentinel-publisher",
            "--reader",
            "User:alerts-reader",
            "--console",
            "User:sentinel-console",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert applied.returncode == 0, applied.stderr
    cluster = Cluster(secure_broker, base, keys, workdir)
    yield cluster
    if cluster.worker is not None:
        assert cluster.worker.stop() == 0, cluster.worker.log()[-3000:]


def running_version(worker: WorkerProcess) -> str | None:
    match = re.search(r'sentinel_ruleset_info\{[^}]*version="([^"]+)"', worker.metrics())
    return match.group(1) if match else None


def test_the_worker_principal_screens_deposits_and_writes_alerts(cluster: Cluster) -> None:
    cluster.worker = start_worker(cluster.as_user("sentinel-worker"), cluster.workdir, "acl-worker")
    value = raw(deposit(event_id="acl-1", account_id="acct-acl", from_addresses=[RONIN_EXPLOITER]))
    asyncio.run(produce(cluster.broker.plain, [(cluster.base.deposits_topic, b"acct-acl", value)]))
    records = asyncio.run(collect(cluster.broker.plain, [cluster.base.alerts_topic], expected=1))
    assert [orjson.loads(r.value)["event_ids"] for r in records] == [["acl-1"]]


def test_the_worker_principal_cannot_write_the_control_topic(cluster: Cluster) -> None:
    denied_before = cluster.denials()
    started = time.monotonic()
    result = cluster.sentinel(
        "sentinel-worker", "rules", "publish", "--key", str(cluster.keys / "publisher.key"), "--source", "worker"
    )
    assert result.returncode != 0
    assert "refused: TopicAuthorizationFailedError" in result.stderr, result.stderr
    assert "as 'sentinel-worker'" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60
    assert 1 <= cluster.denials() - denied_before <= 5, "a denied write must not be retried over and over"


def test_the_publisher_publishes_and_the_worker_switches(cluster: Cluster) -> None:
    assert cluster.worker is not None
    result = cluster.sentinel(
        "sentinel-publisher", "rules", "publish", "--key", str(cluster.keys / "publisher.key"), "--source", "acl test"
    )
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 30
    expected = load_ruleset(cluster.base.rule_paths).version
    while "success" not in _control_reloads(cluster.worker):
        assert time.monotonic() < deadline, cluster.worker.log()[-3000:]
        time.sleep(0.3)
    assert running_version(cluster.worker) == expected


def _control_reloads(worker: WorkerProcess) -> set[str]:
    return set(re.findall(r'sentinel_rules_reload_total\{result="(\w+)",source="control"\} [1-9]', worker.metrics()))


def test_a_reader_reads_alerts_but_cannot_produce_them(cluster: Cluster) -> None:
    watched = cluster.sentinel("alerts-reader", "watch", "--from-beginning", "--seconds", "5")
    assert watched.returncode == 0, watched.stderr
    assert "FREEZE" in watched.stdout and "acct-acl: Deposit" in watched.stdout

    cannot_forge_an_alert(cluster, "alerts-reader")


def test_the_console_shows_alerts_and_records_decisions_but_cannot_produce_alerts(cluster: Cluster) -> None:
    settings = cluster.as_user("sentinel-console").model_copy(update={"console_tokens": f"alice:{TOKEN}"})
    console = start_console(settings, cluster.workdir, "acl-console")
    try:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar := CookieJar()))
        opener.open(urllib.request.Request(f"{console.url}/login", data=f"token={TOKEN}".encode()), timeout=10)
        with opener.open(f"{console.url}/api/queue", timeout=10) as answer:
            rows = orjson.loads(answer.read())["rows"]
        assert [row["account_id"] for row in rows] == ["acct-acl"]
        csrf = next(c.value for c in jar if c.name == "sentinel_console_csrf")
        decide = urllib.request.Request(
            f"{console.url}/api/alerts/{rows[0]['alert_id']}/disposition",
            data=orjson.dumps({"status": "confirmed", "note": "checked against the SDN entry"}),
            headers={"Content-Type": "application/json", "X-CSRF-Token": csrf or ""},
        )
        with opener.open(decide, timeout=30) as answer:
            assert orjson.loads(answer.read())["status"] == "confirmed"
    finally:
        console.stop()
    assert "Traceback" not in console.log(), console.log()[-3000:]
    cannot_forge_an_alert(cluster, "sentinel-console")


def cannot_forge_an_alert(cluster: Cluster, user: str) -> None:
    async def forge() -> None:
        async with started_producer(cluster.as_user(user)) as producer:
            await producer.send_and_wait(cluster.base.alerts_topic, b'{"forged": true}', key=b"acct-acl")

    denied_before = cluster.denials()
    started = time.monotonic()
    with pytest.raises(Exception, match="AuthorizationFailed") as refused:
        asyncio.run(asyncio.wait_for(forge(), 60))
    assert type(refused.value).__name__ in {"ClusterAuthorizationFailedError", "TopicAuthorizationFailedError"}
    assert time.monotonic() - started < 30
    assert cluster.denials() - denied_before <= 5
    alerts = asyncio.run(collect(cluster.broker.plain, [cluster.base.alerts_topic], expected=0, settle=1.0))
    assert all(b"forged" not in r.value for r in alerts)
