"""The chaos suite's oracle and score: what ``backtest`` raises on the same input, and the table.

- ``lost``: expected alert ids that never appeared;
- ``duplicates``: alert ids that appeared more than once (at-least-once allows them);
- ``spurious``: alert ids the oracle does not raise.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
from aiokafka import TopicPartition

from streams.core.backtest import backtest_lines
from streams.core.events import wall_clock
from streams.core.rules.loader import load_ruleset
from streams.core.synthetic import synthetic_events
from streams.shell.clients import topic_for
from tests.chaos.cluster import Run
from tests.factories import RONIN_EXPLOITER
from tests.integration.helpers import REPO

RULESET = load_ruleset([REPO / "rules"])


@dataclass
class ScenarioResult:
    """One row of the chaos table."""

    name: str
    events: int
    expected: int
    lost: int
    duplicates: int
    spurious: int
    recovery: float
    notes: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing spurious, and no other guarantee broken."""
        return self.lost == 0 and self.spurious == 0 and not self.problems

    def row(self) -> str:
        return (
            f"| {self.name} | {self.events} | {self.expected} | {self.lost} | {self.duplicates} | "
            f"{self.spurious} | {self.recovery:.1f} | {self.notes} |"
        )


HEADER = (
    "| scenario | events | expected alerts | lost | duplicates | spurious | recovery s | notes |\n"
    "|---|---|---|---|---|---|---|---|"
)


def oracle(lines: list[bytes]) -> set[str]:
    """The alert ids ``backtest`` raises on ``lines``: what the live run must write."""
    return {a.alert_id for a in backtest_lines(lines, RULESET, clock=wall_clock).alerts}


def chaos_input(count: int, seed: int) -> list[bytes]:
    """Synthetic events on few accounts, so windows and sequences fill up and alert."""
    return list(synthetic_events(count, seed=seed, accounts=300, events_per_second=2.0, sanctioned_share=0.02))


def exposure_input(count: int, seed: int) -> list[bytes]:
    """Chain transfers and deposits in time order: a laundering tree from an OFAC-listed seed and clean noise.

    ``count`` events, a third of them deposits. The tree's addresses receive funds only
    from the seed and each other (their share stays 1, whatever order a worker learns it
    in), some 4 hops and more deep (beyond the rule's reach); deposits come from tree
    addresses (after their funds arrived) and clean ones. Live, a deposit's check can still
    reach the exposure side before the transfer that exposes its sender: a retroactive alert.
    """
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    tree: list[tuple[str, int]] = [(RONIN_EXPLOITER, 0)]  # (address, hops from the seed)
    clean = [f"0x{seed:04x}c{n:035x}" for n in range(40)]
    lines = []
    for n in range(count):
        moment = (start + timedelta(seconds=n * 0.5 + 0.25)).isoformat().replace("+00:00", "Z")
        if n % 3 == 2:
            sender = rng.choice([a for a, _ in tree[1:]] or [clean[0]]) if rng.random() < 0.7 else rng.choice(clean)
            item: dict[str, object] = {
                "type": "deposit", "event_id": f"x{seed}-d{n}", "account_id": f"xacct-{rng.randrange(50)}",
                "chain": "ethereum", "asset": "ETH", "amount": "1", "timestamp": moment,
                "tx_hash": f"0x{n:064x}", "from_addresses": [sender], "to_address": "0x" + "e" * 40,
            }  # fmt: skip
        else:
            if rng.random() < 0.6:
                parent, hops = rng.choice(tree)
                receiver = f"0x{seed:04x}a{n:035x}"
                tree.append((receiver, hops + 1))
            else:
                parent, receiver = rng.choice(clean), rng.choice(clean)
            item = {
                "type": "transfer", "event_id": f"x{seed}-t{n}", "chain": "ethereum", "tx_hash": f"0x{n:064x}",
                "from_address": parent, "to_address": receiver, "asset": "ETH",
                "amount": rng.choice(["0", "0.5", "12"]), "timestamp": moment,
            }  # fmt: skip
        lines.append(orjson.dumps(item))
    return lines


def score(run: Run, name: str, lines: list[bytes]) -> ScenarioResult:
    """The scenario's row: the alert topic compared with what the oracle raises on ``lines``."""
    expected = oracle(lines)
    seen = Counter(run.alert_ids())
    return ScenarioResult(
        name=name,
        events=len(lines),
        expected=len(expected),
        lost=len(expected - set(seen)),
        duplicates=sum(1 for n in seen.values() if n > 1),
        spurious=len(set(seen) - expected),
        recovery=max(run.recoveries, default=0.0),
        notes="; ".join(run.notes + run.problems),
        problems=list(run.problems),
    )


def alerts_committed_past(run: Run, lines: list[bytes], committed: dict[TopicPartition, int]) -> list[str]:
    """Oracle alerts none of whose events is still uncommitted.

    While no alert can be acknowledged, the record whose processing raised an alert must
    stay uncommitted, and that record is one of the alert's events (whichever of them the
    worker happened to process last). An alert all of whose events are committed was
    given up on.
    """
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    partitions = list(range(run.settings.topic_partitions))
    where: dict[str, tuple[TopicPartition, int]] = {}
    counters: Counter[TopicPartition] = Counter()
    for line in lines:
        data = orjson.loads(line)
        topic = topic_for(run.settings, data)
        tp = TopicPartition(topic, partitioner(data["account_id"].encode(), partitions, partitions))
        where[data["event_id"]] = (tp, counters[tp])
        counters[tp] += 1
    return [
        alert.alert_id
        for alert in backtest_lines(lines, RULESET, clock=wall_clock).alerts
        if all(committed.get(where[e][0], 0) > where[e][1] for e in alert.event_ids)
    ]
