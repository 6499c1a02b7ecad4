"""Where stateful rules keep their windows and pending sequences: typed, incremental, undoable.

All the state of one account is one :class:`AccountState`: the event ids already seen
(resend dedupe), the time of its latest event, each stateful rule's part (a
:class:`Window` for correlations, a :class:`Sequence` for sequences) and each rule's
suppression period. A window keeps running aggregates (event count, an exact sum in
integer units of 10^-18, a count per distinct value), so an event costs the same however
full the window is: nothing is rescanned or re-parsed.

Every change an event makes is written to a :class:`Journal` as its inverse, so a failed
evaluation is rolled back in the time it took to make the change, without copying the
account's state before every event. The engine works on live objects which the store
hands out; how they are made durable is the store's business (offline they live in a
dict; in the worker, see :mod:`streams.shell.state_table`; the persisted form is in
:mod:`streams.core.rules.state_format`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

#: Sums are kept as integers of this many decimal places: every amount the event contract
#: admits (at most 18 fraction digits) is exact in it, and integer arithmetic never rounds.
SUM_SCALE = 18


class Journal:
    """The inverses of the changes one event made to state, to undo them if it fails.

    Each step is a function and two arguments; :meth:`rollback` calls them newest first.
    """

    __slots__ = ("steps",)

    def __init__(self) -> None:
        #: The recorded inverses, oldest first. The hottest paths append to it directly.
        self.steps: list[tuple[Callable[[Any, Any], None], Any, Any]] = []

    def record(self, undo: Callable[[Any, Any], None], first: Any, second: Any = None) -> None:
        """Remember that ``undo(first, second)`` reverts the change just made."""
        self.steps.append((undo, first, second))

    def rollback(self) -> None:
        """Revert every recorded change, newest first, and forget them."""
        steps = self.steps
        while steps:
            undo, first, second = steps.pop()
            undo(first, second)

    def clear(self) -> None:
        """Keep the changes made so far (the event succeeded)."""
        self.steps.clear()


def _undo_insert(items: list[Any], position: int) -> None:
    del items[position]


def _undo_drop(items: list[Any], dropped: list[Any]) -> None:
    items[0:0] = dropped


def _undo_set(items: list[Any], change: tuple[int, Any]) -> None:
    items[change[0]] = change[1]


def _undo_put(mapping: dict[str, Any], change: tuple[str, Any]) -> None:
    """Put back what ``mapping[key]`` held (nothing, if ``old`` is None)."""
    key, old = change
    if old is None:
        mapping.pop(key, None)
    else:
        mapping[key] = old


def insert_ordered(items: list[Any], entry: tuple[Any, ...], journal: Journal) -> int | None:
    """Add ``entry`` keeping ``items`` ordered by (time, event id); return its position.

    In-order arrival, the usual case, is an append. An entry for an event already present
    is not added again (``None``): a record re-processed after a crash must not count twice.
    """
    if not items or (items[-1][0], items[-1][1]) < (entry[0], entry[1]):
        items.append(entry)
        position = len(items) - 1
    else:
        position = bisect.bisect_left(items, (entry[0], entry[1]), key=lambda e: (e[0], e[1]))
        if position < len(items) and items[position][0] == entry[0] and items[position][1] == entry[1]:
            return None
        items.insert(position, entry)
    journal.record(_undo_insert, items, position)
    return position


def drop_front(items: list[Any], count: int, journal: Journal) -> list[Any]:
    """Remove the first ``count`` entries of ``items`` and return them."""
    dropped = items[:count]
    del items[:count]
    journal.record(_undo_drop, items, dropped)
    return dropped


def older_than(items: list[Any], horizon: int) -> int:
    """How many entries at the front of the time-ordered ``items`` are older than ``horizon``."""
    if not items or items[0][0] >= horizon:
        return 0
    return bisect.bisect_left(items, horizon, key=lambda e: e[0])


def advance_mark(marks: dict[str, int], kind: str, t: int, journal: Journal) -> None:
    """Set the latest time seen for events of ``kind`` to ``t``."""
    journal.steps.append((_undo_put, marks, (kind, marks.get(kind))))
    marks[kind] = t


def put(mapping: dict[str, Any], key: str, value: Any, journal: Journal) -> None:
    """``mapping[key] = value`` (``value`` is never ``None``), undoably."""
    journal.record(_undo_put, mapping, (key, mapping.get(key)))
    mapping[key] = value


def set_entry(items: list[Any], position: int, entry: Any, journal: Journal) -> None:
    """Replace ``items[position]`` with ``entry``, undoably."""
    journal.record(_undo_set, items, (position, items[position]))
    items[position] = entry


#: 10**n for every number of fraction digits an amount can have.
_POWERS = [10**n for n in range(SUM_SCALE + 1)]


def sum_units(value: str) -> tuple[int, int]:
    """A decimal string as (integer units of 10^-18, its number of fraction digits)."""
    dot = value.find(".")
    places = 0 if dot < 0 else len(value) - dot - 1
    digits = value if dot < 0 else value[:dot] + value[dot + 1 :]
    if places <= SUM_SCALE and digits.isdigit() and digits.isascii():
        return int(digits) * _POWERS[SUM_SCALE - places], places
    sign, numerals, exponent = Decimal(value).as_tuple()  # e.g. "1E-7", as str(Decimal) writes small numbers
    if not isinstance(exponent, int) or -exponent > SUM_SCALE:
        raise ValueError(f"{value!r} is not an amount with at most {SUM_SCALE} fraction digits")
    units = int("".join(map(str, numerals)) or "0") * 10 ** (SUM_SCALE + exponent)
    return (-units if sign else units), max(0, -exponent)


#: One window entry: event time (epoch ms), event id, and what it adds: 1 (event count),
#: a decimal string (sum) or a list of normalised values (distinct count).
WindowEntry = tuple[int, str, Any]


class Window:
    """A correlation rule's events in its sliding window, with running aggregates.

    ``marks`` holds the latest time seen per event type (its watermarks), ``entries``
    the events in the window ordered by (time, event id). The aggregates follow the
    entries through :meth:`add` and :meth:`drop`, and are rebuilt from the entries when
    state is decoded, so they are never persisted.
    """

    __slots__ = ("counts", "entries", "marks", "units")

    def __init__(self, marks: dict[str, int] | None = None, entries: list[WindowEntry] | None = None) -> None:
        self.marks: dict[str, int] = marks if marks is not None else {}
        self.entries: list[WindowEntry] = []
        #: The sum of the entries' decimal strings, in units of 10^-18.
        self.units = 0
        #: A sum's entries per number of fraction digits (it prints with the most), or a
        #: distinct count's entries per value; made on first use (an event count needs none).
        self.counts: dict[Any, int] | None = None
        for entry in entries or ():
            self.entries.append(entry)
            self._count(entry, 1)

    def add(self, entry: WindowEntry, journal: Journal) -> bool:
        """Put ``entry`` in the window (False if its event is there already)."""
        if insert_ordered(self.entries, entry, journal) is None:
            return False
        if entry[2].__class__ is not int:  # an event count needs no more than the entry
            self._count(entry, 1)
            journal.steps.append((_recount, self, ([entry], -1)))
        return True

    def drop(self, count: int, journal: Journal) -> None:
        """Remove the ``count`` oldest entries."""
        dropped = drop_front(self.entries, count, journal)
        for entry in dropped:
            self._count(entry, -1)
        journal.record(_recount, self, (dropped, 1))

    def _count(self, entry: WindowEntry, sign: int) -> None:
        value = entry[2]
        if value.__class__ is int:
            return
        counts = self.counts
        if counts is None:
            counts = self.counts = {}
        if isinstance(value, str):
            units, places = sum_units(value)
            self.units += sign * units
            _tally(counts, places, sign)
        else:
            for item in value:
                _tally(counts, item, sign)

    def total(self, aggregate: str) -> Decimal | int:
        """The window's ``event_count``, ``sum`` or ``distinct_count``.

        Counts are ints: they compare with a Decimal threshold exactly and print alike. A
        sum is exact and prints with as many fraction digits as its most precise entry, as
        a sum of Decimals does (which, in the default 28-digit context, rounds sums of
        more significant digits; this one does not).
        """
        if aggregate == "event_count":
            return len(self.entries)
        if aggregate == "sum":
            places = max(self.counts or (0,))
            return Decimal(f"{self.units // 10 ** (SUM_SCALE - places)}E-{places}")
        return len(self.counts or ())


def _recount(window: Window, change: tuple[list[WindowEntry], int]) -> None:
    entries, sign = change
    for entry in entries:
        window._count(entry, sign)


def _tally(counts: dict[Any, int], key: Any, sign: int) -> None:
    left = counts.get(key, 0) + sign
    if left:
        counts[key] = left
    else:
        del counts[key]


#: A sequence's start: time, event id, the value later steps are measured against, done.
Start = tuple[int, str, str | None, bool]
#: A "then" step: time, event id, its value (for accumulating sequences).
Then = tuple[int, str, str | None]
#: An "until" step: time, event id.
Until = tuple[int, str]


class Sequence:
    """A sequence rule's pending starts and the steps that may complete or cancel them."""

    __slots__ = ("marks", "starts", "thens", "untils")

    def __init__(
        self,
        marks: dict[str, int] | None = None,
        starts: list[Start] | None = None,
        thens: list[Then] | None = None,
        untils: list[Until] | None = None,
    ) -> None:
        self.marks: dict[str, int] = marks if marks is not None else {}
        self.starts: list[Start] = starts if starts is not None else []
        self.thens: list[Then] = thens if thens is not None else []
        self.untils: list[Until] = untils if untils is not None else []


class Suppression(NamedTuple):
    """A rule's suppression period for an account: when it began and the alert that began it."""

    at: int
    alert_id: str


class AccountState:
    """Everything the rules remember about one account."""

    __slots__ = ("latest", "parts", "seen", "suppressed")

    def __init__(self) -> None:
        #: Event time of the latest event screened for the account (epoch ms).
        self.latest: int | None = None
        #: Event ids screened lately -> their event time, oldest first (resend dedupe).
        self.seen: dict[str, int] = {}
        #: Rule id -> that rule's window or sequences.
        self.parts: dict[str, Window | Sequence] = {}
        #: Rule id -> its current suppression period.
        self.suppressed: dict[str, Suppression] = {}

    def is_empty(self) -> bool:
        """Whether there is nothing to remember (such an account needs no table entry)."""
        return self.latest is None and not self.seen and not self.parts and not self.suppressed

    def new_part(self, rule_id: str, kind: type[Window] | type[Sequence], journal: Journal) -> Any:
        """A new, empty part of the state for the rule."""
        found = self.parts[rule_id] = kind()
        journal.record(_undo_put, self.parts, (rule_id, None))
        return found


class StateStore(Protocol):
    """Per-account state of stateful rules."""

    def account(self, account_id: str, partition: int) -> AccountState:
        """The live state of ``account_id`` (empty if it has none yet).

        ``partition`` is the input partition of the record being screened: a durable
        store keeps the account's state on the same partition of its changelog. The
        caller changes the state in place; the store sees the change without another call.
        """


class DictStore:
    """State in a dict of live objects: for backtests, rule tests and unit tests."""

    def __init__(self) -> None:
        self.accounts: dict[str, AccountState] = {}

    def account(self, account_id: str, partition: int = 0) -> AccountState:
        """The live state of ``account_id`` (the partition does not matter in memory)."""
        state = self.accounts.get(account_id)
        if state is None:
            state = self.accounts[account_id] = AccountState()
        return state

    def expire(self, clock_ms: int, horizon_ms: int) -> int:
        """Delete the accounts whose latest event is more than ``horizon_ms`` before ``clock_ms``; how many.

        As the worker's sweep does (:meth:`streams.shell.state_table.TableStore.expired`):
        an event that comes later finds the same results without them, so a store fed in
        event-time order holds only the accounts active within the horizon.
        """
        idle = [
            account
            for account, state in self.accounts.items()
            if state.latest is None or clock_ms - state.latest > horizon_ms
        ]
        for account in idle:
            del self.accounts[account]
        return len(idle)

    def __len__(self) -> int:
        return sum(1 for state in self.accounts.values() if not state.is_empty())
