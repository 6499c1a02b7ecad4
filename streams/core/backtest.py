"""Offline screening of a file of events with the same engine as the worker.

Reads JSONL of mixed events (each line has ``type``), orders them by event time (ties
keep file order), and writes the alerts exactly as the worker would put them on the
alert topic (only ``detected_at`` differs). Lines that are not valid events are counted
by reason and reported, never skipped silently.

Memory stays proportional to the raw file, not to parsed events: a first pass reads each
line's timestamp only, the lines are sorted by it, and a second pass validates,
evaluates and writes alerts as it goes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from streams.core.alerts import FreezeAlert
from streams.core.events import Clock, line_timestamp
from streams.core.rules.engine import Ruleset
from streams.core.rules.observer import CountingObserver
from streams.core.screening import Record, Screening

_UNKNOWN_TIME = datetime.min.replace(tzinfo=UTC)


@dataclass
class BacktestReport:
    """What a backtest read, found and how fast."""

    lines: int = 0
    events: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    invalid_examples: list[str] = field(default_factory=list)
    alerts_by_rule: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    #: The alerts themselves, when asked to keep them (tests, small files).
    alerts: list[FreezeAlert] = field(default_factory=list)
    held_back: CountingObserver = field(default_factory=CountingObserver)
    seconds: float = 0.0

    @property
    def alert_count(self) -> int:
        """How many alerts the backtest raised."""
        return sum(self.alerts_by_rule.values())

    def table(self) -> str:
        """A summary a person can read: alerts by rule and typology, rates, bad lines."""
        rows = [f"{'rule':<34} {'typology':<20} {'action':<7} {'alerts':>7}"]
        rows += [f"{r:<34} {t:<20} {a:<7} {n:>7}" for (r, t, a), n in sorted(self.alerts_by_rule.items())]
        rows.append(f"{'total':<63} {self.alert_count:>7}")
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
        rows += [f"  late (not in state): {rule}: {count}" for rule, count in sorted(held.late_events.items())]
        rows += [f"  evicted from state: {rule}: {count}" for rule, count in sorted(held.evictions.items())]
        return "\n".join(rows)


def _event_time(line: bytes) -> datetime:
    """The line's timestamp for ordering; anything unreadable sorts first (it is invalid anyway)."""
    return line_timestamp(line) or _UNKNOWN_TIME


def backtest_lines(
    lines: Sequence[bytes],
    ruleset: Ruleset,
    source: str = "file",
    *,
    clock: Clock,
    on_alert: Callable[[FreezeAlert], object] | None = None,
    keep_alerts: bool = True,
) -> BacktestReport:
    """Screen JSONL ``lines`` in event-time order; ``clock`` stamps ``detected_at``."""
    started = time.perf_counter()
    report = BacktestReport(lines=len(lines))
    screening = Screening(ruleset, clock=clock, observer=report.held_back)
    order = sorted(range(len(lines)), key=lambda i: (_event_time(lines[i]), i))
    for index in order:
        number = index + 1
        outcome = screening.screen_one(Record(source, 0, number, None, lines[index]))
        if outcome.dead_letter is not None:
            report.invalid[outcome.dead_letter.reason] += 1
            if len(report.invalid_examples) < 5:
                report.invalid_examples.append(f"{source}:{number}: {outcome.dead_letter.detail[:160]}")
            continue
        report.events += 1
        for alert in outcome.alerts:
            report.alerts_by_rule[(alert.rule_id, alert.typology, alert.action)] += 1
            if keep_alerts:
                report.alerts.append(alert)
            if on_alert is not None:
                on_alert(alert)
    report.seconds = time.perf_counter() - started
    return report


def backtest_file(path: Path, ruleset: Ruleset, output: Path | None, *, clock: Clock) -> BacktestReport:
    """Screen the JSONL file at ``path``; write alerts as JSONL to ``output`` if given."""
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    if output is None:
        return backtest_lines(lines, ruleset, str(path), clock=clock, keep_alerts=False)
    with output.open("wb") as handle:
        write = handle.write
        return backtest_lines(
            lines, ruleset, str(path), clock=clock, keep_alerts=False, on_alert=lambda a: write(a.to_json() + b"\n")
        )
