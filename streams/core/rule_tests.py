"""``sentinel rules test``: run the test cases kept beside each rule.

Each case lists events at offsets from a start time and the alerts the rule must raise
(or none). The case runs the whole ruleset from empty state, exactly as ``backtest``
would, and compares only the alerts of the rule that owns the case, so near misses are
tested as carefully as hits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from streams.core.events import Event, EventError, event_from_dict, format_timestamp, parse_moment, stand_alone_json
from streams.core.rules.durations import parse_duration_ms
from streams.core.rules.engine import Ruleset
from streams.core.rules.exposure_rule import ExposureStore
from streams.core.rules.schema import RuleSpec, RuleTest
from streams.core.screening import Record, Screening
from streams.core.transfers import Transfer, transfer_from_dict

DEFAULTS: dict[str, dict[str, Any]] = {
    "deposit": {
        "account_id": "acct-test",
        "chain": "ethereum",
        "asset": "ETH",
        "amount": "1",
        "usd_value": "100",
        "tx_hash": "0xtest{n}",
        "from_addresses": ["0x00000000000000000000000000000000000c1ea4"],
        "to_address": "0x0000000000000000000000000000000000e8c4a1",
    },
    "withdrawal": {
        "account_id": "acct-test",
        "chain": "ethereum",
        "asset": "ETH",
        "amount": "1",
        "usd_value": "100",
        "to_address": "0x00000000000000000000000000000000000de570",
    },
    "transfer": {
        "chain": "ethereum",
        "asset": "ETH",
        "amount": "1",
        "tx_hash": "0xtransfer{n}",
        "from_address": "0x00000000000000000000000000000000000c1ea4",
        "to_address": "0x00000000000000000000000000000000000c1ea5",
    },
}


@dataclass
class CaseResult:
    """The outcome of one test case."""

    rule_id: str
    name: str
    passed: bool
    problem: str = ""
    skipped: bool = False


def build_events(case: RuleTest) -> list[Event | Transfer]:
    """The case's events (and chain transfers), expanded and filled with defaults.

    In event-time order, as ``backtest`` screens a file, or as listed with ``order: listed``
    (an input that arrives late, as it can live).
    """
    try:
        start = parse_moment(case.start)
    except ValueError:
        raise ValueError(f"start {case.start!r} is not an RFC 3339 time") from None
    events: list[tuple[datetime, int, Event | Transfer]] = []
    n = 0
    for spec in case.events:
        fields = dict(spec.model_extra or {})
        for i in range(1, spec.repeat + 1):
            n += 1
            at = start + timedelta(milliseconds=parse_duration_ms(spec.at) + (i - 1) * parse_duration_ms(spec.every))
            data: dict[str, Any] = {**DEFAULTS[spec.type], "event_id": "e{n}", **fields}
            data = {key: _fill(value, i, n) for key, value in data.items()}
            data["type"] = spec.type
            data["timestamp"] = format_timestamp(at)
            try:
                parsed = transfer_from_dict(data) if spec.type == "transfer" else event_from_dict(data)
                events.append((at, n, parsed))
            except EventError as exc:
                raise ValueError(f"event {n} of the case is not valid: {exc.detail}") from None
    if case.order == "time":
        events.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in events]


def _fill(value: Any, i: int, n: int) -> Any:
    if isinstance(value, str):
        return value.replace("{i}", str(i)).replace("{n}", str(n))
    if isinstance(value, list):
        return [_fill(item, i, n) for item in value]
    return value


def run_case(ruleset: Ruleset, rule: RuleSpec, case: RuleTest) -> CaseResult:
    """Run one case against the whole ruleset and compare this rule's alerts."""
    try:
        events = build_events(case)
    except ValueError as exc:
        return CaseResult(rule.id, case.name, False, str(exc))
    # Through the one screening path, exactly as backtest would; "now" is the case's last
    # event, so no event of a case is ever in the future.
    latest = max((e.timestamp for e in events), default=datetime.min.replace(tzinfo=UTC))
    # As listed, a transfer can come after the deposits it exposes: remember them, as live.
    exposure = ExposureStore(remember_deposits=case.order == "listed")
    screening = Screening(ruleset, clock=lambda: latest, exposure=exposure)
    records = (Record("case", 0, n, None, _json(e)) for n, e in enumerate(events, start=1))
    alerts = [a for outcome in screening.screen(records) for a in outcome.alerts if a.rule_id == rule.id]
    if len(alerts) != len(case.expect):
        got = "; ".join(str(a.event_ids) for a in alerts) or "none"
        return CaseResult(rule.id, case.name, False, f"expected {len(case.expect)} alert(s), got {len(alerts)}: {got}")
    for number, (alert, expected) in enumerate(zip(alerts, case.expect, strict=True), start=1):
        if expected.event_ids is not None and alert.event_ids != expected.event_ids:
            return CaseResult(
                rule.id,
                case.name,
                False,
                f"alert {number}: expected events {expected.event_ids}, got {alert.event_ids}",
            )
        if expected.retroactive is not None and alert.retroactive != expected.retroactive:
            return CaseResult(
                rule.id,
                case.name,
                False,
                f"alert {number}: expected retroactive {expected.retroactive}, got {alert.retroactive}",
            )
        if expected.summary_contains is not None and expected.summary_contains not in alert.summary:
            return CaseResult(
                rule.id,
                case.name,
                False,
                f"alert {number}: summary {alert.summary!r} lacks {expected.summary_contains!r}",
            )
    return CaseResult(rule.id, case.name, True)


def _json(item: Event | Transfer) -> bytes:
    if isinstance(item, Transfer):
        return orjson.dumps(item.as_json_dict())
    return stand_alone_json(item)


def run_rule_tests(ruleset: Ruleset) -> list[CaseResult]:
    """Run every test case of every enabled rule; a disabled rule's cases are reported skipped."""
    results = []
    for compiled in ruleset.rules:
        for case in compiled.spec.tests:
            if compiled.spec.enabled:
                results.append(run_case(ruleset, compiled.spec, case))
            else:
                results.append(CaseResult(compiled.spec.id, case.name, True, "rule disabled", skipped=True))
    return results
