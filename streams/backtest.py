"""Offline screening of a file of events with the same engine as the worker.

Reads JSONL of mixed events (each line has ``type``), orders them by event time (ties
keep file order), and writes the alerts exactly as the worker would put them on the
alert topic (only ``detected_at`` differs). Lines that are not valid events are counted
by reason and reported, never skipped silently.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streams.alerts import FreezeAlert
from streams.rules.engine import Ruleset
from streams.rules.kinds import CountingObserver
from streams.screening import Record, Screening


@dataclass
class BacktestReport:
    """What a backtest read, found and how fast."""

    lines: int = 0
    events: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    invalid_examples: list[str] = field(default_factory=list)
    alerts: list[FreezeAlert] = field(default_factory=list)
    held_back: CountingObserver = field(default_factory=CountingObserver)
    seconds: float = 0.0

    def table(self) -> str:
        """A summary a person can read: alerts by rule and typology, rates, bad lines."""
        by_rule = Counter((a.rule_id, a.typology, a.action) for a in self.alerts)
        rows = [f"{'rule':<34} {'typology':<20} {'action':<7} {'alerts':>7}"]
        rows += [f"{r:<34} {t:<20} {a:<7} {n:>7}" for (r, t, a), n in sorted(by_rule.items())]
        rows.append(f"{'total':<63} {len(self.alerts):>7}")
        rate = self.events / self.seconds if self.seconds else 0.0
        rows.append(
            f"\n{self.lines} lines, {self.events} events, {sum(self.invalid.values())} invalid, "
            f"{self.seconds:.2f}s, {rate:,.0f} events/s"
        )
        for reason, count in sorted(self.invalid.items()):
            rows.append(f"  invalid: {reason}: {count}")
        rows += [f"  e.g. {example}" for example in self.invalid_examples]
        held = self.held_back
        for (rule_id, exception_id), count in sorted(held.exceptions.items()):
            rows.append(f"  excepted: {rule_id} ({exception_id}): {count}")
        rows += [f"  suppressed: {rule}: {count}" for rule, count in sorted(held.suppressions.items())]
        rows += [
            f"  late (not in state): {rule}: {count}" for rule, count in sorted(held.late_events.items())
        ]
        rows += [f"  evicted from state: {rule}: {count}" for rule, count in sorted(held.evictions.items())]
        return "\n".join(rows)


def backtest_lines(lines: Sequence[bytes], ruleset: Ruleset, source: str = "file") -> BacktestReport:
    """Screen JSONL ``lines`` in event-time order."""
    started = time.perf_counter()
    report = BacktestReport(lines=len(lines))
    screening = Screening(ruleset, observer=report.held_back)
    parsed = []
    for number, line in enumerate(lines, start=1):
        record = Record(source, 0, number, None, line)
        outcome = screening.parse(record)
        if outcome.dead_letter is not None:
            report.invalid[outcome.dead_letter.reason] += 1
            if len(report.invalid_examples) < 5:
                report.invalid_examples.append(f"{source}:{number}: {outcome.dead_letter.detail[:160]}")
        else:
            parsed.append(outcome)
    parsed.sort(key=lambda o: o.event.timestamp if o.event else 0)
    report.events = len(parsed)
    for outcome in parsed:
        screening.evaluate(outcome)
        if outcome.dead_letter is not None:
            report.invalid[outcome.dead_letter.reason] += 1
        report.alerts.extend(outcome.alerts)
    report.seconds = time.perf_counter() - started
    return report


def backtest_file(path: Path, ruleset: Ruleset, output: Path | None) -> BacktestReport:
    """Screen the JSONL file at ``path``; write alerts as JSONL to ``output`` if given."""
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    report = backtest_lines(lines, ruleset, str(path))
    if output is not None:
        with output.open("wb") as handle:
            for alert in report.alerts:
                handle.write(alert.to_json() + b"\n")
    return report
