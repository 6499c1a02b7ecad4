"""Prometheus alerting rules, the Grafana dashboard, and a real Prometheus scraping a worker."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.shell import metrics
from streams.shell.settings import Settings
from tests.factories import RONIN_EXPLOITER, deposit, raw
from tests.integration.helpers import (
    REPO,
    WorkerProcess,
    free_port,
    isolated_settings,
    prepare_topics,
    produce,
    start_worker,
)

PROMETHEUS = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "deposit-sentinel.json"


def promtool(*args: str) -> str:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: deploy/ensure-tools.sh installs Debian's prometheus package"
    result = subprocess.run([tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_alerting_rules_are_valid() -> None:
    assert "SUCCESS: 12 rules found" in promtool("check", "rules", "alerts.yml")


def test_every_alert_has_a_unit_test_and_a_runbook() -> None:
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml")
    alerts = re.findall(r"- alert: (\w+)", (PROMETHEUS / "alerts.yml").read_text())
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "alerts.test.yml").read_text()))
    runbook = (REPO / "docs" / "operations.md").read_text()
    for alert in alerts:
        assert alert in tested, f"{alert} has no promtool test"
        assert f"### {alert}" in runbook, f"{alert} has no runbook section in docs/operations.md"


def dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


def test_dashboard_queries_use_only_catalogued_metrics() -> None:
    catalogue = metrics.catalogue()
    known = set(re.findall(r"`(sentinel_[a-z_]+)`", catalogue))
    for title, expr in dashboard_queries():
        for name in re.findall(r"sentinel_[a-z_]+", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in known or base in known, f"panel {title!r} uses {name}, not in docs/metrics.md"


@pytest.fixture
def scraped_worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[str, WorkerProcess, str]]:
    suffix = uuid.uuid4().hex[:8]
    settings = isolated_settings(
        kafka_bootstrap,
        suffix,
        screening_port=free_port(),
        screening_tokens=f"dashboard:{SCREENING_TOKEN}",
        screening_decisions_topic=f"screening-decisions-{suffix}",
    )
    asyncio.run(prepare_topics(settings))
    worker = start_worker(settings, tmp_path)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: deposit-sentinel\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{settings.metrics_port}']}}]\n"
    )
    prometheus = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        yield f"http://127.0.0.1:{port}", worker, settings
    finally:
        prometheus.send_signal(signal.SIGTERM)
        prometheus.wait(30)
        assert worker.stop() == 0, worker.log()[-3000:]


SCREENING_TOKEN = "dashboard-token-0123456789"


def screen_once(settings: Settings) -> None:
    """One allowed address screen and one refused request, for the screening row."""
    api = f"http://127.0.0.1:{settings.screening_port}/v1/screen/address/ethereum/{RONIN_EXPLOITER}"
    for token in (SCREENING_TOKEN, "wrong-token-000000000000"):
        request = urllib.request.Request(api, headers={"Authorization": f"Bearer {token}"})
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as refused:
            assert refused.code == 401


def query(base: str, expr: str) -> list[dict]:  # type: ignore[type-arg]
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]


def wait_for(condition, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OSError:
            pass  # Prometheus not listening yet
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.mark.kafka
def test_real_prometheus_scrapes_a_worker_and_every_panel_has_data(
    scraped_worker: tuple[str, WorkerProcess, Settings], kafka_bootstrap: str
) -> None:
    base, worker, settings = scraped_worker
    deposits = settings.deposits_topic
    wait_for(lambda: [r for r in query(base, 'up{job="deposit-sentinel"}') if r["value"][1] == "1"], "a scrape")
    # Traffic that moves every panel: alerts, a dead letter, clean events, and a reload (SIGHUP).
    records = [(deposits, b"acct-1", raw(deposit(event_id=f"clean-{i}", from_addresses=[f"s{i}"]))) for i in range(5)]
    records.append(
        (deposits, b"acct-2", raw(deposit(event_id="ronin", account_id="acct-2", from_addresses=[RONIN_EXPLOITER])))
    )
    records.append((deposits, b"acct-3", b"{broken"))
    asyncio.run(produce(kafka_bootstrap, records))
    worker.process.send_signal(signal.SIGHUP)
    screen_once(settings)
    wait_for(
        lambda: (
            query(base, "sum(sentinel_events_consumed_total)")
            and float(query(base, "sum(sentinel_events_consumed_total)")[0]["value"][1]) >= 7
        ),
        "the events counter",
    )
    wait_for(lambda: query(base, "sentinel_broker_to_alert_seconds_count"), "the latency histogram")
    wait_for(lambda: query(base, "sentinel_consumer_lag_records"), "the lag gauge")
    time.sleep(3)  # a few more scrapes, so rates over the window have two points after the traffic
    empty = [(title, expr) for title, expr in dashboard_queries() if not query(base, expr)]
    assert not empty, f"panels without data: {empty}"
