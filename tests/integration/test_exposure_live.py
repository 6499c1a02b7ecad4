"""Indirect exposure on the real broker: chain transfers and deposits give the alerts backtest gives."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.core.backtest import backtest_lines
from streams.core.events import wall_clock
from streams.core.rules.loader import load_ruleset
from tests.data import REPO
from tests.factories import RONIN_EXPLOITER, deposit
from tests.integration.helpers import collect, isolated_settings, prepare_topics, produce, start_worker

pytestmark = pytest.mark.kafka

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def addr(n: int) -> str:
    return f"0x{n:040x}"


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def transfer(n: int, minutes: float, sender: str, receiver: str, amount: str = "10") -> dict[str, Any]:
    return {
        "type": "transfer", "event_id": f"t{n}", "chain": "ethereum", "tx_hash": f"0x{n:064x}",
        "from_address": sender, "to_address": receiver, "asset": "ETH", "amount": amount, "timestamp": at(minutes),
    }  # fmt: skip


def dep(event_id: str, minutes: float, sender: str) -> dict[str, Any]:
    return deposit(event_id=event_id, account_id=f"acct-{event_id}", from_addresses=[sender], timestamp=at(minutes))


def test_two_hops_and_a_retroactive_alert_as_backtest_gives_them(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = isolated_settings(kafka_bootstrap, uuid.uuid4().hex[:8])
    asyncio.run(prepare_topics(settings))
    a, b, c = addr(0xA1), addr(0xB2), addr(0xC3)
    transfers = [transfer(1, 1, RONIN_EXPLOITER, a), transfer(2, 2, a, b, "5"), transfer(3, 30, RONIN_EXPLOITER, c)]
    # The deposit from c is screened before the transfer that exposes c arrives: retroactive.
    deposits = [dep("two-hops", 10, b), dep("early", 40, c), dep("clean", 40, addr(0xDD))]
    expected = {
        x.alert_id
        for x in backtest_lines(
            [orjson.dumps(item) for item in transfers + deposits], load_ruleset([REPO / "rules"]), clock=wall_clock
        ).alerts
    }
    assert len(expected) == 2
    worker = start_worker(settings, tmp_path)
    try:
        bootstrap = settings.kafka_bootstrap_servers
        records: list[tuple[str, bytes | None, bytes | None]] = [
            (settings.deposits_topic, d["account_id"].encode(), orjson.dumps(d)) for d in deposits[1:]
        ]
        asyncio.run(produce(bootstrap, records))
        records = [(settings.transfers_topic, b"ethereum", orjson.dumps(t)) for t in transfers]
        records.append((settings.deposits_topic, b"acct-two-hops", orjson.dumps(deposits[0])))
        asyncio.run(produce(bootstrap, records))
        got = asyncio.run(collect(bootstrap, [settings.alerts_topic], expected=2, timeout=60))
        alerts = {orjson.loads(r.value)["alert_id"]: orjson.loads(r.value) for r in got}
        assert set(alerts) == expected, worker.log()[-4000:]
        by_account = {x["account_id"]: x for x in alerts.values()}
        assert by_account["acct-two-hops"]["evidence"]["exposure"]["hops"] == 2
        assert by_account["acct-early"]["retroactive"] is True
    finally:
        assert worker.stop() == 0, worker.log()[-4000:]
