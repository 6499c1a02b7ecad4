"""The three kinds of rule and how each finds something in an event.

- :class:`EventRule`: a condition on one event.
- :class:`CorrelationRule`: an aggregate (event count, distinct count, sum) over a key's
  events in a sliding event-time window ``(T - timespan, T]``, where ``T`` is the latest
  event time seen for the key.
- :class:`SequenceRule`: a start event, then events that complete it within ``maxspan``
  (optionally by accumulating a field to a fraction of the start's), unless an ``until``
  event comes first.

Stateful rules keep their state in the account's document (see :mod:`streams.core.rules.state`),
under their rule id, and change it in place. An
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
from typing import Any

from streams.core.events import EPOCH, Event, format_timestamp
from streams.core.rules.conditions import Condition, Evidence
from streams.core.rules.durations import format_duration_ms
from streams.core.rules.observer import EngineObserver
from streams.core.rules.schema import RuleSpec
from streams.core.rules.state import AccountState
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
        return self.late_tolerance_ms + max(self.suppress_ms or 0, self._window_ms)

    @property
    def _window_ms(self) -> int:
        return 0

    def find(self, event: Event, t: int, doc: AccountState, observer: EngineObserver) -> list[Finding]:
        """The findings ``event`` (at epoch milliseconds ``t``) completes for this rule.

        ``doc`` is the state document of the event's account; this rule's part of it is
        read and changed in place.
        """
        raise NotImplementedError

    def _admit(self, current: dict[str, Any], event: Event, t: int, observer: EngineObserver) -> dict[str, Any] | None:
        """Advance the key's watermark for the event's type, or ``None`` if the event is late."""
        # The latest time per event type: late means older than the tolerance *within its own
        # topic*, as the two topics are read independently (a deposit processed after a later
        # withdrawal is not late). Inline: this runs for every event of every stateful rule.
        marks: dict[str, int] | None = current.get("t")
        if marks is None:
            marks = current["t"] = {}
        kind = event.type
        latest = marks.get(kind)
        if latest is None or t > latest:
            marks[kind] = t
        elif t < latest - self.late_tolerance_ms:
            observer.late(self.spec.id)
            return None
        return current


@dataclass(frozen=True)
class EventRule(CompiledRule):
    """A condition on a single event."""

    condition: Condition

    def find(self, event: Event, t: int, doc: AccountState, observer: EngineObserver) -> list[Finding]:
        matches = self.condition(event)
        if matches is None:
            return []
        return [Finding(event, [event.event_id], event.timestamp, {"matches": matches})]


#: How far apart in event time the deposits and withdrawals topics may be processed for one
#: account before a sequence that spans both can lose a step (see docs/rules.md).
CROSS_TOPIC_SKEW_MS = 24 * 3_600_000


def _insert(items: list[list[Any]], entry: list[Any]) -> bool:
    """Add ``entry`` keeping ``items`` ordered by (time, event id); in-order arrival is O(1).

    An entry for an event already present is not added again (returns False): a record
    re-processed after a crash must not count twice.
    """
    if not items or (items[-1][0], items[-1][1]) < (entry[0], entry[1]):
        items.append(entry)  # the usual case: events of an account arrive in time order
        return True
    position = bisect.bisect_left(items, (entry[0], entry[1]), key=lambda e: (e[0], e[1]))
    if position < len(items) and items[position][0] == entry[0] and items[position][1] == entry[1]:
        return False
    if position == len(items):
        items.append(entry)
    else:
        items.insert(position, entry)
    return True


def _drop_until(items: list[list[Any]], horizon: int) -> None:
    """Remove the entries older than ``horizon`` from the front of the ordered ``items``."""
    if items and items[0][0] < horizon:
        del items[: bisect.bisect_left(items, horizon, key=lambda e: e[0])]


@dataclass(frozen=True)
class CorrelationRule(CompiledRule):
    """An aggregate over a key's events in a sliding event-time window."""

    condition: Condition | None
    aggregate: str
    field: str | None
    timespan_ms: int
    threshold: Callable[[Decimal | int], bool]
    threshold_text: str
    max_state: int

    @property
    def _window_ms(self) -> int:
        return self.timespan_ms

    def find(self, event: Event, t: int, doc: AccountState, observer: EngineObserver) -> list[Finding]:
        matches: Evidence = []
        if self.condition is not None:
            found = self.condition(event)
            if found is None:
                return []
            matches = found
        value = self._value(event)
        if value is None:
            return []  # nothing to count: e.g. a sum of usd_value over an event without one
        current = doc.get(self.spec.id)
        if current is None:
            current = {"t": {}, "e": []}
        if self._admit(current, event, t, observer) is None:
            return []
        marks = current["t"]
        entries: list[list[Any]] = current["e"]
        _insert(entries, [t, event.event_id, value])
        latest = max(marks.values())
        # Entries at or before T - timespan can never be in a window again: windows end
        # at T, which only grows, and late events do not move it.
        _drop_until(entries, latest - self.timespan_ms + 1)
        if len(entries) > self.max_state:
            observer.evicted(self.spec.id, len(entries) - self.max_state)
            del entries[: len(entries) - self.max_state]
        doc[self.spec.id] = current
        total = self._aggregate(entries)
        if not self.threshold(total):
            return []
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

    def _value(self, event: Event) -> Any:
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

    def _aggregate(self, entries: list[list[Any]]) -> Decimal | int:
        # Counts stay ints: they compare with the Decimal threshold exactly, and print alike.
        if self.aggregate == "event_count":
            return len(entries)
        if self.aggregate == "sum":
            return sum((Decimal(entry[2]) for entry in entries), Decimal(0))
        if len(entries) == 1:
            return len(entries[0][2])  # the values of one entry are distinct already
        distinct: set[str] = set()
        for entry in entries:
            distinct.update(entry[2])  # a list of normalised values
        return len(distinct)


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
    def _window_ms(self) -> int:
        # Pending steps are kept up to the skew allowed between the two topics, too.
        return self.maxspan_ms + CROSS_TOPIC_SKEW_MS

    @cached_property
    def _step_types(self) -> frozenset[str]:
        """The event types of the steps (each type is read from its own topic)."""
        return frozenset({self.start_type, self.then_type} | ({self.until_type} if self.until_type else set()))

    def find(self, event: Event, t: int, doc: AccountState, observer: EngineObserver) -> list[Finding]:
        is_start = event.type == self.start_type and self.start(event) is not None
        is_then = event.type == self.then_type and self.then(event) is not None
        is_until = self.until is not None and event.type == self.until_type and self.until(event) is not None
        base = self._amount(event) if is_start and self.total else None
        if is_start and self.total and base is None:
            is_start = False  # no value to measure the rest against
        if not (is_start or is_then or is_until):
            return []
        current = doc.get(self.spec.id)
        if current is None:
            current = {"t": {}, "s": [], "n": [], "u": []}
        if self._admit(current, event, t, observer) is None:
            return []
        marks = current["t"]
        starts: list[list[Any]] = current["s"]
        thens: list[list[Any]] = current["n"]
        untils: list[list[Any]] = current["u"]
        if is_start:
            _insert(starts, [t, event.event_id, base, False])
        if is_then:
            _insert(thens, [t, event.event_id, self._amount(event)])
        if is_until:
            _insert(untils, [t, event.event_id])
        # A late start (within tolerance) still needs the thens after it, and a late then the
        # starts up to maxspan before it. The steps come from two topics read independently,
        # so measure from the topic that is furthest behind (within a bounded skew).
        types = self._step_types
        latest = max(marks.values())
        if len(types) > 1 and not types <= marks.keys():
            behind = latest - CROSS_TOPIC_SKEW_MS  # one topic not seen yet for this account
        else:
            behind = max(min(marks[kind] for kind in types), latest - CROSS_TOPIC_SKEW_MS)
        horizon = behind - self.maxspan_ms - self.late_tolerance_ms
        for items in (starts, thens, untils):
            _drop_until(items, horizon)
            if len(items) > self.max_state:
                observer.evicted(self.spec.id, len(items) - self.max_state)
                del items[: len(items) - self.max_state]
        # Without a "then" step in state no start can complete (the usual case for a deposit).
        findings = [f for s in starts if not s[3] for f in self._complete(s, thens, untils, event)] if thens else []
        doc[self.spec.id] = current
        return findings

    def _amount(self, event: Event) -> str | None:
        if self.total is None:
            return None
        value = getattr(event, self.total)
        return None if value is None else str(value)

    def _complete(
        self, start: list[Any], thens: list[list[Any]], untils: list[list[Any]], event: Event
    ) -> list[Finding]:
        """Walk the steps after ``start`` in event-time order; mark it done if they complete it."""
        begin, start_id, base, _ = start
        end = begin + self.maxspan_ms
        steps = [(e[0], e[1], "then", e[2]) for e in thens if begin <= e[0] <= end and e[1] != start_id]
        steps += [(e[0], e[1], "until", None) for e in untils if begin <= e[0] <= end and e[1] != start_id]
        steps.sort(key=lambda step: (step[0], step[1]))
        used: list[str] = []
        accumulated = Decimal(0)
        when = begin
        for when, event_id, role, value in steps:  # noqa: B007 - 'when' is the completion time
            if role == "until":
                return []
            used.append(event_id)
            if self.total is None or self.reaches is None:
                break
            accumulated += Decimal(value) if value is not None else Decimal(0)
            if accumulated >= self.reaches * Decimal(base):
                break
        else:
            return []
        start[3] = True
        evidence: dict[str, Any] = {
            "matches": [],
            "sequence": {
                "start": {"event_id": start_id, "time": format_timestamp(from_epoch_ms(begin))},
                "maxspan": format_duration_ms(self.maxspan_ms),
                "completed": format_timestamp(from_epoch_ms(when)),
            },
        }
        if self.total is not None and self.reaches is not None:
            evidence["sequence"].update(
                {
                    "field": self.total,
                    "start_value": base,
                    "total": str(accumulated),
                    "reaches": str(self.reaches),
                    "ratio": str((accumulated / Decimal(base)).quantize(Decimal("0.0001"))) if Decimal(base) else "n/a",
                }
            )
        return [Finding(event, [start_id, *used], from_epoch_ms(when), evidence)]
