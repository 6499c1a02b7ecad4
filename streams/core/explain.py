"""``sentinel explain``: every rule's verdict on one event, or on one account's events, and why.

The events are screened by the one screening path (:class:`~streams.core.screening.Screening`,
the engine the worker runs), in event-time order as ``backtest`` does, so the verdicts are
the engine's own: alerts are the alerts it raised; exceptions, allowlist entries, suppression
and late events are what it reported to its observer; and a rule that found nothing is
explained from the compiled conditions and from the state the engine left (the window's
value against the threshold, how far each open sequence got). Rule state is per account,
so only the account's own events are screened, which gives the same state as the whole file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

import orjson

from streams.core.allowlist import Allowlist
from streams.core.backtest import time_order
from streams.core.events import Clock, Event, format_timestamp
from streams.core.rules.durations import format_duration_ms
from streams.core.rules.engine import Ruleset
from streams.core.rules.exposure_rule import ExposureRule, ExposureStore
from streams.core.rules.kinds import CompiledRule, CorrelationRule, EventRule, SequenceRule, from_epoch_ms
from streams.core.rules.observer import CountingObserver
from streams.core.rules.reasons import why_not
from streams.core.rules.state import AccountState, Window
from streams.core.rules.state import Sequence as SequenceState
from streams.core.screening import Record, Screening
from streams.core.transfers import Transfer

Outcome = Literal["alert", "no_alert", "excepted", "allowlisted", "suppressed", "late", "not_applicable", "duplicate"]
MAX_STARTS_SHOWN = 3


@dataclass
class Verdict:
    """One rule's answer for one event, and the reason in plain words."""

    rule_id: str
    outcome: Outcome
    reason: str
    alert_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The verdict for ``--json``."""
        data: dict[str, Any] = {"rule_id": self.rule_id, "outcome": self.outcome, "reason": self.reason}
        if self.alert_ids:
            data["alert_ids"] = self.alert_ids
        return data


@dataclass
class Explanation:
    """The verdicts on one line of the file (or why the line is not an event)."""

    line: int
    event: Event | None
    verdicts: list[Verdict] = field(default_factory=list)
    invalid: str | None = None

    def verdict(self, rule_id: str) -> Verdict:
        """The verdict of ``rule_id`` (for tests and tools)."""
        return next(v for v in self.verdicts if v.rule_id == rule_id)

    def as_dict(self) -> dict[str, Any]:
        """The explanation for ``--json``."""
        data: dict[str, Any] = {"line": self.line}
        if self.event is not None:
            data["event"] = _event_head(self.event)
        if self.invalid is not None:
            data["invalid"] = self.invalid
        data["verdicts"] = [v.as_dict() for v in self.verdicts]
        return data

    def text(self) -> str:
        """The explanation for a person."""
        if self.event is None:
            return f"line {self.line}: not an event: {self.invalid}"
        head = _event_head(self.event)
        rows = [f"{head['type']} {head['event_id']} of {head['account_id']} at {head['timestamp']} (line {self.line}):"]
        labels = {"alert": "ALERT", "no_alert": "no alert", "not_applicable": "n/a"}
        rows += [f"  {labels.get(v.outcome, v.outcome):<12} {v.rule_id:<28} {v.reason}" for v in self.verdicts]
        return "\n".join(rows)


class _Recorder(CountingObserver):
    """Counts like any observer, and remembers what happened to each rule during one event."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: dict[str, tuple[str, str]] = {}

    def late(self, rule_id: str) -> None:
        super().late(rule_id)
        self.notes.setdefault(rule_id, ("late", ""))

    def excepted(self, rule_id: str, exception_id: str) -> None:
        super().excepted(rule_id, exception_id)
        self.notes.setdefault(rule_id, ("excepted", exception_id))

    def allowlisted(self, rule_id: str, entry_id: str, event_id: str) -> None:
        super().allowlisted(rule_id, entry_id, event_id)
        self.notes.setdefault(rule_id, ("allowlisted", entry_id))

    def suppressed(self, rule_id: str) -> None:
        super().suppressed(rule_id)
        self.notes.setdefault(rule_id, ("suppressed", ""))


def explain_lines(
    lines: Sequence[bytes],
    ruleset: Ruleset,
    *,
    clock: Clock,
    allowlist: Allowlist | None = None,
    event_id: str | None = None,
    account_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Explanation]:
    """The explanations of event ``event_id``, or of ``account_id``'s events in ``[since, until)``."""
    if (event_id is None) == (account_id is None):
        raise ValueError("explain one event (event_id) or one account (account_id)")
    if event_id is not None:
        account_id = _account_of(lines, event_id)
    keys, order = time_order(lines)
    recorder = _Recorder()
    screening = Screening(ruleset, clock=clock, observer=recorder, allowlist=allowlist)
    explained: list[Explanation] = []
    for index in order:
        # The account's own events, and every chain transfer (the exposure rules' graphs).
        if keys[index][1] not in (account_id, None):
            continue
        recorder.notes = {}
        outcome = screening.screen_one(Record("file", 0, index + 1, None, lines[index]))
        event = outcome.event
        if event is None or isinstance(event, Transfer) or not _wanted(event, event_id, since, until):
            continue
        doc = screening.state.account(event.account_id, 0)
        explanation = Explanation(index + 1, event)
        if outcome.dead_letter is not None:
            explanation.invalid = f"{outcome.dead_letter.reason}: {outcome.dead_letter.detail}"
        for rule in ruleset.rules:
            if rule.spec.enabled:
                verdict = _verdict(
                    rule, event, outcome.alerts, recorder.notes, doc, allowlist, outcome.duplicate, screening.exposure
                )
                explanation.verdicts.append(verdict)
        explained.append(explanation)
    if event_id is not None and not explained:
        raise ValueError(f"event {event_id!r} is not a valid event of the file")
    return explained


def _account_of(lines: Sequence[bytes], event_id: str) -> str:
    for line in lines:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict) and data.get("event_id") == event_id and isinstance(data.get("account_id"), str):
            return cast(str, data["account_id"])
    raise ValueError(f"no event {event_id!r} with an account_id in the file")


def _wanted(event: Event, event_id: str | None, since: datetime | None, until: datetime | None) -> bool:
    if event_id is not None:
        return event.event_id == event_id
    return (since is None or event.timestamp >= since) and (until is None or event.timestamp < until)


def _verdict(
    rule: CompiledRule,
    event: Event,
    alerts: list[Any],
    notes: dict[str, tuple[str, str]],
    doc: AccountState,
    allowlist: Allowlist | None,
    duplicate: bool,
    exposure: ExposureStore,
) -> Verdict:
    spec = rule.spec
    if event.type not in spec.events:
        return Verdict(spec.id, "not_applicable", f"looks at {' and '.join(spec.events)} events only")
    if duplicate:
        resend = "an event with this id was already screened for the account: a resend, not evaluated"
        return Verdict(spec.id, "duplicate", resend)
    mine = [alert for alert in alerts if alert.rule_id == spec.id]
    if mine:
        return Verdict(spec.id, "alert", mine[0].summary, [alert.alert_id for alert in mine])
    note, detail = notes.get(spec.id, ("", ""))
    if note == "excepted":
        reason = next(e.reason for e in rule.exceptions if e.id == detail)
        return Verdict(spec.id, "excepted", f"a finding, but exception {detail} of the rule matched: {reason}")
    if note == "allowlisted":
        return Verdict(spec.id, "allowlisted", f"a finding, but {_entry_text(allowlist, detail)}")
    if note == "suppressed":
        last = doc.suppressed.get(spec.id)
        began = format_timestamp(from_epoch_ms(last.at)) if last else "?"
        written = spec.suppress or (spec.correlation.timespan if spec.correlation else None)
        period = written or format_duration_ms(rule.suppress_ms or 0)
        reason = f"a finding, but within the {period} suppression period begun by the alert at {began}"
        return Verdict(spec.id, "suppressed", reason)
    if note == "late":
        tolerance = format_duration_ms(rule.late_tolerance_ms)
        reason = f"late: more than {tolerance} older than the account's latest {event.type}; not taken into state"
        return Verdict(spec.id, "late", reason)
    return Verdict(spec.id, "no_alert", _why_nothing(rule, event, doc, exposure))


def _why_nothing(rule: CompiledRule, event: Event, doc: AccountState, exposure: ExposureStore) -> str:
    if isinstance(rule, ExposureRule):
        return _exposure_reason(rule, event, exposure)
    if isinstance(rule, EventRule):
        return why_not(rule.condition, event)
    if isinstance(rule, CorrelationRule):
        return _window_reason(rule, event, doc)
    if isinstance(rule, SequenceRule):
        return _sequence_reason(rule, event, doc)
    return "no finding"


def _exposure_reason(rule: ExposureRule, event: Event, exposure: ExposureStore) -> str:
    if rule.condition is not None and rule.condition(event) is None:
        return f"not screened: {why_not(rule.condition, event)}"
    graph = exposure.of(rule.spec.id).graph
    texts = []
    for index, key in enumerate(event.address_keys(rule.field_name)):
        shown = event.addresses(rule.field_name)[index]
        found = graph.exposed.get(key)
        if rule.config.seed_of(key) is not None:
            texts.append(f"{shown} is itself on a seed list (hop 0: the direct rules' case)")
        elif found is None:
            texts.append(
                f"{shown} is not exposed within {rule.config.max_hops} hops of {_seed_names(rule)} at this time"
            )
        elif found.since_ms > event.epoch_ms:
            since = format_timestamp(from_epoch_ms(found.since_ms))
            texts.append(f"{shown} was exposed only from {since}, after this event")
        else:
            share = f"{found.share_at(event.epoch_ms) * 100:.1f}%"
            texts.append(f"{shown} is {found.hops} hops from a seed with {share} of its funds, below {rule.min_share}")
    return "; ".join(texts) or f"no address in {rule.field_name}"


def _seed_names(rule: ExposureRule) -> str:
    return ", ".join(address_list.info.id for address_list in rule.config.seeds)


def _window_reason(rule: CorrelationRule, event: Event, doc: AccountState) -> str:
    if rule.condition is not None and rule.condition(event) is None:
        return f"not counted: {why_not(rule.condition, event)}"
    if rule.counted_value(event) is None:
        return f"not counted: the event has no {rule.field}"
    window = doc.parts.get(rule.spec.id)
    assert isinstance(window, Window)
    what = {"event_count": "events", "distinct_count": f"distinct {rule.field}", "sum": f"sum of {rule.field}"}
    value = window.total(rule.aggregate)
    start = format_timestamp(from_epoch_ms(window.entries[0][0])) if window.entries else "-"
    return (
        f"{what[rule.aggregate]} in the {_as_written(rule)} window: {value}"
        f" ({len(window.entries)} event{'' if len(window.entries) == 1 else 's'} since {start}),"
        f" needs {rule.threshold_text}"
    )


def _sequence_reason(rule: SequenceRule, event: Event, doc: AccountState) -> str:
    steps = []
    for name, condition, kind in (("start", rule.start, rule.start_type), ("then", rule.then, rule.then_type)):
        if event.type == kind and condition(event) is not None:
            steps.append(name)
    if rule.until is not None and event.type == rule.until_type and rule.until(event) is not None:
        steps.append("until")
    if not steps:
        failing = [
            f"{name}: {why_not(condition, event)}"
            for name, condition, kind in (("start", rule.start, rule.start_type), ("then", rule.then, rule.then_type))
            if event.type == kind
        ]
        return "not a step of the sequence (" + "; ".join(failing) + ")"
    sequence = doc.parts.get(rule.spec.id)
    assert isinstance(sequence, SequenceState)
    t = event.epoch_ms
    open_starts = [s for s in sequence.starts if not s[3] and s[0] <= t and t <= s[0] + rule.maxspan_ms]
    if "start" in steps:
        open_starts = [s for s in sequence.starts if s[1] == event.event_id and not s[3]] or open_starts
    if not open_starts:
        span = format_duration_ms(rule.maxspan_ms)
        return f"a {'/'.join(steps)} step, but no start of the sequence is open (within {span})"
    texts = []
    for start in open_starts[-MAX_STARTS_SHOWN:]:
        walked = rule.progress(start, sequence.thens, sequence.untils)
        began = format_timestamp(from_epoch_ms(start[0]))
        deadline = format_timestamp(from_epoch_ms(walked.deadline))
        if walked.cancelled_by is not None:
            texts.append(f"start {start[1]} at {began} cancelled by {walked.cancelled_by}")
        elif walked.goal is not None:
            texts.append(
                f"start {start[1]} at {began} ({rule.total} {start[2]}): {rule.total} {walked.accumulated} so far of"
                f" the {walked.goal.normalize():f} needed ({rule.reaches} x) by {deadline}"
            )
        else:
            texts.append(f"start {start[1]} at {began}: no completing step yet (until {deadline})")
    return f"a {'/'.join(steps)} step; " + "; ".join(texts)


def _as_written(rule: CorrelationRule) -> str:
    """The window's timespan as the rule file spells it (24h, not 1d)."""
    correlation = rule.spec.correlation
    return correlation.timespan if correlation is not None else format_duration_ms(rule.timespan_ms)


def _entry_text(allowlist: Allowlist | None, entry_id: str) -> str:
    add = allowlist.adds.get(entry_id) if allowlist is not None else None
    if add is None or add.until is None:
        return f"allowlist entry {entry_id} covers it"
    return (
        f"allowlist entry {entry_id} covers it ({add.scope}, until {format_timestamp(add.until)},"
        f" by {add.by}: {add.reason})"
    )


def _event_head(event: Event) -> dict[str, str]:
    return {
        "type": event.type,
        "event_id": event.event_id,
        "account_id": event.account_id,
        "timestamp": format_timestamp(event.timestamp),
    }
