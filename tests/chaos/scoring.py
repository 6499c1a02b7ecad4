"""The chaos suite's oracle and score: what ``backtest`` raises on the same input, and the table.

- ``lost``: expected alert ids that never appeared;
- ``duplicates``: alert ids that appeared more than once (at-least-once allows them);
- ``spurious``: alert ids the oracle does not raise.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import orjson
from aiokafka import TopicPartition

from streams.core.backtest import backtest_lines
from streams.core.events import wall_clock
from streams.core.rules.loader import load_ruleset
from streams.core.synthetic import synthetic_events
from streams.shell.clients import topic_for
from tests.chaos.cluster import Run
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
