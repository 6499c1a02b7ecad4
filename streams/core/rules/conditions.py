"""Single-event conditions: their grammar, checked at load time, compiled to closures.

Grammar (each node is one YAML mapping)::

    {all: [cond, ...]}      every condition holds
    {any: [cond, ...]}      at least one holds
    {not: cond}             the condition does not hold
    {macro: ID}             the named macro's condition holds
    {field: NAME, OP: V}    a comparison on an event field; OP is one of
        eq, ne, in, not_in, gt, gte, lt, lte, matches (regular expression),
        in_list (any address of the field is on list V),
        all_in_list (every address of the field is on list V)

A compiled condition returns ``None`` when it does not hold, or a list of evidence
items (possibly empty) when it does: list hits say which address matched which entry
of which list, so an alert can show why it fired. Nothing in a rule file is ever
evaluated as code.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from streams.core.chains import normalise_address
from streams.core.errors import RuleError
from streams.core.events import Event
from streams.core.lists import AddressList
from streams.core.rules.regex import compile_search

Evidence = list[dict[str, Any]]
Condition = Callable[[Event], Evidence | None]

STRING_FIELDS = frozenset({"event_id", "account_id", "chain", "asset", "tx_hash", "to_address", "type"})
DECIMAL_FIELDS = frozenset({"amount", "usd_value"})
ADDRESS_FIELDS = frozenset({"from_addresses", "to_address"})
FIELDS = STRING_FIELDS | DECIMAL_FIELDS | ADDRESS_FIELDS

COMPARISONS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "matches")
LIST_OPERATORS = ("in_list", "all_in_list")


@dataclass(frozen=True)
class Described:
    """What a compiled condition is, in words, for ``sentinel explain`` (never used to evaluate).

    ``kind`` is ``all``, ``any``, ``not``, ``field`` or ``list``; ``text`` is the condition
    as written (``usd_value gte 9000``); ``children`` are the compiled sub-conditions.
    """

    kind: str
    text: str
    field: str | None = None
    children: tuple[Condition, ...] = ()


#: The description of each compiled condition, kept beside it rather than in it, so the
#: closures the engine calls stay plain functions (nothing added to the hot path).
_DESCRIPTIONS: weakref.WeakKeyDictionary[Condition, Described] = weakref.WeakKeyDictionary()


def _described(condition: Condition, description: Described) -> Condition:
    _DESCRIPTIONS[condition] = description
    return condition


def description_of(condition: Condition) -> Described | None:
    """What ``condition`` is, in words, if it was compiled here."""
    return _DESCRIPTIONS.get(condition)


class ConditionError(RuleError):
    """A condition that does not follow the grammar; ``path`` locates it below ``condition``."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class MacroError(RuleError):
    """A problem inside a macro's own condition (reported at the macro, not at its user)."""

    def __init__(self, macro_id: str, error: ConditionError) -> None:
        super().__init__(error.message)
        self.macro_id = macro_id
        self.error = error


class Macros:
    """The macros of a ruleset, compiled on first use; cycles are refused."""

    def __init__(self, bodies: Mapping[str, Any], lists: Mapping[str, AddressList]) -> None:
        self._bodies = bodies
        self._lists = lists
        self._compiled: dict[str, Condition] = {}
        self._resolving: list[str] = []

    def resolve(self, name: Any, path: tuple[str | int, ...]) -> Condition:
        """The compiled macro ``name``, used at ``path`` of the condition being compiled."""
        if not isinstance(name, str) or name not in self._bodies:
            known = ", ".join(sorted(self._bodies)) or "none defined"
            raise ConditionError(path, f"unknown macro {name!r} (macros: {known})")
        if name in self._compiled:
            return self._compiled[name]
        if name in self._resolving:
            cycle = " -> ".join([*self._resolving[self._resolving.index(name) :], name])
            raise ConditionError(path, f"macros refer to each other in a cycle: {cycle}")
        self._resolving.append(name)
        try:
            compiled = _compile(self._bodies[name], (), self._lists, self)
        except ConditionError as exc:
            if exc.message.startswith("macros refer to each other"):
                raise ConditionError(path, exc.message) from None
            raise MacroError(name, exc) from None
        finally:
            self._resolving.pop()
        self._compiled[name] = compiled
        return compiled


def compile_condition(node: Any, lists: Mapping[str, AddressList], macros: Macros | None = None) -> Condition:
    """Check ``node`` against the grammar and return its evaluator."""
    return _compile(node, (), lists, macros or Macros({}, lists))


def _compile(node: Any, path: tuple[str | int, ...], lists: Mapping[str, AddressList], macros: Macros) -> Condition:
    if not isinstance(node, Mapping) or not node:
        raise ConditionError(path, "a condition must be a mapping such as {field: amount, gte: 100}")
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        _only(node, path, {key})
        children = node[key]
        if not isinstance(children, list) or not children:
            raise ConditionError((*path, key), f"{key!r} takes a non-empty list of conditions")
        compiled = [_compile(child, (*path, key, i), lists, macros) for i, child in enumerate(children)]
        combined = _all(compiled) if key == "all" else _any(compiled)
        return _described(combined, Described(key, key, children=tuple(compiled)))
    if "not" in node:
        _only(node, path, {"not"})
        inner = _compile(node["not"], (*path, "not"), lists, macros)
        return _described(_not(inner), Described("not", "not", children=(inner,)))
    if "macro" in node:
        _only(node, path, {"macro"})
        return macros.resolve(node["macro"], (*path, "macro"))
    if "field" in node:
        return _compile_field(node, path, lists)
    raise ConditionError(path, f"unknown condition {sorted(node)}; use all, any, not, macro, or field with an operator")


def _only(node: Mapping[str, Any], path: tuple[str | int, ...], allowed: set[str]) -> None:
    extra = sorted(set(node) - allowed)
    if extra:
        raise ConditionError((*path, extra[0]), f"unexpected key {extra[0]!r} here")


def _compile_field(node: Mapping[str, Any], path: tuple[str | int, ...], lists: Mapping[str, AddressList]) -> Condition:
    name = node["field"]
    if name not in FIELDS:
        raise ConditionError((*path, "field"), f"unknown field {name!r}; fields: {', '.join(sorted(FIELDS))}")
    operators = [key for key in node if key != "field"]
    if len(operators) != 1:
        raise ConditionError(path, f"field {name!r} needs exactly one operator, found {len(operators)}")
    op = operators[0]
    value = node[op]
    where = (*path, op)
    if op in LIST_OPERATORS:
        if name not in ADDRESS_FIELDS:
            raise ConditionError(where, f"{op} applies to address fields ({', '.join(sorted(ADDRESS_FIELDS))})")
        if not isinstance(value, str) or value not in lists:
            known = ", ".join(sorted(lists)) or "none defined"
            raise ConditionError(where, f"unknown list {value!r} (lists: {known})")
        text = f"{'every' if op == 'all_in_list' else 'any'} address of {name} on list {value}"
        return _described(_in_list(name, lists[value], every=op == "all_in_list"), Described("list", text, name))
    if op not in COMPARISONS:
        raise ConditionError(where, f"unknown operator {op!r}; operators: {', '.join(COMPARISONS + LIST_OPERATORS)}")
    if name in DECIMAL_FIELDS:
        compiled = _decimal_comparison(name, op, value, where)
    elif name == "from_addresses":
        raise ConditionError(where, "from_addresses is a list of addresses: use in_list or all_in_list")
    else:
        compiled = _string_comparison(name, op, value, where)
    return _described(compiled, Described("field", f"{name} {op} {value}", name))


def _as_decimal(value: Any, where: tuple[str | int, ...]) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConditionError(where, f"{value!r} is not a number")
    try:
        # repr keeps what the analyst wrote for a YAML float (0.1 stays 0.1).
        return Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        raise ConditionError(where, f"{value!r} is not a number") from None


def _decimal_comparison(name: str, op: str, value: Any, where: tuple[str | int, ...]) -> Condition:
    if op == "matches":
        raise ConditionError(where, f"matches applies to text fields, not the number {name!r}")
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            raise ConditionError(where, f"{op} takes a list of values")
        options = frozenset(_as_decimal(v, where) for v in value)
        test: Callable[[Decimal], bool] = (lambda x: x in options) if op == "in" else (lambda x: x not in options)
    else:
        bound = _as_decimal(value, where)
        test = {
            "eq": lambda x: x == bound,
            "ne": lambda x: x != bound,
            "gt": lambda x: x > bound,
            "gte": lambda x: x >= bound,
            "lt": lambda x: x < bound,
            "lte": lambda x: x <= bound,
        }[op]

    def condition(event: Event) -> Evidence | None:
        actual = getattr(event, name)
        # A missing optional value (usd_value) satisfies no comparison: unknown is not "small".
        return [] if actual is not None and test(actual) else None

    return condition


def _string_comparison(name: str, op: str, value: Any, where: tuple[str | int, ...]) -> Condition:
    # Addresses compare by their normalised form, so EVM case does not matter.
    norm: Callable[[str], str] = normalise_address if name in ADDRESS_FIELDS else (lambda s: s)
    if op in ("gt", "gte", "lt", "lte"):
        raise ConditionError(where, f"{op} applies to numbers, not the text field {name!r}")
    if op == "matches":
        if not isinstance(value, str):
            raise ConditionError(where, "matches takes a regular expression string")
        try:
            test: Callable[[str], bool] = compile_search(value)
        except ValueError as exc:
            raise ConditionError(where, f"bad regular expression {value[:80]!r}: {exc}") from None
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConditionError(where, f"{op} takes a list of strings")
        options = frozenset(norm(v) for v in value)
        test = (lambda x: norm(x) in options) if op == "in" else (lambda x: norm(x) not in options)
    else:
        if not isinstance(value, str):
            raise ConditionError(where, f"{op} on text field {name!r} takes a string")
        expected = norm(value)
        test = (lambda x: norm(x) == expected) if op == "eq" else (lambda x: norm(x) != expected)

    def condition(event: Event) -> Evidence | None:
        actual = getattr(event, name, None)
        return [] if actual is not None and test(actual) else None

    return condition


def _in_list(name: str, address_list: AddressList, *, every: bool) -> Condition:
    info = address_list.info.as_evidence()

    lookup = address_list.get

    def condition(event: Event) -> Evidence | None:
        hits: Evidence | None = None
        for index, key in enumerate(event.address_keys(name)):
            entry = lookup(key)
            if entry is not None:
                address = event.addresses(name)[index]
                found = {"field": name, "address": address, "list": info, "entry": entry.as_evidence()}
                hits = [found] if hits is None else [*hits, found]
            elif every:
                return None
        return hits

    return condition


def _all(children: list[Condition]) -> Condition:
    def condition(event: Event) -> Evidence | None:
        evidence: Evidence = []
        for child in children:
            found = child(event)
            if found is None:
                return None
            evidence.extend(found)
        return evidence

    return condition


def _any(children: list[Condition]) -> Condition:
    def condition(event: Event) -> Evidence | None:
        evidence: Evidence | None = None
        for child in children:
            found = child(event)
            if found is not None:
                evidence = (evidence or []) + found
        return evidence

    return condition


def _not(child: Condition) -> Condition:
    def condition(event: Event) -> Evidence | None:
        return [] if child(event) is None else None

    return condition
