"""The analysts' queue: alerts as the console shows them, and their dispositions.

Pure: no Kafka, no HTTP. The console (:mod:`streams.shell.console`) feeds an
:class:`AlertQueue` with the records it reads from ``freeze-alerts`` and
``alert-dispositions`` and answers pages from it. A disposition is a triage decision on
one alert (``confirmed``, ``false_positive``, ``escalated``, or back to ``open``) with
who, when and why; it travels as a versioned JSON record keyed by the alert id, so the
topic holds every console's decisions and is their audit trail (see docs/console.md).

Alert records come from outside this process: a record that is not an alert is counted
as unreadable (and shown as a count), never dropped silently and never shown half-read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

import orjson

from streams.core.events import epoch_ms, format_timestamp, parse_moment
from streams.core.taxonomy import Action, Mode, Severity, Typology

Status = Literal["open", "confirmed", "false_positive", "escalated"]
STATUSES: tuple[Status, ...] = get_args(Status)
#: What the queue can be narrowed by, each with the values it can take (status last: it is ours).
FACETS: dict[str, tuple[str, ...]] = {
    "typology": get_args(Typology),
    "severity": get_args(Severity),
    "action": get_args(Action),
    "mode": get_args(Mode),
    "status": STATUSES,
}
SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}
MAX_NOTE = 2000
MAX_USER = 128
DISPOSITION_SCHEMA = 1
_REQUIRED = ("alert_id", "account_id", "rule_id", "summary", "event_time", *FACETS.keys() - {"status"})


class TriageError(ValueError):
    """A disposition or alert record that cannot be used, with what is wrong in plain words."""


@dataclass(frozen=True, slots=True)
class Disposition:
    """One analyst's decision on one alert: the value of an ``alert-dispositions`` record."""

    alert_id: str
    status: Status
    by: str
    at: datetime
    note: str = ""
    schema_version: int = DISPOSITION_SCHEMA

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise TriageError(f"status must be one of {', '.join(STATUSES)}")
        if not self.alert_id or len(self.alert_id) > 128:
            raise TriageError("alert_id must be 1 to 128 characters")
        if not self.by or len(self.by) > MAX_USER:
            raise TriageError(f"by must be 1 to {MAX_USER} characters")
        if len(self.note) > MAX_NOTE:
            raise TriageError(f"the note is longer than {MAX_NOTE} characters")
        if self.schema_version != DISPOSITION_SCHEMA:
            raise TriageError(f"schema_version {self.schema_version} is not one this console reads")

    def as_json_dict(self) -> dict[str, Any]:
        """The record's value as JSON-ready named fields."""
        return {
            "schema_version": self.schema_version,
            "alert_id": self.alert_id,
            "status": self.status,
            "by": self.by,
            "at": format_timestamp(self.at),
            "note": self.note,
        }

    def to_json(self) -> bytes:
        """The record's value."""
        return orjson.dumps(self.as_json_dict())

    @classmethod
    def from_json(cls, raw: bytes) -> Disposition:
        """A record's value; :class:`TriageError` if it is not a disposition this console reads."""
        try:
            data = orjson.loads(raw)
            return cls(
                alert_id=_text(data, "alert_id"),
                status=data["status"],
                by=_text(data, "by"),
                at=parse_moment(_text(data, "at")),
                note=data.get("note", ""),
                schema_version=data["schema_version"],
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
            raise TriageError(f"not a disposition record: {exc}") from None


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise TriageError(f"{name} must be a string")
    return value


@dataclass(slots=True)
class QueuedAlert:
    """An alert in the queue, as read from the topic, with its latest disposition and its history."""

    alert: dict[str, Any]
    partition: int
    offset: int
    history: list[Disposition] = field(default_factory=list)
    #: The alert's event time in epoch milliseconds (the queue's order).
    event_ms: int = 0

    @property
    def alert_id(self) -> str:
        """The alert's deterministic id."""
        return str(self.alert["alert_id"])

    @property
    def status(self) -> Status:
        """The latest disposition's status; ``open`` until someone decides."""
        return self.history[-1].status if self.history else "open"

    def facets(self) -> tuple[str, ...]:
        """The alert's values for :data:`FACETS`, in their order."""
        alert = self.alert
        return (alert["typology"], alert["severity"], alert["action"], alert["mode"], self.status)

    def row(self) -> dict[str, Any]:
        """What the queue shows of it (the detail page has the rest)."""
        alert = self.alert
        return {
            "alert_id": alert["alert_id"],
            "account_id": alert["account_id"],
            "rule_id": alert["rule_id"],
            "typology": alert["typology"],
            "severity": alert["severity"],
            "action": alert["action"],
            "mode": alert["mode"],
            "summary": alert["summary"],
            "event_time": alert["event_time"],
            "status": self.status,
        }

    def detail(self) -> dict[str, Any]:
        """The alert whole, its disposition history and where it was read."""
        return {
            "alert": self.alert,
            "status": self.status,
            "history": [d.as_json_dict() for d in self.history],
            "record": {"partition": self.partition, "offset": self.offset},
        }


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """What the analyst narrowed the queue to: a value per facet (``None``: any) and an account."""

    values: Mapping[str, str] = field(default_factory=dict)
    account_id: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> QueueFilter:
        """From a page's query string; :class:`TriageError` naming an unknown value."""
        values: dict[str, str] = {}
        for name, allowed in FACETS.items():
            value = query.get(name) or None
            if value is None:
                continue
            if value not in allowed:
                raise TriageError(f"{name} must be one of {', '.join(allowed)}")
            values[name] = value
        return cls(values, query.get("account") or None)


@dataclass(frozen=True, slots=True)
class QueuePage:
    """One page of the queue, the number of alerts that passed, and the counts per facet value."""

    rows: list[dict[str, Any]]
    total: int
    counts: dict[str, dict[str, int]]


class AlertQueue:
    """Every alert read, by id, with its dispositions; answers the console's questions.

    The same alert may be written twice (a worker that restarts re-raises it with the same
    deterministic id): the first record is kept. A disposition may be read before its
    alert (the two topics are read side by side); it waits for the alert.
    """

    def __init__(self) -> None:
        self._alerts: dict[str, QueuedAlert] = {}
        self._waiting: dict[str, list[Disposition]] = {}
        #: Records of the alert topic that were not alerts (counted, shown on the page).
        self.unreadable = 0
        #: Alerts written again under an id already read.
        self.repeated = 0

    def __len__(self) -> int:
        return len(self._alerts)

    def add_alert(self, raw: bytes | None, partition: int, offset: int) -> QueuedAlert | None:
        """Read one record of the alert topic; the new alert, or ``None`` (repeated or unreadable)."""
        read = _read_alert(raw)
        if read is None:
            self.unreadable += 1
            return None
        alert, event_ms = read
        if alert["alert_id"] in self._alerts:
            self.repeated += 1
            return None
        waiting = self._waiting.pop(alert["alert_id"], [])
        item = QueuedAlert(alert, partition, offset, waiting, event_ms)
        self._alerts[item.alert_id] = item
        return item

    def apply(self, disposition: Disposition) -> QueuedAlert | None:
        """Record a disposition; the alert it changed, or ``None`` if that alert is not read yet."""
        item = self._alerts.get(disposition.alert_id)
        if item is None:
            self._waiting.setdefault(disposition.alert_id, []).append(disposition)
            return None
        item.history.append(disposition)
        return item

    def get(self, alert_id: str) -> QueuedAlert | None:
        """The alert of this id, if read."""
        return self._alerts.get(alert_id)

    def select(self, wanted: QueueFilter, *, order: str = "severity", offset: int = 0, limit: int = 100) -> QueuePage:
        """The alerts ``wanted`` admits, most severe then newest first (``order="time"``: newest first).

        Counts give, for each facet value, how many alerts the other conditions admit with
        that value: what choosing it would leave.
        """
        names = tuple(FACETS)
        counts = {name: dict.fromkeys(values, 0) for name, values in FACETS.items()}
        tallies = [counts[name] for name in names]
        wanted_values = tuple(wanted.values.get(name) for name in names)
        passed: list[QueuedAlert] = []
        for item in self._alerts.values():
            if wanted.account_id is not None and item.alert["account_id"] != wanted.account_id:
                continue
            values = item.facets()
            missed = [k for k, want in enumerate(wanted_values) if want is not None and values[k] != want]
            if not missed:  # admitted: counted under each of its values
                passed.append(item)
                for tally, value in zip(tallies, values, strict=True):
                    tally[value] += 1  # every value is a key: read alerts hold only known ones
            elif len(missed) == 1:  # admitted but for one facet: counted under that facet's value only
                k = missed[0]
                tallies[k][values[k]] += 1
        passed.sort(key=_order_key(order))
        return QueuePage([item.row() for item in passed[offset : offset + limit]], len(passed), counts)

    def of_account(self, account_id: str) -> list[QueuedAlert]:
        """Every alert of one account, newest first."""
        items = [item for item in self._alerts.values() if item.alert["account_id"] == account_id]
        items.sort(key=_order_key("time"))
        return items


def _order_key(order: str) -> Any:
    if order == "time":
        return lambda item: (-item.event_ms, item.alert_id)
    return lambda item: (-SEVERITY_RANK[item.alert["severity"]], -item.event_ms, item.alert_id)


def read_alert(raw: bytes | None) -> dict[str, Any] | None:
    """An alert record's JSON if it has what the console shows, else ``None``."""
    read = _read_alert(raw)
    return None if read is None else read[0]


def _read_alert(raw: bytes | None) -> tuple[dict[str, Any], int] | None:
    """An alert record's JSON and its event time in epoch milliseconds, or ``None``."""
    try:
        alert = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(alert, dict) or any(not isinstance(alert.get(name), str) for name in _REQUIRED):
        return None
    if any(alert[name] not in values for name, values in FACETS.items() if name != "status"):
        return None
    if not isinstance(alert.get("evidence", {}), dict) or not isinstance(alert.get("event_ids", []), list):
        return None
    try:
        return alert, epoch_ms(parse_moment(alert["event_time"]))
    except ValueError:
        return None


def facet_values() -> dict[str, list[str]]:
    """Every facet and its values, for the page's filters."""
    return {name: list(values) for name, values in FACETS.items()}
