"""Allowlist entries: an analyst's time-bound decision that a rule's findings on an account or address are known-good.

Pure Python with no Kafka import. An entry is data, never a rule edit: it is added and
revoked by :class:`AllowlistChange` records (``sentinel allow add`` / ``revoke`` writes them,
signed, to the allowlist topic; see :mod:`streams.shell.allowlist_feed`), and the engine asks
:meth:`Allowlist.match` after a rule's own exceptions (see :mod:`streams.core.rules.engine`).

Every time bound is **event time**: an entry applies to events whose timestamp is at or
after the entry was added, before its ``until`` and before it was revoked. So a backtest,
``sentinel explain`` and a worker re-processing input after a crash all give the answer the
live worker gave, and input still queued from before an entry was added is not waved through.
An entry never applies to a rule declared ``overridable: false`` (the sanctions rules).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streams.core.chains import normalise_address
from streams.core.events import Event, epoch_ms, format_timestamp, parse_moment
from streams.core.rules.durations import parse_duration_ms
from streams.core.taxonomy import Typology

if TYPE_CHECKING:  # the engine imports this module
    from streams.core.rules.schema import RuleSpec

#: The version of the change record's format (``AllowlistChange.version``).
CHANGE_VERSION = 1
ENTRY_ID_PATTERN = r"^al-[0-9a-z]{6,32}$"
Text = Annotated[str, Field(min_length=1, max_length=1000)]
Name = Annotated[str, Field(min_length=1, max_length=256)]


class AllowlistError(ValueError):
    """A change record that cannot be applied, and why (in plain words)."""


class AllowlistChange(BaseModel):
    """One add or revoke, as written to the topic: who, why, when and (for an add) what."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    action: Literal["add", "revoke"]
    entry_id: str = Field(pattern=ENTRY_ID_PATTERN)
    by: Name
    reason: Text
    #: When the change was made: an add applies to events from then on, a revoke ends it then.
    at: datetime
    rule_id: Name | None = None
    typology: Typology | None = None
    account_id: Name | None = None
    address: Name | None = None
    until: datetime | None = None

    @model_validator(mode="after")
    def _complete(self) -> AllowlistChange:
        scoped = (self.rule_id, self.typology, self.account_id, self.address, self.until)
        if self.action == "revoke":
            if any(value is not None for value in scoped):
                raise ValueError("a revoke names only the entry, who and why")
            return self
        if (self.rule_id is None) == (self.typology is None):
            raise ValueError("an entry names exactly one of rule_id and typology")
        if (self.account_id is None) == (self.address is None):
            raise ValueError("an entry names exactly one of account_id and address")
        if self.until is None or self.until <= self.at:
            raise ValueError("an entry needs an expiry ('until') after the time it is added")
        for moment in (self.at, self.until):
            if moment.tzinfo is None:
                raise ValueError("times carry a zone (RFC 3339, UTC)")
        return self

    @property
    def scope(self) -> str:
        """What the entry covers, in words: ``rule X, account Y``."""
        target = f"rule {self.rule_id}" if self.rule_id else f"typology {self.typology}"
        who = f"account {self.account_id}" if self.account_id else f"address {self.address}"
        return f"{target}, {who}"

    def to_json(self) -> bytes:
        """The record's payload (signed by the shell before it goes to the topic)."""
        data = self.model_dump(mode="json", exclude_none=True)
        for name in ("at", "until"):
            if name in data:
                data[name] = format_timestamp(getattr(self, name))
        return orjson.dumps(data)

    def record_key(self) -> bytes:
        """One key per change, so a compacted topic keeps every change: it is the audit trail."""
        return f"{self.entry_id}/{self.action}".encode()


def parse_change(payload: bytes) -> AllowlistChange:
    """Read one change record's payload; raises :class:`AllowlistError` with the reason."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise AllowlistError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AllowlistError("not a JSON object")
    for name in ("at", "until"):
        if isinstance(data.get(name), str):
            try:
                data[name] = parse_moment(data[name])
            except ValueError:
                raise AllowlistError(f"{name}: {data[name][:40]!r} is not an RFC 3339 time") from None
    try:
        return AllowlistChange.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "record"
        raise AllowlistError(f"{where}: {first['msg']}") from None


@dataclass(frozen=True, slots=True)
class _Active:
    entry_id: str
    account_id: str | None
    address_key: str | None
    from_ms: int
    until_ms: int


@dataclass
class Allowlist:
    """Every entry added and revoked, indexed for the engine's question: does an entry cover this finding?

    Changes may arrive in any order (a replayed add after its revoke stays revoked), and
    applying the same change twice changes nothing. An entry id is never reused for
    different content: such a change is refused.
    """

    adds: dict[str, AllowlistChange] = field(default_factory=dict)
    revokes: dict[str, AllowlistChange] = field(default_factory=dict)
    _by_rule: dict[str, list[_Active]] = field(default_factory=dict, init=False, repr=False)
    _by_typology: dict[str, list[_Active]] = field(default_factory=dict, init=False, repr=False)

    def __bool__(self) -> bool:
        return bool(self._by_rule or self._by_typology)

    def __post_init__(self) -> None:
        self._index()

    def apply(self, change: AllowlistChange) -> None:
        """Take one change in; raises :class:`AllowlistError` if it contradicts one already taken."""
        self._take(change)
        self._index()

    def apply_all(self, changes: Iterable[AllowlistChange]) -> list[tuple[AllowlistChange, str]]:
        """Apply each change; return the refused ones with the reason (the rest still apply)."""
        refused = []
        for change in changes:
            try:
                self._take(change)
            except AllowlistError as exc:
                refused.append((change, str(exc)))
        self._index()
        return refused

    def _take(self, change: AllowlistChange) -> None:
        book = self.adds if change.action == "add" else self.revokes
        known = book.get(change.entry_id)
        if known is not None and known != change:
            raise AllowlistError(f"entry {change.entry_id} already has a different {change.action}; ids are not reused")
        book[change.entry_id] = change

    def _index(self) -> None:
        by_rule: dict[str, list[_Active]] = {}
        by_typology: dict[str, list[_Active]] = {}
        for entry_id, add in self.adds.items():
            assert add.until is not None  # checked by the model
            until_ms = epoch_ms(add.until)
            revoke = self.revokes.get(entry_id)
            if revoke is not None:
                until_ms = min(until_ms, epoch_ms(revoke.at))
            address = normalise_address(add.address) if add.address else None
            active = _Active(entry_id, add.account_id, address, epoch_ms(add.at), until_ms)
            if add.rule_id:
                by_rule.setdefault(add.rule_id, []).append(active)
            elif add.typology:
                by_typology.setdefault(add.typology, []).append(active)
        self._by_rule, self._by_typology = by_rule, by_typology

    def match(self, rule_id: str, typology: str, event: Event) -> str | None:
        """The id of an entry covering a finding of this rule on ``event``, or ``None``.

        An account entry covers the event's account. An address entry covers the event if
        every counterparty address (a deposit's senders, a withdrawal's destination) is
        covered by an entry: one listed sender cannot wave through a transaction that
        also spends from an unlisted one.
        """
        candidates = self._by_rule.get(rule_id, []) + self._by_typology.get(typology, [])
        if not candidates:
            return None
        t = event.epoch_ms
        live = [entry for entry in candidates if entry.from_ms <= t < entry.until_ms]
        for entry in live:
            if entry.account_id is not None and entry.account_id == event.account_id:
                return entry.entry_id
        counterparties = event.address_keys(counterparty_field(event))
        if not counterparties:
            return None
        covering = {entry.address_key: entry.entry_id for entry in live if entry.address_key is not None}
        if all(key in covering for key in counterparties):
            return covering[counterparties[0]]
        return None

    def status(self, entry_id: str, now: datetime) -> str:
        """``active``, ``expired``, ``revoked`` or ``unknown`` at ``now``."""
        add = self.adds.get(entry_id)
        if add is None:
            return "unknown"
        revoke = self.revokes.get(entry_id)
        if revoke is not None and revoke.at <= now:
            return "revoked"
        assert add.until is not None
        return "active" if now < add.until else "expired"


def counterparty_field(event: Event) -> str:
    """The field holding the other side of ``event``: a deposit's senders, else its destination."""
    return "from_addresses" if event.type == "deposit" else "to_address"


#: What ``sentinel allow history --json`` and ``list --json`` add to a change (where it was read, and how).
_LISTING_FIELDS = ("offset", "key", "signed_by", "status")


def changes_from_lines(lines: Iterable[bytes]) -> list[AllowlistChange]:
    """Changes from JSON lines (``backtest --allowlist``, ``explain --allowlist``); raises on a bad line.

    Takes the output of ``sentinel allow history --json`` as it is: records the workers
    refused are left out, as they are live.
    """
    changes = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise AllowlistError(f"line {number}: not JSON: {exc}") from None
        if isinstance(data, dict):
            if "rejected" in data:
                continue
            for name in _LISTING_FIELDS:
                data.pop(name, None)
        try:
            changes.append(parse_change(orjson.dumps(data)))
        except AllowlistError as exc:
            raise AllowlistError(f"line {number}: {exc}") from None
    return changes


def describe(change: AllowlistChange) -> dict[str, Any]:
    """A change as a JSON-ready dict for the CLI's ``--json`` output."""
    return orjson.loads(change.to_json())  # type: ignore[no-any-return]


def scope_problem(rules: Iterable[RuleSpec], rule_id: str | None, typology: str | None) -> str | None:
    """Why an entry for ``rule_id`` (or every rule of ``typology``) cannot be added, or ``None`` if it can.

    The rule or typology must exist, and no rule the entry would touch may be
    ``overridable: false`` (a sanctions freeze is never waived by an allowlist).
    """
    specs = list(rules)
    if rule_id is not None:
        found = [spec for spec in specs if spec.id == rule_id]
        if not found:
            return f"no rule {rule_id!r} in the rules ({', '.join(sorted(s.id for s in specs))})"
        if not found[0].overridable:
            return f"rule {rule_id} is not overridable (overridable: false): its findings cannot be allowlisted"
        return None
    touched = [spec for spec in specs if spec.typology == typology]
    if not touched:
        return f"no rule of typology {typology!r} in the rules"
    fixed = [spec.id for spec in touched if not spec.overridable]
    if fixed:
        return (
            f"typology {typology} includes rules that are not overridable ({', '.join(fixed)});"
            " allowlist the other rules one by one"
        )
    return None


def parse_until(text: str, now: datetime) -> datetime:
    """An expiry as people write it: ``30d``, ``2026-12-31`` (through that day) or a full time.

    Raises ``ValueError`` saying what to write instead.
    """
    try:
        return now + timedelta(milliseconds=parse_duration_ms(text))
    except ValueError:
        pass
    try:
        moment = parse_moment(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r}: write a date (2026-12-31), a time or a duration (30d)") from None
    if len(text.strip()) == 10:  # a bare date: the entry holds through that whole day
        moment += timedelta(days=1)
    return moment
