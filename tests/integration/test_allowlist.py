"""Allowlist entries on the real broker: written by `sentinel allow`, applied by two workers within seconds."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from streams.core.events import format_timestamp
from streams.shell.settings import Settings
from streams.shell.signing import generate_key_pair
from tests.factories import deposit, raw
from tests.integration.helpers import (
    WorkerProcess,
    collect,
    isolated_settings,
    prepare_topics,
    produce,
    run_sentinel,
    two_workers,
)

pytestmark = pytest.mark.kafka
#: The producer's partitioner (murmur2 of the key), to spread test accounts over every partition.
partitioner = DefaultPartitioner()

#: On the shipped high-risk list (Etherscan label Fake_Phishing1772): `high-risk-sender` reviews it.
PHISHING = "0x80d7bb18521acbef32d7906502ebe94928690e93"


def metric(worker: WorkerProcess, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", worker.metrics(), re.M)
    return float(match.group(1)) if match else 0.0


def wait_for(condition, what: str, timeout: float = 30.0) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.1)
    return time.monotonic() - started


@dataclass
class Desk:
    """Two workers and the analyst's command line."""

    settings: Settings
    workers: list[WorkerProcess]
    workdir: Path
    key: Path

    def sentinel(self, *args: str) -> subprocess.CompletedProcess[str]:
        signing = {"SENTINEL_CONTROL_SIGNING_KEY": str(self.key)}
        return run_sentinel(self.settings, self.workdir / "cli-data", *args, extra_env=signing)

    def allow(self, *args: str) -> str:
        """Run ``sentinel allow ARGS``, wait until both workers applied it, and return the entry id."""
        before = [self.applied(w) for w in self.workers]
        done = self.sentinel("allow", *args)
        assert done.returncode == 0, done.stderr
        for worker, count in zip(self.workers, before, strict=True):
            took = wait_for(lambda w=worker, c=count: self.applied(w) > c, f"{worker.log_path.name} to apply it")
            print(f"allow {args[0]}: applied by {worker.log_path.name} {took:.2f}s after the command returned")
            assert took < 10, took
        match = re.search(r"(al-[0-9a-f]+)", done.stdout)
        assert match, done.stdout
        return match.group(1)

    def applied(self, worker: WorkerProcess) -> float:
        return metric(worker, "sentinel_allowlist_changes_total", 'result="applied"')

    def rejected(self) -> float:
        return sum(metric(w, "sentinel_allowlist_changes_total", 'result="rejected"') for w in self.workers)

    def allowlisted(self) -> float:
        return sum(metric(w, "sentinel_alerts_allowlisted_total", 'rule_id="high-risk-sender"') for w in self.workers)

    def deposits(self, address: str, accounts: list[str]) -> set[str]:
        """One deposit from ``address`` into each account (spread over every partition), time-stamped now."""
        now = format_timestamp(datetime.now(UTC))
        records, ids = [], set()
        for account in accounts:
            event_id = f"{account}-{uuid.uuid4().hex[:6]}"
            ids.add(event_id)
            value = raw(deposit(event_id=event_id, account_id=account, from_addresses=[address], timestamp=now))
            records.append((self.settings.deposits_topic, account.encode(), value))
        asyncio.run(produce(self.settings.kafka_bootstrap_servers, records))
        return ids

    def consumed(self) -> float:
        pattern = r"^sentinel_events_consumed_total\{.*\} (\S+)$"
        return sum(float(v) for w in self.workers for v in re.findall(pattern, w.metrics(), re.M))

    def batch(self, address: str, prefix: str, count: int = 8) -> dict[str, list[str]]:
        """Deposits from ``address`` into accounts PREFIX-0.., PREFIX-(count-1); the rules that alerted on each.

        Eight or more accounts are chosen so that they fall in every partition, and so on both workers.
        """
        before = self.consumed()
        accounts = [f"{prefix}-{n}" for n in range(count)]
        if count >= 8:
            partitions = list(range(self.settings.topic_partitions))
            while {partitioner(a.encode(), partitions, partitions) for a in accounts} != set(partitions):
                accounts.append(f"{prefix}-{len(accounts)}")
            count = len(accounts)
        ids = self.deposits(address, accounts)
        # Counted once the batch's alerts were acknowledged (streams.shell.commit).
        wait_for(lambda: self.consumed() >= before + count, "the deposits to be screened", timeout=60)
        records = asyncio.run(
            collect(self.settings.kafka_bootstrap_servers, [self.settings.alerts_topic], expected=0, settle=0.5)
        )
        fired: dict[str, list[str]] = {i: [] for i in ids}
        for alert in (orjson.loads(r.value) for r in records):
            for event_id in set(alert["event_ids"]) & ids:
                fired[event_id].append(alert["rule_id"])
        return fired


@pytest.fixture(scope="module")
def desk(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    workdir = tmp_path_factory.mktemp("allowlist")
    private, public = generate_key_pair(workdir / "keys", "analyst")
    settings = isolated_settings(kafka_bootstrap, uuid.uuid4().hex[:8], control_public_keys=str(public))
    asyncio.run(prepare_topics(settings))
    with two_workers(settings, workdir) as workers:
        yield Desk(settings, workers, workdir, private)


def test_an_entry_suppresses_the_finding_on_both_workers_until_it_expires(desk: Desk) -> None:
    run = uuid.uuid4().hex[:6]
    before = desk.batch(PHISHING, f"pre-{run}")
    assert all(rules == ["high-risk-sender"] for rules in before.values()), before

    counted = desk.allowlisted()
    expires = datetime.now(UTC) + timedelta(seconds=12)
    entry = desk.allow(
        "add", "--rule", "high-risk-sender", "--address", PHISHING.upper().replace("0X", "0x"),
        "--until", format_timestamp(expires), "--reason", "customer's own cold wallet, KYC case 991", "--by", "ana",
    )  # fmt: skip
    during = desk.batch(PHISHING, f"during-{run}")
    assert all(rules == [] for rules in during.values()), during
    assert desk.allowlisted() - counted == len(during)
    for worker in desk.workers:  # the accounts span every partition: each worker suppressed its share and logged it
        assert metric(worker, "sentinel_alerts_allowlisted_total", 'rule_id="high-risk-sender"') > 0
        assert f"allowlisted by entry {entry}" in worker.log()

    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.5)
    after = desk.batch(PHISHING, f"after-{run}")
    assert all(rules == ["high-risk-sender"] for rules in after.values()), after


def test_a_revoke_takes_effect_and_history_keeps_every_change(desk: Desk) -> None:
    run = uuid.uuid4().hex[:6]
    accounts = f"acct-{run}"
    entry = desk.allow(
        "add", "--typology", "high_risk_exposure", "--account", f"{accounts}-0",
        "--until", "30d", "--reason", "merchant onboarding review", "--by", "ana",
    )  # fmt: skip
    fired = desk.batch(PHISHING, accounts, count=2)
    assert fired[next(i for i in fired if i.startswith(f"{accounts}-0-"))] == []
    assert fired[next(i for i in fired if i.startswith(f"{accounts}-1-"))] == ["high-risk-sender"]

    listed = desk.sentinel("allow", "list")
    assert entry in listed.stdout and "typology high_risk_exposure" in listed.stdout, listed

    desk.allow("revoke", entry, "--reason", "merchant failed review", "--by", "bob")
    fired = desk.batch(PHISHING, accounts, count=1)
    assert list(fired.values()) == [["high-risk-sender"]]

    history = desk.sentinel("allow", "history", entry, "--json")
    changes = [orjson.loads(line) for line in history.stdout.splitlines()]
    assert [(c["action"], c["by"], c["reason"]) for c in changes] == [
        ("add", "ana", "merchant onboarding review"),
        ("revoke", "bob", "merchant failed review"),
    ]
    assert all(c["signed_by"] for c in changes)
    assert entry not in desk.sentinel("allow", "list").stdout
    assert "revoked" in desk.sentinel("allow", "list", "--all").stdout


@pytest.mark.parametrize("scope", [["--rule", "ofac-sanctioned-sender"], ["--typology", "sanctions"]])
def test_a_non_overridable_rule_cannot_be_allowlisted(desk: Desk, scope: list[str]) -> None:
    done = desk.sentinel("allow", "add", *scope, "--account", "acct-x", "--until", "1d", "--reason", "r", "--by", "ana")
    assert done.returncode != 0
    assert "not overridable" in done.stderr


def test_a_malformed_or_unsigned_entry_is_reported_and_ignored(desk: Desk) -> None:
    run = uuid.uuid4().hex[:6]
    entry = desk.allow(
        "add", "--rule", "high-risk-sender", "--account", f"keep-{run}-0",
        "--until", "1d", "--reason", "still applies after the bad records", "--by", "ana",
    )  # fmt: skip
    rejected = desk.rejected()
    now = format_timestamp(datetime.now(UTC))
    unsigned = orjson.dumps(
        {"action": "add", "entry_id": "al-forged01", "by": "mallory", "reason": "x", "at": now,
         "until": "2099-01-01T00:00:00Z", "rule_id": "high-risk-sender", "account_id": f"keep-{run}-1"}
    )  # fmt: skip
    topic = desk.settings.allowlist_topic
    asyncio.run(
        produce(
            desk.settings.kafka_bootstrap_servers,
            [(topic, b"al-junk/add", b"{not json"), (topic, b"al-forged01/add", unsigned)],
        )
    )
    wait_for(lambda: desk.rejected() >= rejected + 4, "both workers to reject both records")
    assert all("allowlist change at" in w.log() and "rejected" in w.log() for w in desk.workers)
    fired = desk.batch(PHISHING, f"keep-{run}", count=2)
    assert fired[next(i for i in fired if i.startswith(f"keep-{run}-0-"))] == []  # the good entry still applies
    assert fired[next(i for i in fired if i.startswith(f"keep-{run}-1-"))] == [
        "high-risk-sender"
    ]  # the forged one does not
    history = desk.sentinel("allow", "history").stdout
    assert "REJECTED" in history and entry in history
