"""Compile rule directories into a :class:`Ruleset` and evaluate events against it.

The engine is pure Python with no Kafka import: the worker, ``backtest`` and
``rules check`` all call :meth:`Ruleset.evaluate`, which takes a *batch* of events so
the live path can hand it whole poll batches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from streams import ENGINE_VERSION
from streams.alerts import FreezeAlert, alert_id_for
from streams.events import EVENT_TYPES, Event, format_timestamp
from streams.lists import AddressList, ListEntry, ListFileError, ListInfo, read_entries
from streams.rules.conditions import Condition, ConditionError, compile_condition
from streams.rules.schema import ListSpec, RuleFile, RuleSpec
from streams.rules.source import Position, RuleFileError, YamlMapping, position_of, read_yaml_file
from streams.rules.templates import Summary, TemplateError, compile_summary

RULE_FILE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to evaluate."""

    spec: RuleSpec
    condition: Condition
    summary: Summary
    origin: Position | str


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
            kind: tuple(r for r in self.rules if r.spec.enabled and kind in r.spec.events)
            for kind in EVENT_TYPES
        }

    def rules_for(self, event_type: str) -> tuple[CompiledRule, ...]:
        """The enabled rules that look at events of ``event_type``."""
        return self._by_type.get(event_type, ())

    def evaluate(
        self, events: Sequence[Event], now: Callable[[], datetime] | None = None
    ) -> list[FreezeAlert]:
        """Return the alerts ``events`` raise, in event order then rule order."""
        clock = now or (lambda: datetime.now(UTC))
        alerts: list[FreezeAlert] = []
        for event in events:
            for rule in self.rules_for(event.type):
                evidence = rule.condition(event)
                if evidence is not None:
                    alerts.append(self._alert(rule, event, evidence, clock()))
        return alerts

    def _alert(
        self, rule: CompiledRule, event: Event, evidence: list[dict[str, Any]], detected_at: datetime
    ) -> FreezeAlert:
        spec = rule.spec
        return FreezeAlert(
            alert_id=alert_id_for(spec.id, spec.version, [event.event_id]),
            rule_id=spec.id,
            rule_version=spec.version,
            ruleset_version=self.version,
            typology=spec.typology,
            severity=spec.severity,
            action=spec.action,
            mode=spec.mode,
            account_id=event.account_id,
            event_ids=[event.event_id],
            event_time=event.timestamp,
            detected_at=detected_at,
            summary=rule.summary(event, evidence),
            evidence={"event": _event_evidence(event), "matches": evidence},
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
            lists[list_spec.id] = _load_list(path, list_spec, where)
            digest.update(lists[list_spec.id].digest.encode())

    rules: list[CompiledRule] = []
    seen: dict[str, Position | str] = {}
    for path, raw, spec in parsed:
        for index, rule in enumerate(spec.rules):
            origin = position_of(raw, ("rules", index), str(path))
            if rule.id in seen:
                raise RuleFileError(origin, f"duplicate rule id (first defined at {seen[rule.id]})", rule.id)
            seen[rule.id] = origin
            rules.append(_compile_rule(raw, index, rule, lists, origin))

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
        error = exc.errors(include_url=False)[0]
        loc = tuple(error["loc"])
        rule_id = _rule_id_at(raw, loc)
        where = position_of(raw, loc, str(path))
        dotted = ".".join(str(p) for p in loc)
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        elif error["type"] == "missing":
            message = f"required key {dotted!r} is missing"
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
    info = ListInfo(spec.id, spec.name, spec.category, spec.source, spec.version)
    if (spec.file is None) == (spec.addresses is None):
        raise RuleFileError(where, f"list {spec.id!r} needs exactly one of 'file' or 'addresses'")
    if spec.addresses is not None:
        return AddressList.from_entries(info, (ListEntry(a) for a in spec.addresses))
    path = (rule_file.parent / spec.file).resolve() if spec.file else rule_file
    try:
        entries = read_entries(
            path,
            spec.format,
            address_column=spec.address_column,
            label_column=spec.label_column,
            attribute_columns=tuple(spec.attribute_columns),
        )
        return AddressList.from_entries(info, entries)
    except ListFileError as exc:
        raise RuleFileError(where, f"list {spec.id!r}: {exc}") from None


def _compile_rule(
    raw: Any, index: int, spec: RuleSpec, lists: dict[str, AddressList], origin: Position | str
) -> CompiledRule:
    try:
        condition = compile_condition(spec.condition, lists)
    except ConditionError as exc:
        where = position_of(raw, ("rules", index, "condition", *exc.path), origin)
        raise RuleFileError(where, f"condition: {exc.message}", spec.id) from None
    try:
        summary = compile_summary(spec.summary, spec.id, spec.name)
    except TemplateError as exc:
        raise RuleFileError(
            position_of(raw, ("rules", index, "summary"), origin), str(exc), spec.id
        ) from None
    return CompiledRule(spec, condition, summary, origin)
