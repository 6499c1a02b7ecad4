"""The worker on the real broker: exactly which alerts and dead letters come out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streams.core.alerts import alert_id_for
from streams.shell.settings import Settings
from tests.factories import RONIN_EXPLOITER, SDN_TRON, deposit, raw, withdrawal
from tests.integration.helpers import (
    WorkerProcess,
    collect,
    isolated_settings,
    prepare_topics,
    produce,
    start_worker,
)

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str) -> Settings:
    return isolated_settings(kafka_bootstrap, unique)


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    import asyncio

    asyncio.run(prepare_topics(settings))
    process = start_worker(settings, tmp_path)
    yield process
    assert process.stop() == 0, process.log()[-4000:]


async def test_alerts_and_dead_letters_are_exactly_what_the_input_calls_for(
    settings: Settings, worker: WorkerProcess
) -> None:
    deposits, withdrawals = settings.deposits_topic, settings.withdrawals_topic
    inputs: list[tuple[str, bytes | None, bytes | None, str | None]] = [
        # (topic, key, value, expected dead-letter reason or None)
        (deposits, b"acct-1", raw(deposit(event_id="good-1")), None),
        (
            deposits,
            b"acct-2",
            raw(deposit(event_id="ronin-1", account_id="acct-2", from_addresses=[RONIN_EXPLOITER])),
            None,
        ),
        (deposits, b"acct-3", b'{"event_id": "broken", "amount": ', "invalid_json"),
        (deposits, b"acct-3", raw(deposit(event_id="no-sender", from_addresses=...)), "missing_field"),
        (deposits, b"acct-3", raw(deposit(event_id="negative", amount="-5")), "invalid_field"),
        (deposits, b"acct-3", raw(deposit(event_id="huge", amount="1" * 40)), "invalid_field"),
        (deposits, b"acct-3", raw(deposit(event_id="doge", chain="dogechain")), "invalid_field"),
        (deposits, b"acct-3", b"\xc3\x28 not utf-8", "invalid_utf8"),
        (deposits, b"acct-3", None, "empty_value"),
        (deposits, b"acct-4", raw(withdrawal(event_id="wrong-topic")), "type_mismatch"),
        (
            deposits,
            b"acct-5",
            raw(
                deposit(
                    event_id="ronin-2",
                    account_id="acct-5",
                    from_addresses=[RONIN_EXPLOITER.lower(), "bc1qclean"],
                )
            ),
            None,
        ),
        (
            withdrawals,
            b"acct-6",
            raw(withdrawal(event_id="to-sdn", account_id="acct-6", to_address=SDN_TRON)),
            None,
        ),
        (withdrawals, b"acct-7", raw(withdrawal(event_id="good-wd", account_id="acct-7")), None),
        (deposits, b"acct-8", raw(deposit(event_id="good-2", account_id="acct-8")), None),
    ]
    await produce(settings.kafka_bootstrap_servers, [(t, k, v) for t, k, v, _ in inputs])
    expected_dead = sorted(reason for *_, reason in inputs if reason)
    expected_alerts = {
        alert_id_for("ofac-sanctioned-sender", "1.0.0", ["ronin-1"]): ("acct-2", "ofac-sanctioned-sender"),
        alert_id_for("ofac-sanctioned-sender", "1.0.0", ["ronin-2"]): ("acct-5", "ofac-sanctioned-sender"),
        alert_id_for("ofac-sanctioned-destination", "1.0.0", ["to-sdn"]): (
            "acct-6",
            "ofac-sanctioned-destination",
        ),
    }

    records = await collect(
        settings.kafka_bootstrap_servers,
        [settings.alerts_topic, settings.dead_letter_topic],
        expected=len(expected_alerts) + len(expected_dead),
    )

    alerts = [r for r in records if r.topic == settings.alerts_topic]
    dead = [r for r in records if r.topic == settings.dead_letter_topic]
    got = {}
    for record in alerts:
        alert = orjson.loads(record.value)
        assert record.key == alert["account_id"].encode()
        assert alert["typology"] == "sanctions" and alert["action"] == "freeze" and alert["severity"] == "critical"
        assert alert["ruleset_version"].startswith("rs-")
        got[alert["alert_id"]] = (alert["account_id"], alert["rule_id"])
    assert len(alerts) == len(expected_alerts), "an alert was duplicated or spurious"
    assert got == expected_alerts

    reasons = []
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["sentinel.source.topic"] == deposits
        assert headers["sentinel.error.detail"]
        source = next(i for i in inputs if i[2] == record.value and i[1] == record.key)
        assert headers["sentinel.error.reason"] == source[3], headers
        reasons.append(headers["sentinel.error.reason"])
    assert sorted(reasons) == expected_dead

    metrics = worker.metrics()
    assert f'sentinel_events_consumed_total{{result="alerted",topic="{deposits}"}} 2.0' in metrics
    assert f'sentinel_events_consumed_total{{result="dead_lettered",topic="{deposits}"}} 8.0' in metrics
    assert f'sentinel_events_consumed_total{{result="clean",topic="{withdrawals}"}} 1.0' in metrics
    assert f'sentinel_dead_letters_total{{reason="invalid_field",topic="{deposits}"}} 3.0' in metrics
    assert 'sentinel_alerts_total{action="freeze",mode="enforce",rule_id="ofac-sanctioned-sender"' in metrics
    assert "sentinel_broker_to_alert_seconds_count 3.0" in metrics
    assert "sentinel_event_to_alert_seconds_count 3.0" in metrics
    # No account or address ever appears in a label.
    assert "acct-" not in metrics and RONIN_EXPLOITER.lower() not in metrics.lower()


async def test_health_readiness_and_operational_metrics(settings: Settings, worker: WorkerProcess) -> None:
    import json
    import time
    import urllib.request

    base = worker.metrics_url.removesuffix("/metrics")
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
        assert response.status == 200
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
                body = json.loads(response.read())
                break
        except urllib.error.HTTPError as exc:  # 503 until partitions are assigned and recovered
            assert time.monotonic() < deadline, exc.read()
            time.sleep(0.5)
    assert body["ready"] is True and all(body["conditions"].values()), body
    await produce(settings.kafka_bootstrap_servers, [(settings.deposits_topic, b"acct-1", raw(deposit()))])
    deadline = time.monotonic() + 30
    while "sentinel_consumer_lag_records{" not in (text := worker.metrics()):
        assert time.monotonic() < deadline, "no lag gauge after 30 s"
        time.sleep(0.5)
    assert "sentinel_rule_evaluation_seconds_count 1.0" in text
    assert "sentinel_rebalances_total" in text and "sentinel_state_keys 1.0" in text
    # The account's state is held decoded, and was never decoded from the table: it is new.
    assert "sentinel_state_cached 1.0" in text and "sentinel_state_decoded_total 0.0" in text


async def test_the_state_changelog_has_small_segments(settings: Settings, worker: WorkerProcess) -> None:
    """Compaction cleans closed segments only: the changelog must roll often (streams.shell.app)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from streams.shell.clients import started_admin
    from streams.shell.topics import CHANGELOG_TOPIC_CONFIGS

    topic = f"{settings.app_id}-rule-state-changelog"
    async with started_admin(settings) as admin:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    entries = {entry[0]: entry[1] for response in responses for result in response.resources for entry in result[4]}
    assert entries["cleanup.policy"] == "compact"
    for name, value in CHANGELOG_TOPIC_CONFIGS.items():
        assert entries[name] == value, (name, entries.get(name))
