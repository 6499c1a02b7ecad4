"""Property: for any stream of events, the live worker and ``backtest`` raise the same alerts.

One worker runs on the real broker for the whole module. Each Hypothesis example uses
accounts (and chain addresses) of its own, produces its events (each topic in event-time
order, as a ledger and a chain would), waits until the worker has consumed every one of
them (its own metrics say so), and compares the set of alert ids for those accounts with
an offline backtest.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streams.core.backtest import backtest_lines
from streams.core.events import wall_clock
from streams.core.rules.loader import load_ruleset
from streams.shell.clients import key_for, topic_for
from streams.shell.settings import Settings
from tests.factories import RONIN_EXPLOITER, SDN_TRON
from tests.integration.helpers import (
    REPO,
    WorkerProcess,
    collect,
    isolated_settings,
    prepare_topics,
    produce,
    start_worker,
)

pytestmark = pytest.mark.kafka

PHISHING = "0x80d7bb18521acbef32d7906502ebe94928690e93"
SENDERS = [RONIN_EXPLOITER, PHISHING, *(f"0x{n:040x}" for n in range(1, 13))]
DESTINATIONS = [SDN_TRON, *(f"dest-{n}" for n in range(1, 13))]
USD = [None, "500", "999.99", "1000", "9500", "9999.99", "250000", "1200000"]
GAPS = [0, 1, 30, 300, 1200, 1799, 1801, 2400, 7200]
AMOUNTS = ["0", "0.4", "5", "300"]
BASE = datetime(2026, 3, 1, tzinfo=UTC)
EXAMPLE = itertools.count()

single = st.tuples(
    st.sampled_from(["deposit", "withdrawal"]),
    st.integers(0, 2),  # account
    st.sampled_from(GAPS),
    st.sampled_from(USD),
    st.integers(0, len(SENDERS) - 1),
    st.integers(1, 3),  # UTXO inputs
)
# Bursts: the shapes of fan-in, fan-out and structuring, at or near their thresholds.
burst = st.tuples(
    st.sampled_from(["deposit", "withdrawal"]),
    st.integers(0, 2),
    st.sampled_from([30, 60, 400]),  # seconds between events of the burst
    st.sampled_from([None, "9500"]),
    st.integers(0, len(SENDERS) - 1),
    st.integers(8, 12),  # events in the burst
).map(lambda b: [(b[0], b[1], b[2], b[3], (b[4] + i) % len(SENDERS), 1) for i in range(b[5])])
steps = st.lists(st.one_of(single.map(lambda s: [s]), burst), min_size=1, max_size=12).map(
    lambda groups: [step for group in groups for step in group]
)


def build(example: int, raw_steps: list[tuple[str, int, int, str | None, int, int]]) -> list[dict[str, Any]]:
    clocks = [BASE, BASE, BASE]
    events = []
    for number, (kind, account, gap, usd, address, inputs) in enumerate(raw_steps):
        clocks[account] += timedelta(seconds=gap)
        event: dict[str, Any] = {
            "type": kind,
            "event_id": f"x{example}-{number}",
            "account_id": f"x{example}-acct-{account}",
            "chain": "ethereum",
            "asset": "ETH",
            "amount": "1.5",
            "timestamp": clocks[account].strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if usd is not None:
            event["usd_value"] = usd
        if kind == "deposit":
            senders = [SENDERS[(address + i) % len(SENDERS)] for i in range(inputs)]
            event.update(tx_hash=f"0x{number:064x}", from_addresses=senders, to_address="0x" + "e" * 40)
        else:
            event["to_address"] = DESTINATIONS[address % len(DESTINATIONS)]
        events.append(event)
    return events


class LiveRun:
    def __init__(self, settings: Settings, worker: WorkerProcess) -> None:
        self.settings = settings
        self.worker = worker
        self.produced: Counter[str] = Counter()

    def consumed(self) -> Counter[str]:
        """Records screened so far, by topic (the worker's own count)."""
        found: Counter[str] = Counter()
        pattern = r'^sentinel_events_consumed_total\{.*topic="([^"]+)".*\} (\S+)$'
        for topic, value in re.findall(pattern, self.worker.metrics(), re.M):
            found[topic] += int(float(value))
        return found

    def screen(self, events: list[dict[str, Any]]) -> None:
        """Produce ``events`` in time order and wait until each, and each exposure check it made, is screened."""
        ordered = sorted(events, key=lambda e: (e["timestamp"], e["event_id"]))
        records = [(topic_for(self.settings, e), key_for(e), orjson.dumps(e)) for e in ordered]
        asyncio.run(produce(self.settings.kafka_bootstrap_servers, records))
        self.produced.update(topic for topic, _, _ in records)
        # Every deposit is passed on to the exposure side (the shipped exposure rule looks at deposits).
        self.produced[self.settings.exposure_checks_topic] += sum(e["type"] == "deposit" for e in events)
        deadline = time.monotonic() + 120
        while any((consumed := self.consumed())[topic] < count for topic, count in self.produced.items()):
            assert time.monotonic() < deadline, f"worker consumed {consumed} of {self.produced}"
            time.sleep(0.1)

    def alerts(self, prefix: str) -> list[dict[str, Any]]:
        records = asyncio.run(
            collect(self.settings.kafka_bootstrap_servers, [self.settings.alerts_topic], expected=0, settle=0.5)
        )
        alerts = [orjson.loads(r.value) for r in records]
        return [a for a in alerts if a["account_id"].startswith(prefix)]


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    import uuid

    settings = isolated_settings(kafka_bootstrap, uuid.uuid4().hex[:8])
    asyncio.run(prepare_topics(settings))
    worker = start_worker(settings, tmp_path_factory.mktemp("live"))
    yield LiveRun(settings, worker)
    assert worker.stop() == 0, worker.log()[-4000:]


RULESET = load_ruleset([REPO / "rules"])


EVERY_RULE = [
    ("deposit", 0, 0, "1000", 5, 1),  # pass-through: a deposit ...
    ("withdrawal", 0, 300, "1000", 3, 1),  # ... drained within 5 minutes
    ("deposit", 1, 0, "1200000", 6, 1),  # velocity
    ("deposit", 2, 0, None, 0, 1),  # OFAC sender (Ronin exploiter)
    ("deposit", 2, 30, None, 1, 1),  # labelled phishing sender
    ("withdrawal", 2, 30, None, 0, 1),  # OFAC destination
    *(("deposit", 1, 60, None, 2 + i, 1) for i in range(10)),  # fan-in
    *(("withdrawal", 0, 60, None, 1 + i, 1) for i in range(10)),  # fan-out
    *(("deposit", 2, 60, "9500", 13, 1) for _ in range(3)),  # structuring
]


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@example(raw_steps=EVERY_RULE)
@given(raw_steps=steps)
def test_worker_and_backtest_raise_the_same_alerts(live: LiveRun, raw_steps: list[Any]) -> None:
    example = next(EXAMPLE)
    events = build(example, raw_steps)
    expected = {a.alert_id for a in backtest_lines([orjson.dumps(e) for e in events], RULESET, clock=wall_clock).alerts}
    live.screen(events)
    got = [a["alert_id"] for a in live.alerts(f"x{example}-")]
    assert len(got) == len(set(got)), "an alert was produced twice"
    assert set(got) == expected


# Chain transfers among a seed (hop 0, the Ronin exploiter on the OFAC list) and five
# addresses of the example's own: (sender, receiver, seconds since the previous one, amount).
# Transfers fall on even seconds and deposits on odd ones, so a backtest's time order
# never has to break a tie between the two.
flow = st.tuples(st.integers(0, 5), st.integers(1, 5), st.sampled_from([2, 60, 600]), st.sampled_from(AMOUNTS))
paid_in = st.tuples(st.integers(1, 5), st.sampled_from([30, 900, 3600]))  # (sender, seconds since the previous)
TWO_HOPS = ([(0, 1, 2, "5"), (1, 2, 60, "5"), (3, 2, 60, "300")], [(2, 30), (2, 3600)])


def build_flows(
    example: int, flows: list[tuple[int, int, int, str]], deposits: list[tuple[int, int]], start: datetime = BASE
) -> list[Any]:
    def address(i: int) -> str:
        return RONIN_EXPLOITER if i == 0 else f"0x{example:08x}{i:032x}"

    items: list[dict[str, Any]] = []
    clock = start
    for n, (sender, receiver, gap, amount) in enumerate(flows):
        clock += timedelta(seconds=gap)
        items.append({
            "type": "transfer", "event_id": f"x{example}-t{n}", "chain": "ethereum", "tx_hash": f"0x{n:064x}",
            "from_address": address(sender), "to_address": address(receiver), "asset": "ETH", "amount": amount,
            "timestamp": clock.strftime("%Y-%m-%dT%H:%M:%SZ"),
        })  # fmt: skip
    clock = start + timedelta(seconds=1)
    for n, (sender, gap) in enumerate(deposits):
        clock += timedelta(seconds=gap)
        items.append({
            "type": "deposit", "event_id": f"x{example}-d{n}", "account_id": f"x{example}-acct-{n % 3}",
            "chain": "ethereum", "asset": "ETH", "amount": "1", "timestamp": clock.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tx_hash": f"0x{n:064x}", "from_addresses": [address(sender)], "to_address": "0x" + "e" * 40,
        })  # fmt: skip
    return items


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@example(flows=TWO_HOPS[0], deposits=TWO_HOPS[1])
@given(flows=st.lists(flow, min_size=1, max_size=14), deposits=st.lists(paid_in, min_size=1, max_size=6))
def test_worker_and_backtest_follow_chain_transfers_alike(
    live: LiveRun, flows: list[tuple[int, int, int, str]], deposits: list[tuple[int, int]]
) -> None:
    example = next(EXAMPLE)
    items = build_flows(example, flows, deposits)
    expected = {a.alert_id for a in backtest_lines([orjson.dumps(i) for i in items], RULESET, clock=wall_clock).alerts}
    # The chain's transfers first, as a chain makes them; then the ledger's deposits.
    live.screen([i for i in items if i["type"] == "transfer"])
    live.screen([i for i in items if i["type"] == "deposit"])
    got = [a["alert_id"] for a in live.alerts(f"x{example}-")]
    assert len(got) == len(set(got)), "an alert was produced twice"
    assert set(got) == expected


def test_a_deposit_screened_before_its_senders_funds_arrive_gets_one_retroactive_alert(live: LiveRun) -> None:
    """Deposits first, then the transfers (a chain feed that lags): the alerts come when the funds are known."""
    example = next(EXAMPLE)
    flows = [(0, 1, 2, "5"), (1, 2, 60, "5"), (0, 3, 600, "5")]
    # A month after the other examples: the chain feed has not passed these deposits yet.
    items = build_flows(example, flows, [(2, 900), (3, 900), (4, 30)], start=BASE + timedelta(days=30))
    expected = {a.alert_id for a in backtest_lines([orjson.dumps(i) for i in items], RULESET, clock=wall_clock).alerts}
    assert len(expected) == 2
    live.screen([i for i in items if i["type"] == "deposit"])
    assert live.alerts(f"x{example}-") == []  # nothing is known of the senders yet
    live.screen([i for i in items if i["type"] == "transfer"])
    deadline = time.monotonic() + 30
    while len(found := live.alerts(f"x{example}-")) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {a["alert_id"] for a in found} == expected and len(found) == 2
    assert all(a["retroactive"] for a in found)
    assert sorted(a["evidence"]["exposure"]["hops"] for a in found) == [1, 2]


def test_the_property_was_exercised(live: LiveRun) -> None:
    """Guard against a vacuous pass: the examples above must have raised real alerts, of every rule."""
    assert live.produced
    rules = {a["rule_id"] for a in live.alerts("x")}
    assert rules == {r.spec.id for r in RULESET.rules}, rules
