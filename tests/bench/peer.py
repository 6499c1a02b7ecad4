"""Row D: the worker against a Quix Streams app, both on the same four rules, same broker, same input.

The four rules are the shipped OFAC sender and destination, fan-out and velocity (every
other rule of the pack disabled in a copy of ``rules/``). The oracle is ``sentinel
backtest`` on that copy. Both contestants start on the preloaded topics with a consumer
group of their own and are timed from process start until their group has committed
every input record, so start-up counts for both (the worker's other rows are timed from
"ready"). The Quix app is ``tests/bench/quix_app.py`` (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import yaml

from tests.bench.common import Result, cpu_of, fresh_group
from tests.chaos.cluster import Run
from tests.data import REPO
from tests.integration.helpers import start_worker

FOUR = ("ofac-sanctioned-sender", "ofac-sanctioned-destination", "fan-out", "velocity")


def four_rule_pack(work: Path) -> Path:
    """A copy of ``rules/`` with every rule but the four disabled."""
    target = work / "rules-four"
    shutil.copytree(REPO / "rules", target, dirs_exist_ok=True)
    for path in target.glob("*.yaml"):
        document = yaml.safe_load(path.read_text())
        for rule in document.get("rules", []):
            rule["enabled"] = rule["id"] in FOUR
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def oracle(events: Path, rules: Path, alerts: Path) -> set[str]:
    """The alert ids ``sentinel backtest`` finds with ``rules``."""
    command = [sys.executable, "-m", "streams.commands.cli", "backtest", "--input", str(events)]
    command += ["--output", str(alerts), "--rules", str(rules)]
    subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    return {orjson.loads(line)["alert_id"] for line in alerts.read_bytes().splitlines()}


def _wait_drained(run: Run, pid: int, started: float, total: int, deadline_s: float = 1800) -> float:
    while run.lag() != 0:
        if time.perf_counter() - started > deadline_s:
            raise AssertionError(f"not drained {total} events in {deadline_s:.0f}s")
        time.sleep(0.25)
    return time.perf_counter() - started


def worker_on_four(run: Run, work: Path, rules: Path, total: int, expected: set[str]) -> Result:
    """The worker (one process) on the four rules, from process start."""
    fresh_group(run, "four", rules=str(rules), metrics_port=0)
    started = time.perf_counter()
    worker = start_worker(run.settings, work, "four")
    pid = worker.process.pid
    seconds = _wait_drained(run, pid, started, total)
    cpu = cpu_of(pid)
    ids = set(run.alert_ids())
    worker.stop()
    note = "4 rules; from process start"
    return Result("A worker, 4 rules (1 process)", total, seconds, cpu, len(ids), ids == expected, note)


def quix_on_four(run: Run, work: Path, rules: Path, total: int, expected: set[str]) -> Result:
    """D: the Quix Streams app on the same four rules, from process start."""
    fresh_group(run, "quix", rules=str(rules), metrics_port=0)
    s = run.settings
    log = (work / "quix.log").open("wb")
    command = [sys.executable, "-m", "tests.bench.quix_app", "--bootstrap", s.kafka_bootstrap_servers]
    command += ["--group", s.app_id, "--deposits", s.deposits_topic, "--withdrawals", s.withdrawals_topic]
    command += ["--alerts", s.alerts_topic, "--rules", str(rules), "--state-dir", str(work / "quix-state")]
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        seconds = _wait_drained(run, process.pid, started, total)
        cpu = cpu_of(process.pid)
    finally:
        process.terminate()
        process.wait(30)
    ids = set(run.alert_ids())
    note = "Quix Streams 3.28, Quix State + changelog, at-least-once; from process start"
    return Result("D Quix Streams app, 4 rules", total, seconds, cpu, len(ids), ids == expected, note)


def peer_rows(run: Run, events: Path, work: Path, total: int) -> list[Result]:
    """Row D and the worker on the same four rules, in one run."""
    rules = four_rule_pack(work)
    expected = oracle(events, rules, work / "oracle-four.jsonl")
    return [worker_on_four(run, work, rules, total, expected), quix_on_four(run, work, rules, total, expected)]
