"""What the engine tells about its work: events held back, findings dropped, time spent.

The engine and :class:`~streams.core.screening.Screening` report to an :class:`EngineObserver`;
the worker's counts them in Prometheus (:class:`streams.shell.metrics.PrometheusObserver`),
``backtest`` and the tests with a :class:`CountingObserver`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class EngineObserver(Protocol):
    """Told about what the engine drops or holds back, so it can be counted and shown."""

    def late(self, rule_id: str) -> None:
        """An event arrived beyond the rule's late tolerance and did not enter its state."""

    def evicted(self, rule_id: str, count: int) -> None:
        """The per-key state bound pushed out ``count`` oldest entries."""

    def excepted(self, rule_id: str, exception_id: str) -> None:
        """A finding matched an exception (allowlist) and raised no alert."""

    def allowlisted(self, rule_id: str, entry_id: str, event_id: str) -> None:
        """A finding on ``event_id`` was covered by allowlist entry ``entry_id`` and raised no alert."""

    def suppressed(self, rule_id: str) -> None:
        """A finding fell within the rule's suppression period for its key."""

    def evaluated(self, seconds: float) -> None:
        """One event was evaluated against the ruleset in ``seconds`` (parse excluded)."""


@dataclass
class CountingObserver:
    """An observer that counts, for backtests and tests."""

    late_events: dict[str, int] = field(default_factory=dict)
    evictions: dict[str, int] = field(default_factory=dict)
    exceptions: dict[tuple[str, str], int] = field(default_factory=dict)
    suppressions: dict[str, int] = field(default_factory=dict)
    allowlisted_findings: dict[tuple[str, str], int] = field(default_factory=dict)
    evaluations: int = 0
    evaluation_seconds: float = 0.0

    def late(self, rule_id: str) -> None:
        self.late_events[rule_id] = self.late_events.get(rule_id, 0) + 1

    def evicted(self, rule_id: str, count: int) -> None:
        self.evictions[rule_id] = self.evictions.get(rule_id, 0) + count

    def excepted(self, rule_id: str, exception_id: str) -> None:
        key = (rule_id, exception_id)
        self.exceptions[key] = self.exceptions.get(key, 0) + 1

    def allowlisted(self, rule_id: str, entry_id: str, event_id: str) -> None:
        key = (rule_id, entry_id)
        self.allowlisted_findings[key] = self.allowlisted_findings.get(key, 0) + 1

    def suppressed(self, rule_id: str) -> None:
        self.suppressions[rule_id] = self.suppressions.get(rule_id, 0) + 1

    def evaluated(self, seconds: float) -> None:
        self.evaluations += 1
        self.evaluation_seconds += seconds

    def add(self, other: CountingObserver) -> None:
        """Add ``other``'s counts to these (a backtest shared over processes)."""
        for mine, theirs in (
            (self.late_events, other.late_events),
            (self.evictions, other.evictions),
            (self.suppressions, other.suppressions),
        ):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        for mine_pairs, their_pairs in (
            (self.exceptions, other.exceptions),
            (self.allowlisted_findings, other.allowlisted_findings),
        ):
            for pair, count in their_pairs.items():
                mine_pairs[pair] = mine_pairs.get(pair, 0) + count
        self.evaluations += other.evaluations
        self.evaluation_seconds += other.evaluation_seconds
