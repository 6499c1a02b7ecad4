"""Hot reload on the real broker: two workers switch rules and lists together, and a
broken ruleset never replaces a good one."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streams.core.rules.loader import load_ruleset
from streams.shell.reload import make_bundle
from streams.shell.settings import Settings
from streams.shell.signing import RULESET_BUNDLE, generate_key_pair, load_private_key, sign
from streams.shell.topics import publish_bundle
from tests.factories import deposit, raw
from tests.integration.helpers import (
    REPO,
    WorkerProcess,
    collect,
    isolated_settings,
    prepare_topics,
    produce,
    settings_env,
    start_worker,
    two_workers,
)

pytestmark = pytest.mark.kafka

WATCHED = "0x00000000000000000000000000000000000bad01"
SITE_RULE = """\
required_engine_version: 1
lists:
  - {id: site_watch, name: Site watch list, category: custom, source: tests, version: "{version}",
     file: watch.txt}
rules:
  - id: site-watch-sender
    version: 1.0.0
    name: Site watch-list sender
    description: a deposit from an address on the site's own watch list
    typology: high_risk_exposure
    severity: high
    action: review
    events: [deposit]
    condition: {field: from_addresses, in_list: site_watch}
    summary: "watch list {list_version}"
"""


def write_site(root: Path, addresses: list[str], version: str) -> None:
    (root / "site.yaml").write_text(SITE_RULE.replace("{version}", version))
    (root / "watch.txt").write_text("".join(f"{a}\n" for a in addresses) or "# empty\n")


def running_version(worker: WorkerProcess) -> str:
    match = re.search(r'sentinel_ruleset_info\{[^}]*version="([^"]+)"', worker.metrics())
    assert match, worker.metrics()
    return match.group(1)


def reload_count(worker: WorkerProcess, result: str, source: str) -> float:
    pattern = rf'sentinel_rules_reload_total\{{result="{result}",source="{source}"\}} (\S+)'
    match = re.search(pattern, worker.metrics())
    return float(match.group(1)) if match else 0.0


def wait_for(condition, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Fleet:
    def __init__(self, settings: Settings, workers: list[WorkerProcess], site: Path, keys: Path) -> None:
        self.settings = settings
        self.workers = workers
        self.site = site
        self.keys = keys
        self.sent = 0

    def publish(self, bundle: bytes, key: str | None = "publisher") -> None:
        """Publish ``bundle`` signed with one of the fleet's keys (``None``: unsigned)."""
        record = bundle if key is None else sign(bundle, RULESET_BUNDLE, load_private_key(self.keys / f"{key}.key"))
        asyncio.run(publish_bundle(self.settings, record))

    def deposits_from(self, address: str, accounts: int = 8) -> set[str]:
        """Deposits from ``address`` into accounts spread over every partition; their event ids."""
        batch = uuid.uuid4().hex[:6]
        records, ids = [], set()
        for n in range(accounts):
            event_id = f"{batch}-{n}"
            account = f"acct-{batch}-{n}"
            ids.add(event_id)
            value = raw(deposit(event_id=event_id, account_id=account, from_addresses=[address]))
            records.append((self.settings.deposits_topic, account.encode(), value))
        asyncio.run(produce(self.settings.kafka_bootstrap_servers, records))
        self.sent += len(records)
        return ids

    def alerts_for(self, event_ids: set[str], expected: int) -> list[dict]:  # type: ignore[type-arg]
        records = asyncio.run(
            collect(self.settings.kafka_bootstrap_servers, [self.settings.alerts_topic], expected=0, settle=0.5)
        )
        deadline = time.monotonic() + 30
        while True:
            alerts = [orjson.loads(r.value) for r in records]
            mine = [a for a in alerts if set(a["event_ids"]) & event_ids]
            if len(mine) >= expected or time.monotonic() > deadline:
                return mine
            time.sleep(0.5)
            records = asyncio.run(
                collect(self.settings.kafka_bootstrap_servers, [self.settings.alerts_topic], expected=0, settle=0.5)
            )

    def all_consumed(self) -> bool:
        total = 0.0
        for worker in self.workers:
            total += sum(
                float(v) for v in re.findall(r"^sentinel_events_consumed_total\{.*\} (\S+)$", worker.metrics(), re.M)
            )
        return total >= self.sent


@pytest.fixture(scope="module")
def fleet(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("reload")
    rules = workdir / "rules"
    shutil.copytree(REPO / "rules", rules)
    site = workdir / "site"
    site.mkdir()
    write_site(site, [], "v0")
    keys = workdir / "keys"
    generate_key_pair(keys, "publisher")
    generate_key_pair(keys, "stranger")  # a key the workers were not given
    settings = isolated_settings(
        kafka_bootstrap,
        uuid.uuid4().hex[:8],
        rules=f"{rules}{os.pathsep}{site}",
        reload_interval=0.0,
        control_public_keys=str(keys / "publisher.pub"),
    )
    asyncio.run(prepare_topics(settings))
    with two_workers(settings, workdir) as workers:
        yield Fleet(settings, workers, site, keys)


def publish_site(fleet: Fleet, addresses: list[str], version: str) -> str:
    write_site(fleet.site, addresses, version)
    paths = fleet.settings.rule_paths
    expected = load_ruleset(paths).version
    fleet.publish(make_bundle(paths, source=f"test {version}"))
    for worker in fleet.workers:
        wait_for(lambda w=worker: running_version(w) == expected, f"{worker.log_path.name} to run {expected}")
    return expected


def test_list_addition_applies_on_every_worker(fleet: Fleet) -> None:
    version = publish_site(fleet, [WATCHED], "v1")
    ids = fleet.deposits_from(WATCHED)
    alerts = [a for a in fleet.alerts_for(ids, expected=len(ids)) if a["rule_id"] == "site-watch-sender"]
    assert {a["event_ids"][0] for a in alerts} == ids
    assert {a["ruleset_version"] for a in alerts} == {version}
    assert all(reload_count(w, "success", "control") >= 1 for w in fleet.workers)


def test_list_removal_stops_the_alerts(fleet: Fleet) -> None:
    publish_site(fleet, [], "v2")
    ids = fleet.deposits_from(WATCHED)
    wait_for(fleet.all_consumed, "the deposits to be screened")
    assert [a for a in fleet.alerts_for(ids, expected=0) if a["rule_id"] == "site-watch-sender"] == []


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda text: text.replace("rules:", "rules: [unclosed", 1), id="broken-yaml"),
        pytest.param(lambda text: text[: len(text) // 2], id="truncated-file"),
    ],
)
def test_a_broken_ruleset_keeps_the_last_good_one(fleet: Fleet, damage) -> None:  # type: ignore[no-untyped-def]
    good = publish_site(fleet, [WATCHED], "v3")
    failures = [reload_count(w, "failure", "control") for w in fleet.workers]
    site_yaml = fleet.site / "site.yaml"
    site_yaml.write_text(damage(site_yaml.read_text()))
    # Published straight to the topic: `sentinel rules publish` itself refuses a broken ruleset.
    fleet.publish(make_bundle(fleet.settings.rule_paths, source="broken"))
    for worker, before in zip(fleet.workers, failures, strict=True):
        wait_for(lambda w=worker, b=before: reload_count(w, "failure", "control") > b, "the failure to be counted")
        assert running_version(worker) == good
        assert "rules reload from control failed, keeping the running ruleset" in worker.log()
    ids = fleet.deposits_from(WATCHED)
    alerts = [a for a in fleet.alerts_for(ids, expected=len(ids)) if a["rule_id"] == "site-watch-sender"]
    assert {a["ruleset_version"] for a in alerts} == {good} and len(alerts) == len(ids)


def test_untrusted_and_replayed_bundles_are_rejected_while_the_running_pack_keeps_alerting(fleet: Fleet) -> None:
    write_site(fleet.site, [WATCHED], "v4-old")
    replayable = make_bundle(fleet.settings.rule_paths, source="v4-old")  # published below, then replayed
    fleet.publish(replayable)
    good = publish_site(fleet, [WATCHED], "v4")
    # An attacker's pack: the watch list emptied, published three ways.
    write_site(fleet.site, [], "v4-evil")
    evil = make_bundle(fleet.settings.rule_paths, source="evil")
    attempts = [(evil, None), (evil, "stranger"), (replayable, "publisher")]
    for number, (bundle, key) in enumerate(attempts, start=1):
        rejected = [reload_count(w, "rejected", "control") for w in fleet.workers]
        fleet.publish(bundle, key=key)
        for worker, before in zip(fleet.workers, rejected, strict=True):
            wait_for(lambda w=worker, b=before: reload_count(w, "rejected", "control") > b, f"attempt {number}")
            assert running_version(worker) == good
    for worker in fleet.workers:
        log = worker.log()
        assert "rejected, keeping the running ruleset: unsigned" in log
        assert "rejected, keeping the running ruleset: signed by an unknown key" in log
        assert "a replay is refused" in log
        assert "PRIVATE KEY" not in log
    ids = fleet.deposits_from(WATCHED)
    alerts = [a for a in fleet.alerts_for(ids, expected=len(ids)) if a["rule_id"] == "site-watch-sender"]
    assert {a["ruleset_version"] for a in alerts} == {good} and {a["event_ids"][0] for a in alerts} == ids


def test_the_publish_command_signs_and_every_worker_switches(fleet: Fleet, tmp_path: Path) -> None:
    write_site(fleet.site, [WATCHED], "v5-cli")
    expected = load_ruleset(fleet.settings.rule_paths).version
    env = settings_env(fleet.settings, tmp_path)
    command = [sys.executable, "-m", "streams.commands.cli", "rules", "publish", "--source", "cli test"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert refused.returncode != 0 and "no signing key: set SENTINEL_CONTROL_SIGNING_KEY" in refused.stderr
    env["SENTINEL_CONTROL_SIGNING_KEY"] = str(fleet.keys / "publisher.key")
    published = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert published.returncode == 0, published.stderr
    assert f"published ruleset {expected}" in published.stdout and "signed by key" in published.stdout
    for worker in fleet.workers:
        wait_for(lambda w=worker: running_version(w) == expected, f"{worker.log_path.name} to run {expected}")


def test_file_changes_and_sighup_reload_a_worker(kafka_bootstrap: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    site = tmp_path / "site"
    site.mkdir()
    write_site(site, [], "f0")
    settings = isolated_settings(kafka_bootstrap, uuid.uuid4().hex[:8], rules=f"{rules}{os.pathsep}{site}")
    asyncio.run(prepare_topics(settings))
    worker = start_worker(settings.model_copy(update={"reload_interval": 0.5}), tmp_path)
    try:
        first = running_version(worker)
        write_site(site, [WATCHED], "f1")
        changed = load_ruleset(settings.rule_paths).version
        wait_for(lambda: running_version(worker) == changed, "the file change to be picked up")
        assert reload_count(worker, "success", "files") == 1
        (site / "site.yaml").write_text("required_engine_version: 1\nrules: [")
        wait_for(lambda: reload_count(worker, "failure", "files") == 1, "the broken file to be refused")
        assert running_version(worker) == changed != first
        write_site(site, [], "f2")
        worker.process.send_signal(signal.SIGHUP)
        wait_for(
            lambda: reload_count(worker, "success", "signal") + reload_count(worker, "success", "files") >= 2,
            "the reload after SIGHUP",
        )
        assert running_version(worker) == load_ruleset(settings.rule_paths).version
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
