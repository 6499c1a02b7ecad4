"""Compile rule directories into a :class:`Ruleset` and evaluate events against it.

The engine is pure Python with no Kafka import: the worker, ``backtest`` and
``rules check`` all call :meth:`Ruleset.evaluate`, which takes a *batch* of events so
the live path can hand it whole poll batches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from streams import ENGINE_VERSION
from streams.alerts import FreezeAlert, alert_id_for
from streams.compact_lists import read_compact
from streams.events import EVENT_TYPES, Event, epoch_ms, format_timestamp
from streams.lists import AddressList, ListEntry, ListFileError, ListInfo, read_entries
from streams.ofac import read_meta
from streams.rules.conditions import (
    DECIMAL_FIELDS,
    FIELDS,
    Condition,
    ConditionError,
    MacroError,
    Macros,
    compile_condition,
)
from streams.rules.durations import parse_duration_ms
from streams.rules.kinds import (
    CompiledRule,
    CorrelationRule,
    CountingObserver,
    EngineObserver,
    EventRule,
    Finding,
    RuleException,
    SequenceRule,
)
from streams.rules.schema import Comparison, ListSpec, RuleFile, RuleSpec
from streams.rules.source import Position, RuleFileError, YamlMapping, position_of, read_yaml_file
from streams.rules.state import AccountState, DictStore, StateStore
from streams.rules.templates import TemplateError, compile_summary

RULE_FILE_SUFFIXES = (".yaml", ".yml")


@dataclass
class Ruleset:
    """Every enabled rule and every list from one or more rule directories."""

    version: str
    rules: tuple[CompiledRule, ...]
    lists: dict[str, AddressList]
    files: tuple[str, ...]
    _by_type: dict[str, tuple[CompiledRule, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Rules are grouped by event type once, so evaluation does not filter per event.
        self._by_type = {
            kind: tuple(r for r in self.rules if r.spec.enabled and kind in r.spec.events) for kind in EVENT_TYPES
        }

    def rules_for(self, event_type: str) -> tuple[CompiledRule, ...]:
        """The enabled rules that look at events of ``event_type``."""
        return self._by_type.get(event_type, ())

    def evaluate(
        self,
        events: Sequence[Event],
        state: StateStore | None = None,
        now: Callable[[], datetime] | None = None,
        observer: EngineObserver | None = None,
    ) -> list[FreezeAlert]:
        """Return the alerts ``events`` raise, in event order then rule order.

        ``state`` holds windows, sequences and suppression between calls; pass the same
        store for a whole stream. Without one, a fresh in-memory store is used for this
        call only, which suits single-event rules and one-off checks.
        """
        store: StateStore = state if state is not None else DictStore()
        watcher: EngineObserver = observer if observer is not None else CountingObserver()
        clock = now or (lambda: datetime.now(UTC))
        alerts: list[FreezeAlert] = []
        for event in events:
            rules = self.rules_for(event.type)
            if not rules:
                continue
            t = event.epoch_ms
            doc = store.account(event.account_id)
            for rule in rules:
                for finding in rule.find(event, t, doc, watcher):
                    if self._allowed(rule, finding, doc, watcher):
                        alerts.append(self._alert(rule, finding, clock()))
        return alerts

    @staticmethod
    def _allowed(rule: CompiledRule, finding: Finding, doc: AccountState, observer: EngineObserver) -> bool:
        """Apply the rule's exceptions, then its suppression period."""
        for exception in rule.exceptions:
            if exception.condition(finding.event) is not None:
                observer.excepted(rule.spec.id, exception.id)
                return False
        if rule.suppress_ms is None:
            return True
        key = rule.spec.id + "#suppress"
        last = doc.get(key)
        moment = epoch_ms(finding.event_time)
        alert_id = alert_id_for(rule.spec.id, rule.spec.version, finding.event_ids)
        if last is not None and last["at"] <= moment < last["at"] + rule.suppress_ms:
            # The very alert that started the period, met again (a record re-processed after
            # a crash), is raised again rather than lost: consumers dedupe on its id.
            if last["id"] == alert_id:
                return True
            observer.suppressed(rule.spec.id)
            return False
        doc[key] = {"at": moment, "id": alert_id}
        return True

    def _alert(self, rule: CompiledRule, finding: Finding, detected_at: datetime) -> FreezeAlert:
        spec = rule.spec
        event = finding.event
        return FreezeAlert(
            alert_id=alert_id_for(spec.id, spec.version, finding.event_ids),
            rule_id=spec.id,
            rule_version=spec.version,
            ruleset_version=self.version,
            typology=spec.typology,
            severity=spec.severity,
            action=spec.action,
            mode=spec.mode,
            account_id=event.account_id,
            event_ids=finding.event_ids,
            event_time=finding.event_time,
            detected_at=detected_at,
            summary=rule.summary(event, finding.evidence),
            evidence={"event": _event_evidence(event), **finding.evidence},
        )


def _event_evidence(event: Event) -> dict[str, Any]:
    """What the alert shows of the triggering event (no more than the analyst needs)."""
    out: dict[str, Any] = {
        "type": event.type,
        "event_id": event.event_id,
        "chain": event.chain,
        "asset": event.asset,
        "amount": str(event.amount),
        "timestamp": format_timestamp(event.timestamp),
        "to_address": event.to_address,
    }
    if event.usd_value is not None:
        out["usd_value"] = str(event.usd_value)
    tx_hash = getattr(event, "tx_hash", None)
    if tx_hash:
        out["tx_hash"] = tx_hash
    if event.type == "deposit":
        out["from_addresses"] = list(event.addresses("from_addresses"))
    return out


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """The rule files under ``paths`` (files or directories), in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in RULE_FILE_SUFFIXES and p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise RuleFileError(str(path), "no such rule file or directory")
    return found


def load_ruleset(paths: Sequence[Path | str]) -> Ruleset:
    """Read, check and compile every rule file under ``paths``.

    Raises :class:`RuleFileError` naming file, line, column and rule for the first
    problem found; a ruleset is either wholly valid or not loaded at all.
    """
    files = rule_files(Path(p) for p in paths)
    if not files:
        raise RuleFileError(", ".join(str(p) for p in paths), "no rule files (*.yaml) found")
    digest = hashlib.sha256(f"engine={ENGINE_VERSION}".encode())
    parsed: list[tuple[Path, Any, RuleFile]] = []
    for path in files:
        raw = read_yaml_file(path)
        parsed.append((path, raw, _validate_file(path, raw)))
        digest.update(path.name.encode() + b"\0" + path.read_bytes())

    lists: dict[str, AddressList] = {}
    for path, raw, spec in parsed:
        for index, list_spec in enumerate(spec.lists):
            where = position_of(raw, ("lists", index, "id"), str(path))
            if list_spec.id in lists:
                raise RuleFileError(where, f"duplicate list id {list_spec.id!r}")
            loaded = lists[list_spec.id] = _load_list(path, list_spec, where)
            digest.update(f"{loaded.info.id}\0{loaded.info.version}\0{loaded.info.source}\0{loaded.digest}".encode())

    macro_bodies: dict[str, Any] = {}
    macro_origins: dict[str, tuple[Any, int, Path]] = {}
    for path, raw, spec in parsed:
        for index, macro in enumerate(spec.macros):
            if macro.id in macro_bodies:
                first = position_of(*macro_origins[macro.id][:1], ("macros", macro_origins[macro.id][1]), "")
                raise RuleFileError(
                    position_of(raw, ("macros", index), str(path)),
                    f"duplicate macro id {macro.id!r} (first defined at {first})",
                )
            macro_bodies[macro.id] = macro.condition
            macro_origins[macro.id] = (raw, index, path)
    macros = Macros(macro_bodies, lists)

    rules: list[CompiledRule] = []
    seen: dict[str, Position | str] = {}
    for path, raw, spec in parsed:
        for index, rule in enumerate(spec.rules):
            origin = position_of(raw, ("rules", index), str(path))
            if rule.id in seen:
                raise RuleFileError(origin, f"duplicate rule id (first defined at {seen[rule.id]})", rule.id)
            seen[rule.id] = origin
            try:
                rules.append(_compile_rule(raw, index, rule, lists, macros, origin))
            except MacroError as exc:
                macro_raw, macro_index, macro_path = macro_origins[exc.macro_id]
                where = position_of(macro_raw, ("macros", macro_index, "condition", *exc.error.path), str(macro_path))
                raise RuleFileError(where, f"macro {exc.macro_id!r}: {exc.error.message}") from None
    # A macro no rule uses is still checked, so a broken one is found before it is used.
    for macro_id, (macro_raw, macro_index, macro_path) in macro_origins.items():
        try:
            macros.resolve(macro_id, ())
        except MacroError as exc:
            where = position_of(macro_raw, ("macros", macro_index, "condition", *exc.error.path), str(macro_path))
            raise RuleFileError(where, f"macro {macro_id!r}: {exc.error.message}") from None
        except ConditionError as exc:
            where = position_of(macro_raw, ("macros", macro_index, "condition"), str(macro_path))
            raise RuleFileError(where, f"macro {macro_id!r}: {exc.message}") from None

    return Ruleset(
        version="rs-" + digest.hexdigest()[:12],
        rules=tuple(rules),
        lists=lists,
        files=tuple(str(p) for p in files),
    )


def _validate_file(path: Path, raw: Any) -> RuleFile:
    if not isinstance(raw, YamlMapping):
        raise RuleFileError(
            str(path), "a rule file must be a YAML mapping with required_engine_version, lists and rules"
        )
    try:
        spec = RuleFile.model_validate(raw)
    except ValidationError as exc:
        # An unknown key is usually a typo that also explains a "missing" one: report it first.
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        error = errors[0]
        loc = tuple(error["loc"])
        rule_id = _rule_id_at(raw, loc)
        where = position_of(raw, loc, str(path))
        dotted = ".".join(str(p) for p in loc)
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        elif error["type"] == "missing":
            message = f"required key {dotted!r} is missing"
        elif error["type"] == "value_error":
            message = f"{dotted}: {str(error['msg']).removeprefix('Value error, ')}"
        else:
            message = f"{dotted}: {error['msg']} (got {_short(error.get('input'))})"
        raise RuleFileError(where, message, rule_id) from None
    if spec.required_engine_version > ENGINE_VERSION:
        raise RuleFileError(
            position_of(raw, ("required_engine_version",), str(path)),
            f"needs engine version {spec.required_engine_version}; this engine is version {ENGINE_VERSION}",
        )
    return spec


def _rule_id_at(raw: Any, loc: tuple[Any, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = raw.get("rules")
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            value = rules[loc[1]].get("id")
            return value if isinstance(value, str) else None
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _load_list(rule_file: Path, spec: ListSpec, where: Position | str) -> AddressList:
    if (spec.file is None) == (spec.addresses is None):
        raise RuleFileError(where, f"list {spec.id!r} needs exactly one of 'file' or 'addresses'")
    source, version = spec.source, spec.version
    if spec.file is not None and (source is None or version is None):
        # An imported list (e.g. `sentinel lists import-ofac`) says what it is in a sidecar.
        meta = read_meta(rule_file.parent / spec.file) or {}
        source = source or meta.get("source")
        version = version or meta.get("version")
    if not source or not version:
        raise RuleFileError(
            where, f"list {spec.id!r} needs 'source' and 'version' (or a {spec.file or 'FILE'}.meta.json beside it)"
        )
    info = ListInfo(spec.id, spec.name, spec.category, str(source), str(version))
    if spec.addresses is not None:
        return AddressList.from_entries(info, (ListEntry(a, spec.entity) for a in spec.addresses))
    path = (rule_file.parent / spec.file).resolve() if spec.file else rule_file
    if (spec.format or path.suffix.lstrip(".").lower()) == "txt":
        compact = read_compact(path, spec.entity)
        if compact is not None:
            return AddressList(info, compact, compact.digest(), compact.duplicates)
    try:
        entries = read_entries(
            path,
            spec.format,
            address_column=spec.address_column,
            label_column=spec.label_column,
            attribute_columns=tuple(spec.attribute_columns),
        )
        if spec.entity is not None:
            # A cluster: every address belongs to the one entity unless its own label says otherwise.
            entries = (ListEntry(e.address, e.label or spec.entity, e.attributes) for e in entries)
        return AddressList.from_entries(info, entries)
    except ListFileError as exc:
        raise RuleFileError(where, f"list {spec.id!r}: {exc}") from None


def _compile_rule(
    raw: Any,
    index: int,
    spec: RuleSpec,
    lists: dict[str, AddressList],
    macros: Macros,
    origin: Position | str,
) -> CompiledRule:
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
            threshold = _threshold(corr.condition)
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
    assert spec.condition is not None  # the schema requires it for single-event rules
    return EventRule(**common, condition=condition(spec.condition, "condition"))


def _threshold(condition: Mapping[Comparison, int | float | str]) -> Callable[[Decimal | int], bool]:
    bounds = []
    for op, value in condition.items():
        try:
            bound = Decimal(repr(value) if isinstance(value, float) else str(value))
        except InvalidOperation:
            raise ValueError(f"correlation: condition {op}: {value!r} is not a number") from None
        bounds.append((op, bound))
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
