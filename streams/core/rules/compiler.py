"""Compile one validated rule into the :class:`~streams.core.rules.kinds.CompiledRule` of its kind.

The second stage of loading (as Falco's compiler): conditions, summary template,
exceptions, suppression, thresholds and durations are compiled once, so evaluation does
no parsing. Errors carry the rule file's line and column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from streams.core.exposure import ExposureConfig
from streams.core.lists import AddressList
from streams.core.rules.conditions import DECIMAL_FIELDS, FIELDS, Condition, ConditionError, Macros, compile_condition
from streams.core.rules.durations import parse_duration_ms
from streams.core.rules.exposure_rule import ExposureRule
from streams.core.rules.kinds import CompiledRule, CorrelationRule, EventRule, RuleException, SequenceRule
from streams.core.rules.schema import Comparison, RuleSpec
from streams.core.rules.source import Position, RuleFileError, position_of
from streams.core.rules.state import SUM_SCALE
from streams.core.rules.templates import TemplateError, compile_summary


def compile_rule(
    raw: Any,
    index: int,
    spec: RuleSpec,
    lists: dict[str, AddressList],
    macros: Macros,
    origin: Position | str,
) -> CompiledRule:
    """Compile rule ``index`` of the file ``raw`` (as read, for positions); ``origin`` is where it starts."""

    def condition(node: Any, *where: str | int) -> Condition:
        try:
            return compile_condition(node, lists, macros)
        except ConditionError as exc:
            position = position_of(raw, ("rules", index, *where, *exc.path), origin)
            raise RuleFileError(position, f"{'.'.join(map(str, where))}: {exc.message}", spec.id) from None

    try:
        summary = compile_summary(spec.summary, spec.id, spec.name)
    except TemplateError as exc:
        raise RuleFileError(position_of(raw, ("rules", index, "summary"), origin), str(exc), spec.id) from None
    exceptions = tuple(
        RuleException(e.id, e.reason, condition(e.condition, "exceptions", i, "condition"))
        for i, e in enumerate(spec.exceptions)
    )
    default_suppress = spec.correlation.timespan if spec.correlation else None
    suppress = spec.suppress if spec.suppress is not None else default_suppress
    common: dict[str, Any] = {
        "spec": spec,
        "summary": summary,
        "origin": origin,
        "exceptions": exceptions,
        "suppress_ms": None if suppress in (None, "none") else parse_duration_ms(suppress),
        "late_tolerance_ms": parse_duration_ms(spec.late_tolerance),
    }
    if spec.correlation is not None:
        corr = spec.correlation
        where = ("rules", index, "correlation")
        if corr.field is not None and corr.field not in FIELDS:
            raise RuleFileError(
                position_of(raw, (*where, "field"), origin),
                f"correlation: unknown field {corr.field!r}",
                spec.id,
            )
        if corr.type == "sum" and corr.field not in DECIMAL_FIELDS:
            raise RuleFileError(
                position_of(raw, (*where, "field"), origin),
                f"correlation: sum needs a number field ({', '.join(sorted(DECIMAL_FIELDS))})",
                spec.id,
            )
        try:
            # A sum is compared in the integer units its window keeps (10^-SUM_SCALE).
            threshold = _threshold(corr.condition, SUM_SCALE if corr.type == "sum" else 0)
        except ValueError as exc:
            raise RuleFileError(position_of(raw, (*where, "condition"), origin), str(exc), spec.id) from None
        return CorrelationRule(
            **common,
            condition=condition(spec.condition, "condition") if spec.condition is not None else None,
            aggregate=corr.type,
            field=corr.field,
            timespan_ms=parse_duration_ms(corr.timespan),
            threshold=threshold,
            threshold_text=", ".join(f"{op} {value}" for op, value in corr.condition.items()),
            max_state=spec.max_state,
        )
    if spec.sequence is not None:
        seq = spec.sequence
        for step_name, step in (("start", seq.start), ("then", seq.then), ("until", seq.until)):
            if step is not None and step.event not in spec.events:
                raise RuleFileError(
                    position_of(raw, ("rules", index, "sequence", step_name, "event"), origin),
                    f"sequence: step {step_name!r} is a {step.event}, which is not in this rule's events",
                    spec.id,
                )
        always: Condition = lambda event: []  # noqa: E731 - a step without a condition matches its type
        return SequenceRule(
            **common,
            start=condition(seq.start.condition, "sequence", "start", "condition") if seq.start.condition else always,
            start_type=seq.start.event,
            then=condition(seq.then.condition, "sequence", "then", "condition") if seq.then.condition else always,
            then_type=seq.then.event,
            until=(
                (condition(seq.until.condition, "sequence", "until", "condition") if seq.until.condition else always)
                if seq.until
                else None
            ),
            until_type=seq.until.event if seq.until else None,
            total=seq.then.total,
            reaches=Decimal(repr(seq.then.reaches)) if seq.then.reaches is not None else None,
            maxspan_ms=parse_duration_ms(seq.maxspan),
            max_state=spec.max_state,
        )
    if spec.exposure is not None:
        return _exposure_rule(
            raw, index, spec, lists, origin, common, condition(spec.condition, "condition") if spec.condition else None
        )
    assert spec.condition is not None  # the schema requires it for single-event rules
    return EventRule(**common, condition=condition(spec.condition, "condition"))


def _exposure_rule(
    raw: Any,
    index: int,
    spec: RuleSpec,
    lists: dict[str, AddressList],
    origin: Position | str,
    common: dict[str, Any],
    condition: Condition | None,
) -> ExposureRule:
    """Compile an exposure rule: its lists must exist, its share must be a fraction."""
    exposure = spec.exposure
    assert exposure is not None
    where = ("rules", index, "exposure")

    def named(ids: list[str], key: str) -> tuple[AddressList, ...]:
        for i, list_id in enumerate(ids):
            if list_id not in lists:
                known = ", ".join(sorted(lists)) or "none defined"
                position = position_of(raw, (*where, key, i) if key != "tokens" else (*where, key), origin)
                raise RuleFileError(position, f"exposure: unknown list {list_id!r} (lists: {known})", spec.id)
        return tuple(lists[list_id] for list_id in ids)

    min_share = None
    if exposure.min_share is not None:
        try:
            min_share = Decimal(
                repr(exposure.min_share) if isinstance(exposure.min_share, float) else exposure.min_share
            )
        except InvalidOperation:
            min_share = Decimal(-1)
        if not Decimal(0) <= min_share <= Decimal(1):
            position = position_of(raw, (*where, "min_share"), origin)
            raise RuleFileError(position, f"exposure: min_share {exposure.min_share!r} is not between 0 and 1", spec.id)
    if not set(spec.events) <= {"deposit", "withdrawal"}:
        raise RuleFileError(
            position_of(raw, ("rules", index, "events"), origin),
            "exposure rules screen deposits and withdrawals",
            spec.id,
        )
    if spec.suppress not in (None, "none"):
        raise RuleFileError(
            position_of(raw, ("rules", index, "suppress"), origin),
            "exposure rules raise one alert per event and take no suppress period: a worker finds "
            "them where the address's state is, without the account's",
            spec.id,
        )
    config = ExposureConfig(
        seeds=named(exposure.seeds, "seeds"),
        stops=named(exposure.stop_at, "stop_at"),
        tokens=named([exposure.tokens], "tokens")[0] if exposure.tokens else None,
        max_hops=exposure.max_hops,
        expire_ms=parse_duration_ms(exposure.expire),
    )
    return ExposureRule(
        **common,
        condition=condition,
        field_name=exposure.field,
        config=config,
        min_share=min_share,
        lookback_ms=parse_duration_ms(exposure.lookback),
    )


def _threshold(condition: Mapping[Comparison, int | float | str], scale: int) -> Callable[[Decimal | int], bool]:
    """The check of an aggregate against the condition's bounds, each multiplied by 10^``scale``."""
    bounds = []
    for op, value in condition.items():
        try:
            bound = Decimal(repr(value) if isinstance(value, float) else str(value))
        except InvalidOperation:
            raise ValueError(f"correlation: condition {op}: {value!r} is not a number") from None
        bounds.append((op, bound.scaleb(scale)))
    checks: dict[str, Callable[[Any, Decimal], bool]] = {
        "gte": lambda x, b: x >= b,
        "gt": lambda x, b: x > b,
        "lte": lambda x, b: x <= b,
        "lt": lambda x, b: x < b,
        "eq": lambda x, b: x == b,
    }
    if len(bounds) == 1:
        # The usual case ({gte: 10}), evaluated on every event that enters a window.
        [(op, bound)] = bounds
        check = checks[op]
        return lambda total: check(total, bound)
    return lambda total: all(checks[op](total, bound) for op, bound in bounds)
