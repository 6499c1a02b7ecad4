"""A new OFAC designation on the real broker: old list live, import the new one, re-screen history."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from streams.core.ofac import read_sdn_advanced, write_list
from streams.core.rescreen import added_between, report_to_list
from tests.data import OFAC_XML
from tests.factories import deposit, raw
from tests.integration.helpers import (
    REPO,
    collect,
    isolated_settings,
    prepare_topics,
    produce,
    settings_env,
    start_worker,
)

pytestmark = pytest.mark.kafka

XML = OFAC_XML


def test_designation_freezes_new_deposits_and_rescreen_finds_the_earlier_ones(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    old_report = read_sdn_advanced(XML / "sdn_advanced_2025-03-04.xml.bz2")
    new_report = read_sdn_advanced(XML / "sdn_advanced_2025-11-19.xml.bz2")
    old, new = report_to_list(old_report, "old"), report_to_list(new_report, "new")
    added = sorted(e.address for e in added_between(old, new).entries.values())
    designated = [next(a for a in added if a.startswith("0x")), next(a for a in added if a.startswith("T"))]
    tornado = next(e.address for k, e in old.entries.items() if k not in new.entries and e.label == "TORNADO CASH")

    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    old_list = tmp_path / "old-ofac-sdn.csv"
    write_list(old_report, old_list, "SDN 2025-03-04", imported_at=time.time())
    write_list(old_report, rules / "lists" / "ofac-sdn.csv", "SDN 2025-03-04", imported_at=time.time())
    suffix = uuid.uuid4().hex[:8]
    settings = isolated_settings(kafka_bootstrap, suffix, rules=str(rules), reload_interval=0.5)
    asyncio.run(prepare_topics(settings))
    env = settings_env(settings, tmp_path / "cli")
    worker = start_worker(settings, tmp_path)
    since = datetime.now(UTC).isoformat()

    def deposits(tag: str, senders: list[str]) -> dict[str, str]:
        events = {f"{tag}-{n}-{suffix}": sender for n, sender in enumerate(senders)}
        records = [
            (
                settings.deposits_topic,
                f"acct-{eid}".encode(),
                raw(deposit(event_id=eid, account_id=f"acct-{eid}", from_addresses=[sender])),
            )
            for eid, sender in events.items()
        ]
        asyncio.run(produce(kafka_bootstrap, records))
        return events

    def sanctions_alerts() -> dict[str, dict]:  # type: ignore[type-arg]
        records = asyncio.run(collect(kafka_bootstrap, [settings.alerts_topic], expected=0, settle=1.0))
        alerts = [orjson.loads(r.value) for r in records]
        return {a["event_ids"][0]: a for a in alerts if a["typology"] == "sanctions"}

    def version() -> str:
        match = re.search(r'sentinel_ruleset_info\{[^}]*version="([^"]+)"', worker.metrics())
        return match.group(1) if match else ""

    def cli(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "streams.commands.cli", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    try:
        before = deposits("before", designated)  # screened under the old list: not sanctioned yet
        tornado_before = deposits("tornado-before", [tornado])  # still sanctioned under the old list
        deadline = time.monotonic() + 30
        while not set(tornado_before) <= set(sanctions_alerts()):
            assert time.monotonic() < deadline, "the old list did not freeze a Tornado Cash deposit"
        assert not set(before) & set(sanctions_alerts())

        old_version = version()
        report = cli(
            "lists",
            "import-ofac",
            str(XML / "sdn_advanced_2025-11-19.xml.bz2"),
            "--output",
            str(rules / "lists" / "ofac-sdn.csv"),
        )
        assert "SDN list issued 2025-11-19: 747 addresses of 79 entities" in report
        deadline = time.monotonic() + 30
        while version() == old_version:
            assert time.monotonic() < deadline, "the worker did not switch to the new list"
            time.sleep(0.2)
        metrics = worker.metrics()
        assert 'sentinel_list_changes_total{change="added",list_id="ofac_sdn"} 134.0' in metrics
        assert 'sentinel_list_changes_total{change="removed",list_id="ofac_sdn"} 90.0' in metrics
        assert "list ofac_sdn changed (files): version 2025-03-04 -> 2025-11-19, 134 added, 90 removed" in worker.log()

        after = deposits("after", designated)
        tornado_after = deposits("tornado-after", [tornado])
        deadline = time.monotonic() + 30
        while not set(after) <= set(alerts := sanctions_alerts()):
            assert time.monotonic() < deadline, "new deposits from designated addresses were not frozen"
        assert all("list of 2025-11-19" in alerts[e]["summary"] for e in after)
        assert not set(tornado_after) & set(alerts), "a delisted Tornado Cash address still raised an alert"
        assert not set(before) & set(alerts)

        first = cli(
            "rescreen", "--since", since, "--old", str(old_list), "--new", str(rules / "lists" / "ofac-sdn.csv")
        )
        assert "found 2 event(s)" in first and "2 new alert(s) written" in first, first
        retro = {e: a for e, a in sanctions_alerts().items() if a.get("retroactive")}
        assert set(retro) == set(before)
        assert all(a["rule_id"] == "ofac-retroactive" for a in retro.values())
        assert all(a["evidence"]["matches"][0]["entry"]["entry_event_date"] for a in retro.values())
        second = cli(
            "rescreen", "--since", since, "--old", str(old_list), "--new", str(rules / "lists" / "ofac-sdn.csv")
        )
        assert "2 already alerted, 0 new alert(s) written" in second, second
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
