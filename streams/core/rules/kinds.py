"""The three kinds of rule and how each finds something in an event.

- :class:`EventRule`: a condition on one event.
- :class:`CorrelationRule`: an aggregate (event count, distinct count, sum) over a key's
  events in a sliding event-time window ``(T - timespan, T]``, where ``T`` is the latest
  event time seen for the key.
- :class:`SequenceRule`: a start event, then events that complete it within ``maxspan``
  (optionally by accumulating a field to a fraction of the start's), unless an ``until``
  event comes first.

Stateful rules keep their part of the account's state (see :mod:`streams.core.rules.state`)
and change it in place, writing the inverse of every change to a journal. An
event older than ``T - late_tolerance``, where ``T`` is the latest time seen for the key
*among events of the same type* (deposits and withdrawals come from different topics,
read independently), is *late*: it is still screened by single-event rules but does not
enter windows or sequences (the observer counts it).
State per key is bounded by ``max_state``; the oldest entries are evicted first.

Sequences are evaluated from state in event-time order whichever step arrives first,
so a withdrawal processed before the deposit it follows (they come from different
topics) still completes the sequence.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, cast

from streams.core.events import EPOCH, Event, format_timestamp
from streams.core.rules.conditions import Condition, Evidence
from streams.core.rules.durations import format_duration_ms
from streams.core.rules.observer import EngineObserver
from streams.core.rules.progress import Progress
from streams.core.rules.schema import RuleSpec
from streams.core.rules.state import (
    AccountState,
    Journal,
    Sequence,
    Start,
    Then,
    Until,
    Window,
    advance_mark,
    drop_front,
    insert_ordered,
    older_than,
    set_entry,
)
from streams.core.rules.templates import Summary


def from_epoch_ms(millis: int) -> datetime:
    """The UTC moment ``millis`` after the epoch."""
    return EPOCH + timedelta(milliseconds=millis)


@dataclass(frozen=True)
class Finding:
    """What a rule found, before exceptions and suppression decide whether it alerts."""

    event: Event
    event_ids: list[str]
    event_time: datetime
    evidence: dict[str, Any]


@dataclass(frozen=True)
class RuleException:
    """A compiled exception: findings whose triggering event matches it raise no alert."""

    id: str
    reason: str
    condition: Condition


@dataclass(frozen=True)
class CompiledRule:
    """What every kind of rule shares."""

    spec: RuleSpec
    summary: Summary
    origin: Any
    exceptions: tuple[RuleException, ...]
    suppress_ms: int | None
    late_tolerance_ms: int

    @property
    def horizon_ms(self) -> int:
        """How long after an account's latest event this rule's state can still change a result.

        An event at least this much later (event time) finds the rule's part of the
        document no different from an empty one: every window entry and pending step has
        fallen out, the suppression period is over, and no watermark makes it late.
        """
        return self.late_tolerance_ms + max(self.suppress_ms or 0, self.window_ms)

    @property
    def window_ms(self) -> int:
        """How far back this rule looks over an account's events (0: the event alone decides)."""
        return 0

    def find(
        self, event: Event, t: int, doc: AccountState, observer: EngineObserver, journal: Journal
    ) -> list[Finding]:
        """The findings ``event`` (at epoch milliseconds ``t``) completes for this rule.

        ``doc`` is the state of the event's account; this rule's part of it is read and
        changed in place, and the inverse of each change is written to ``journal``.
        """
        raise NotImplementedError

    def _admit(self, marks: dict[str, int], event: Event, t: int, observer: EngineObserver, journal: Journal) -> bool:
        """Advance the key's watermark for the event's type; False if the event is late."""
        # The latest time per event type: late means older than the tolerance *within its own
        # topic*, as the two topics are read independently (a deposit processed after a later
        # withdrawal is not late).
        kind = event.type
        latest = marks.get(kind)
        if latest is None or t > latest:
            advance_mark(marks, kind, t, journal)
        elif t < latest - self.late_tolerance_ms:
            observer.late(self.spec.id)
            return False
        return True


@dataclass(frozen=True)
class EventRule(CompiledRule):
    """A condition on a single event."""

    condition: Condition

    def find(
        self, event: Event, t: int, doc: AccountState, observer: EngineObserver, journal: Journal
    ) -> list[Finding]:
        matches = self.condition(event)
        if matches is None:
            return []
        return [Finding(event, [event.event_id], event.timestamp, {"matches": matches})]


#: How far apart in event time the deposits and withdrawals topics may be processed for one
#: account before a sequence that spans both can lose a step (see docs/rules.md).
CROSS_TOPIC_SKEW_MS = 24 * 3_600_000


@dataclass(frozen=True)
class CorrelationRule(CompiledRule):
    """An aggregate over a key's events in a sliding event-time window."""

    condition: Condition | None
    aggregate: str
    field: str | None
    timespan_ms: int
    #: The condition on the aggregate; a sum's is on its integer units (10^-18).
    threshold: Callable[[Decimal | int], bool]
    threshold_text: str
    max_state: int

    @property
    def window_ms(self) -> int:
        return self.timespan_ms

    def find(
        self, event: Event, t: int, doc: AccountState, observer: EngineObserver, journal: Journal
    ) -> list[Finding]:
        matches: Evidence = []
        if self.condition is not None:
            found = self.condition(event)
            if found is None:
                return []
            matches = found
        value = self.counted_value(event)
        if value is None:
            return []  # nothing to count: e.g. a sum of usd_value over an event without one
        window = cast(Window, doc.parts.get(self.spec.id) or doc.new_part(self.spec.id, Window, journal))
        if not self._admit(window.marks, event, t, observer, journal):
            return []
        window.add((t, event.event_id, value), journal)
        entries = window.entries
        latest = max(window.marks.values())
        # Entries at or before T - timespan can never be in a window again: windows end
        # at T, which only grows, and late events do not move it.
        expired = older_than(entries, latest - self.timespan_ms + 1)
        if expired:
            window.drop(expired, journal)
        if len(entries) > self.max_state:
            observer.evicted(self.spec.id, len(entries) - self.max_state)
            window.drop(len(entries) - self.max_state, journal)
        # A sum is compared in the window's integer units; its Decimal is made only for the finding.
        if not self.threshold(window.units if self.aggregate == "sum" else window.total(self.aggregate)):
            return []
        total = window.total(self.aggregate)
        evidence = {
            "matches": matches,
            "window": {
                "aggregate": self.aggregate,
                "field": self.field,
                "value": str(total),
                "condition": self.threshold_text,
                "timespan": format_duration_ms(self.timespan_ms),
                "start": format_timestamp(from_epoch_ms(entries[0][0])),
                "end": format_timestamp(from_epoch_ms(latest)),
                "events": len(entries),
            },
        }
        return [Finding(event, [entry[1] for entry in entries], from_epoch_ms(latest), evidence)]

    def counted_value(self, event: Event) -> Any:
        """What ``event`` adds to the window (1, a decimal string, addresses), or ``None``: nothing to count."""
        if self.aggregate == "event_count":
            return 1
        assert self.field is not None
        if self.aggregate == "sum":
            amount = getattr(event, self.field)
            return None if amount is None else str(amount)
        if self.field in ("from_addresses", "to_address"):
            keys = event.address_keys(self.field)
            return list(keys) if len(keys) == 1 else sorted(set(keys))
        raw = getattr(event, self.field, None)
        return None if raw is None else [str(raw)]


@dataclass(frozen=True)
class SequenceRule(CompiledRule):
    """A start event, then events that complete it within ``maxspan``, unless ``until`` first."""

    start: Condition
    start_type: str
    then: Condition
    then_type: str
    until: Condition | None
    until_type: str | None
    total: str | None
    reaches: Decimal | None
    maxspan_ms: int
    max_state: int

    @property
    def window_ms(self) -> int:
        # Pending steps are kept up to the skew allowed between the two topics, too.
        return self.maxspan_ms + CROSS_TOPIC_SKEW_MS

    @cached_property
    def _step_types(self) -> frozenset[str]:
        """The event types of the steps (each type is read from its own topic)."""
        return frozenset({self.start_type, self.then_type} | ({self.until_type} if self.until_type else set()))

    def find(
        self, event: Event, t: int, doc: AccountState, observer: EngineObserver, journal: Journal
    ) -> list[Finding]:
        is_start = event.type == self.start_type and self.start(event) is not None
        is_then = event.type == self.then_type and self.then(event) is not None
        is_until = self.until is not None and event.type == self.until_type and self.until(event) is not None
        base = self._amount(event) if is_start and self.total else None
        if is_start and self.total and base is None:
            is_start = False  # no value to measure the rest against
        if not (is_start or is_then or is_until):
            return []
        sequence = cast(Sequence, doc.parts.get(self.spec.id) or doc.new_part(self.spec.id, Sequence, journal))
        if not self._admit(sequence.marks, event, t, observer, journal):
            return []
        starts, thens, untils = sequence.starts, sequence.thens, sequence.untils
        if is_start:
            insert_ordered(starts, (t, event.event_id, base, False), journal)
        if is_then:
            insert_ordered(thens, (t, event.event_id, self._amount(event)), journal)
        if is_until:
            insert_ordered(untils, (t, event.event_id), journal)
        # A late start (within tolerance) still needs the thens after it, and a late then the
        # starts up to maxspan before it. The steps come from two topics read independently,
        # so measure from the topic that is furthest behind (within a bounded skew).
        marks = sequence.marks
        types = self._step_types
        latest = max(marks.values())
        if len(types) > 1 and not types <= marks.keys():
            behind = latest - CROSS_TOPIC_SKEW_MS  # one topic not seen yet for this account
        else:
            behind = max(min(marks[kind] for kind in types), latest - CROSS_TOPIC_SKEW_MS)
        horizon = behind - self.maxspan_ms - self.late_tolerance_ms
        unblocked = False
        for items in (starts, thens, untils):
            expired = older_than(items, horizon)
            if expired:
                drop_front(items, expired, journal)
            if len(items) > self.max_state:
                observer.evicted(self.spec.id, len(items) - self.max_state)
                drop_front(items, len(items) - self.max_state, journal)
                unblocked = unblocked or items is untils
        # Without a "then" step in state no start can complete (the usual case for a deposit).
        if not thens or not (is_start or is_then or unblocked):
            return []
        # Only this event can have completed a start: a new "then" the starts up to maxspan
        # before it, a new start itself (an "until" only ever cancels). Every other start was
        # walked when its own steps arrived, unless the state bound pushed out an "until".
        if unblocked:
            first, last = 0, len(starts)
        elif is_then:
            first = bisect.bisect_left(starts, t - self.maxspan_ms, key=lambda s: s[0])
            last = bisect.bisect_right(starts, t, key=lambda s: s[0])
        else:
            first = bisect.bisect_left(starts, (t, event.event_id), key=lambda s: (s[0], s[1]))
            last = first + 1
        findings: list[Finding] = []
        for position in range(first, min(last, len(starts))):
            start = starts[position]
            if start[3]:
                continue
            finding = self._complete(start, thens, untils, event)
            if finding is not None:
                set_entry(starts, position, (*start[:3], True), journal)
                findings.append(finding)
        return findings

    def _amount(self, event: Event) -> str | None:
        if self.total is None:
            return None
        value = getattr(event, self.total)
        return None if value is None else str(value)

    def progress(self, start: Start, thens: list[Then], untils: list[Until]) -> Progress:
        """Walk the steps after ``start`` in event-time order, as far as they go (``sentinel explain`` shows it)."""
        begin, start_id, base, _ = start
        end = begin + self.maxspan_ms
        steps: list[Any] = _between(thens, begin, end)  # (time, event id, value): in step order
        if untils:
            blocking = _between(untils, begin, end)
            if blocking:
                steps = [(*e, "then") for e in steps] + [(e[0], e[1], None, "until") for e in blocking]
                steps.sort(key=lambda step: (step[0], step[1]))
        goal = self.reaches * Decimal(base) if self.total is not None and self.reaches is not None and base else None
        walked = Progress(start, end, goal, when=begin)
        for step in steps:
            if step[1] == start_id:
                continue
            if len(step) == 4 and step[3] == "until":
                walked.cancelled_by = step[1]
                return walked
            walked.when = step[0]
            walked.used.append(step[1])
            if goal is None:
                walked.complete = True
                return walked
            if step[2] is not None:
                walked.accumulated += Decimal(step[2])
            if walked.accumulated >= goal:
                walked.complete = True
                return walked
        return walked

    def _complete(self, start: Start, thens: list[Then], untils: list[Until], event: Event) -> Finding | None:
        """The finding if the steps after ``start`` complete it."""
        walked = self.progress(start, thens, untils)
        if not walked.complete:
            return None
        begin, start_id, base, _ = start
        evidence: dict[str, Any] = {
            "matches": [],
            "sequence": {
                "start": {"event_id": start_id, "time": format_timestamp(from_epoch_ms(begin))},
                "maxspan": format_duration_ms(self.maxspan_ms),
                "completed": format_timestamp(from_epoch_ms(walked.when)),
            },
        }
        if self.total is not None and self.reaches is not None:
            evidence["sequence"].update(
                {
                    "field": self.total,
                    "start_value": base,
                    "total": str(walked.accumulated),
                    "reaches": str(self.reaches),
                    "ratio": _ratio(walked.accumulated, base),
                }
            )
        return Finding(event, [start_id, *walked.used], from_epoch_ms(walked.when), evidence)


def _ratio(total: Decimal, base: str | None) -> str:
    """``total / base`` to four places, or "n/a" for a zero base."""
    if base is None or not Decimal(base):
        return "n/a"
    return str((total / Decimal(base)).quantize(Decimal("0.0001")))


def _between(items: list[Any], begin: int, end: int) -> list[Any]:
    """The entries of the time-ordered ``items`` with ``begin <= time <= end``."""
    if not items or items[-1][0] < begin or items[0][0] > end:
        return []
    first = bisect.bisect_left(items, begin, key=lambda e: e[0])
    return items[first : bisect.bisect_right(items, end, key=lambda e: e[0], lo=first)]
