"""Offline screening of a file of events with the same engine as the worker.

Reads JSONL of mixed events (each line has ``type``), orders them by event time (ties
keep file order), and writes the alerts exactly as the worker would put them on the
alert topic (only ``detected_at`` differs). Lines that are not valid events are counted
by reason and reported, never skipped silently.

Memory stays proportional to the raw file, not to parsed events: a first pass reads each
line's timestamp and account only, the lines are sorted by time, and a second pass
validates, evaluates and writes alerts as it goes. Rule state is kept for the accounts
active within the ruleset's horizon only: accounts idle for longer are deleted, as the
worker's state sweep deletes them (an event that comes later finds the same results
without them). A sweep walks every account held, so sweeps are at least
:data:`SWEEP_EVERY` records apart and at least half as many as the accounts held: at
most two accounts looked at per record, and at most half again the horizon's accounts held.

With ``jobs`` above 1 the accounts are shared out over that many processes (rule state is
per account, so each process screens its accounts exactly as one process would), and
their alerts are merged back into the one-process order: the output is the same.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from streams.core.alerts import FreezeAlert
from streams.core.allowlist import Allowlist
from streams.core.events import Clock
from streams.core.lines import line_time_and_account
from streams.core.rules.engine import Ruleset
from streams.core.rules.observer import CountingObserver
from streams.core.rules.state import DictStore
from streams.core.screening import Record, Screening
from streams.core.shards import in_processes, share_of

_UNKNOWN_TIME = datetime.min.replace(tzinfo=UTC)
#: The fewest records screened between two sweeps of idle accounts' state.
SWEEP_EVERY = 50_000


@dataclass
class BacktestReport:
    """What a backtest read, found and how fast."""

    lines: int = 0
    events: int = 0
    #: Things the reader should know about how the file was screened.
    notes: list[str] = field(default_factory=list)
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
        rows += [f"  note: {note}" for note in self.notes]
        return "\n".join(rows)


def _time_and_account(line: bytes) -> tuple[datetime, str | None]:
    """The line's timestamp for ordering (unreadable: first; it is invalid anyway) and its account."""
    moment, account = line_time_and_account(line)
    return moment or _UNKNOWN_TIME, account


def _is_transfer_line(line: bytes) -> bool:
    return b'"transfer"' in line or b'"token_transfer"' in line or b'"transaction"' in line


def time_order(lines: Sequence[bytes]) -> tuple[list[tuple[datetime, str | None]], list[int]]:
    """Each line's (time, account) and the line indexes in event-time order (ties keep file order)."""
    keys = [_time_and_account(line) for line in lines]
    return keys, sorted(range(len(lines)), key=lambda i: (keys[i][0], i))


@dataclass
class _Shard:
    """What one process screened: its share of the report, alerts and examples keyed by position."""

    events: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    invalid_examples: list[tuple[int, str]] = field(default_factory=list)
    alerts: list[tuple[int, FreezeAlert]] = field(default_factory=list)
    held_back: CountingObserver = field(default_factory=CountingObserver)


def _screen(
    lines: Sequence[bytes],
    positions: Sequence[int],
    order: Sequence[int],
    ruleset: Ruleset,
    source: str,
    clock: Clock,
    emit: Callable[[int, FreezeAlert], object],
    allowlist: Allowlist | None,
) -> _Shard:
    """Screen the lines at ``positions`` of ``order`` (ascending), handing each alert to ``emit``."""
    shard = _Shard()
    state = DictStore()
    screening = Screening(ruleset, clock=clock, observer=shard.held_back, allowlist=allowlist, state=state)
    horizon_ms, latest_ms, next_sweep = screening.state_horizon_ms, 0, SWEEP_EVERY
    for count, position in enumerate(positions, 1):
        index = order[position]
        number = index + 1
        outcome = screening.screen_one(Record(source, 0, number, None, lines[index]))
        if outcome.event is not None and outcome.event.epoch_ms > latest_ms:
            latest_ms = outcome.event.epoch_ms
        if count >= next_sweep:
            state.expire(latest_ms, horizon_ms)
            next_sweep = count + max(SWEEP_EVERY, len(state.accounts) // 2)
        if outcome.dead_letter is not None:
            shard.invalid[outcome.dead_letter.reason] += 1
            if len(shard.invalid_examples) < 5:
                shard.invalid_examples.append((position, f"{source}:{number}: {outcome.dead_letter.detail[:160]}"))
            continue
        shard.events += 1
        for alert in outcome.alerts:
            emit(position, alert)
    return shard


def backtest_lines(
    lines: Sequence[bytes],
    ruleset: Ruleset,
    source: str = "file",
    *,
    clock: Clock,
    on_alert: Callable[[FreezeAlert], object] | None = None,
    keep_alerts: bool = True,
    jobs: int = 1,
    allowlist: Allowlist | None = None,
) -> BacktestReport:
    """Screen JSONL ``lines`` in event-time order; ``clock`` stamps ``detected_at``.

    ``jobs`` processes share the accounts out (see the module's docstring); the report
    and the order of the alerts are those of one process. ``allowlist`` entries apply
    as they would live (in event time).
    """
    started = time.perf_counter()
    report = BacktestReport(lines=len(lines))
    keys, order = time_order(lines)

    def take(position: int, alert: FreezeAlert) -> None:
        report.alerts_by_rule[(alert.rule_id, alert.typology, alert.action)] += 1
        if keep_alerts:
            report.alerts.append(alert)
        if on_alert is not None:
            on_alert(alert)

    if jobs > 1 and ruleset.exposure_rules and any(_is_transfer_line(line) for line in lines):
        # Shares are by account and a transfer has none: every process would need every
        # transfer for its exposure graphs. Until the sharing copies them, screen in one.
        report.notes.append(f"--jobs {jobs} ignored: the file has chain transfers; screened in one process")
        jobs = 1
    if jobs <= 1:
        shards = [_screen(lines, range(len(order)), order, ruleset, source, clock, take, allowlist)]
    else:
        shares: list[list[int]] = [[] for _ in range(jobs)]
        for position, index in enumerate(order):
            shares[share_of(keys[index][1], jobs)].append(position)

        def screen_share(number: int) -> _Shard:
            found: list[tuple[int, FreezeAlert]] = []
            collect = found.append
            shard = _screen(
                lines, shares[number], order, ruleset, source, clock, lambda p, a: collect((p, a)), allowlist
            )
            shard.alerts = found
            return shard

        shards = in_processes(jobs, screen_share)
        for position, alert in heapq.merge(*(shard.alerts for shard in shards), key=lambda item: item[0]):
            take(position, alert)
    for shard in shards:
        report.events += shard.events
        report.invalid.update(shard.invalid)
        report.held_back.add(shard.held_back)
    examples = heapq.merge(*(shard.invalid_examples for shard in shards))
    report.invalid_examples = [text for _, text in examples][:5]
    report.seconds = time.perf_counter() - started
    return report


def backtest_file(
    path: Path,
    ruleset: Ruleset,
    output: Path | None,
    *,
    clock: Clock,
    jobs: int = 1,
    keep_alerts: bool = False,
    allowlist: Allowlist | None = None,
) -> BacktestReport:
    """Screen the JSONL file at ``path`` with ``jobs`` processes; write alerts as JSONL to ``output`` if given."""
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    if output is None:
        return backtest_lines(
            lines, ruleset, str(path), clock=clock, keep_alerts=keep_alerts, jobs=jobs, allowlist=allowlist
        )
    with output.open("wb") as handle:
        write = handle.write
        return backtest_lines(
            lines,
            ruleset,
            str(path),
            clock=clock,
            keep_alerts=keep_alerts,
            on_alert=lambda a: write(a.to_json() + b"\n"),
            jobs=jobs,
            allowlist=allowlist,
        )
