"""The event contract: deposits and withdrawals from the exchange ledger.

Events arrive as JSON (one object per Kafka record, or one per line in a file). This
module turns raw bytes into validated, typed events, or raises :class:`EventError`
with a stable ``reason`` code (used as the dead-letter reason and as a metric label)
and a plain-words ``detail``. Amounts are exact: they travel as decimal strings and
become :class:`~decimal.Decimal`; a JSON number is refused because a float may already
have lost digits before we see it. See docs/events.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from streams.core.chains import check_chain, normalise_address
from streams.core.errors import first_problem

EventType = Literal["deposit", "withdrawal"]
EVENT_TYPES: tuple[EventType, ...] = ("deposit", "withdrawal")

#: Integer and fraction digits an amount may have (DECIMAL(42,18) in a ledger database).
#: Larger numbers are not real transfers; they are corrupt input and must not overflow
#: downstream systems.
MAX_INTEGER_DIGITS = 24
MAX_FRACTION_DIGITS = 18
MAX_ADDRESS_LENGTH = 128
MAX_TEXT_LENGTH = 256
MAX_ADDRESSES = 1000
#: A ledger event is a few hundred bytes; anything far larger is not one (and would slow
#: every worker that parses it).
MAX_EVENT_BYTES = 64 * 1024
#: Timestamps before the first block of Bitcoin, or more than a day ahead of this clock,
#: are corrupt: a far-future time would also make every later event of the account "late".
EARLIEST_TIMESTAMP = datetime(2009, 1, 3, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)
MAX_FUTURE_MS = int(MAX_FUTURE.total_seconds() * 1000)

#: The time now, as the caller sees it: the core never reads a clock of its own, so the
#: worker, ``backtest`` and the tests decide what "now" is (see :mod:`streams.core.screening`).
Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    """The machine's time in UTC: the :data:`Clock` the worker and the commands pass in."""
    return datetime.now(UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)

_DECIMAL = re.compile(r"(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?\Z")
_ADDRESS = re.compile(rf"\S{{1,{MAX_ADDRESS_LENGTH}}}\Z")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.(?P<frac>\d{1,9}))?(?P<tz>[Zz]|[+-]\d{2}:\d{2})\Z")


class EventError(ValueError):
    """Raw input that is not a valid event.

    ``reason`` is one of a small, fixed set of codes (safe as a metric label);
    ``detail`` says in plain words what is wrong, naming the field.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decimal_string(value: Any, *, allow_zero: bool) -> Decimal:
    """An exact amount from a plain decimal string; raises ``ValueError`` saying what is wrong."""
    if not isinstance(value, str):
        raise ValueError('must be a decimal string such as "12.5" (JSON numbers lose precision)')
    match = _DECIMAL.match(value)
    if not match:
        raise ValueError(f"{value[:60]!r} is not a plain decimal string (digits, optional fraction)")
    if len(match["int"].lstrip("0")) > MAX_INTEGER_DIGITS:
        raise ValueError(f"has more than {MAX_INTEGER_DIGITS} integer digits")
    if match["frac"] and len(match["frac"]) > MAX_FRACTION_DIGITS:
        raise ValueError(f"has more than {MAX_FRACTION_DIGITS} fraction digits")
    amount = Decimal(value)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise ValueError("must be greater than zero" if not allow_zero else "must not be negative")
    return amount


def _positive_amount(value: Any) -> Decimal:
    return decimal_string(value, allow_zero=False)


def _usd_value(value: Any) -> Decimal:
    return decimal_string(value, allow_zero=True)


def utc_timestamp(value: Any) -> datetime:
    """A UTC moment from an RFC 3339 string; raises ``ValueError`` saying what is wrong."""
    if not isinstance(value, str):
        raise ValueError('must be an RFC 3339 string such as "2026-11-27T06:05:00Z"')
    match = _RFC3339.match(value)
    if not match:
        raise ValueError(f"{value[:40]!r} is not an RFC 3339 timestamp with a time zone")
    if match["tz"] not in ("Z", "z", "+00:00", "-00:00"):
        raise ValueError(f"{value!r} must be in UTC (end in Z or +00:00)")
    text = value if value[10] == "T" else value[:10] + "T" + value[11:]
    if match["frac"] is not None and len(match["frac"]) > 6:
        # Python's fromisoformat takes at most microseconds; drop extra nanosecond digits.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    if match["tz"] == "z":
        text = text[:-1] + "Z"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid date and time ({exc})") from None
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    if moment < EARLIEST_TIMESTAMP:
        raise ValueError(f"{value!r} is before 2009-01-03, the first block of any chain we screen")
    return moment


def address_text(value: Any) -> str:
    """An address as given (no spaces, 1 to 128 characters); raises ``ValueError`` otherwise."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not _ADDRESS.match(value):
        raise ValueError(f"must be a non-empty address of at most {MAX_ADDRESS_LENGTH} characters without spaces")
    return value


Amount = Annotated[Decimal, BeforeValidator(_positive_amount)]
UsdValue = Annotated[Decimal, BeforeValidator(_usd_value)]
Timestamp = Annotated[datetime, BeforeValidator(utc_timestamp)]
Address = Annotated[str, BeforeValidator(address_text)]
NonEmpty = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_LENGTH)]
#: An amount that may be zero (a chain transfer of no value), exact as the others.
NonNegativeAmount = Annotated[Decimal, BeforeValidator(_usd_value)]


class _Event(BaseModel):
    """Fields every ledger event carries."""

    # Unknown fields are ignored, not refused: the ledger may add fields before we do.
    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")

    event_id: NonEmpty
    account_id: NonEmpty
    chain: str
    asset: NonEmpty
    amount: Amount
    usd_value: UsdValue | None = None
    timestamp: Timestamp

    @field_validator("chain")
    @classmethod
    def _known_chain(cls, value: str) -> str:
        return check_chain(value)

    @cached_property
    def epoch_ms(self) -> int:
        """Exact epoch milliseconds of ``timestamp`` (computed once: every stateful rule needs it)."""
        return epoch_ms(self.timestamp)

    def address_keys(self, field: str) -> tuple[str, ...]:
        """The addresses of ``field`` in their normalised matching form (computed once per field)."""
        keys: dict[str, tuple[str, ...]] = self.__dict__.setdefault("_address_keys", {})
        found = keys.get(field)
        if found is None:
            found = keys[field] = tuple(normalise_address(a) for a in self.addresses(field))
        return found

    def addresses(self, field: str) -> tuple[str, ...]:
        """The address or addresses held in ``field``, as spelled in the event."""
        value = getattr(self, field, None)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        return tuple(value)


class Deposit(_Event):
    """Funds arriving at one of the exchange's deposit addresses."""

    type: Literal["deposit"] = "deposit"
    tx_hash: NonEmpty
    from_addresses: Annotated[list[Address], Field(min_length=1, max_length=MAX_ADDRESSES)]
    to_address: Address


class Withdrawal(_Event):
    """Funds leaving the exchange to an external address."""

    type: Literal["withdrawal"] = "withdrawal"
    to_address: Address
    tx_hash: NonEmpty | None = None


Event = Deposit | Withdrawal
_MODELS: dict[str, type[Deposit] | type[Withdrawal]] = {"deposit": Deposit, "withdrawal": Withdrawal}


def _first_error(exc: ValidationError) -> EventError:
    """Condense pydantic's report into one reason code and a plain sentence."""
    problem = first_problem(exc)
    field = ".".join(str(part) for part in problem.loc if part not in ("deposit", "withdrawal"))
    if problem.kind == "missing":
        return EventError("missing_field", f"required field {field!r} is missing")
    more = f" (and {problem.more} more problem(s))" if problem.more else ""
    return EventError("invalid_field", f"field {field!r}: {problem.message}{more}")


def parse_event(raw: bytes | None, expected: EventType | None = None, now: datetime | None = None) -> Event:
    """Decode and validate one event.

    ``expected`` is the type implied by the topic (``deposits`` → ``"deposit"``); the
    event's own ``type`` must match it if present. Files and mixed streams (``expected``
    is ``None``) must carry ``type`` on every record. With ``now``, an event stamped more
    than :data:`MAX_FUTURE` after it is refused (a clock or unit error upstream).
    """
    data = decode_checked(raw)
    event = validate_event(data, expected)
    check_not_future(event.epoch_ms, data, now)
    return event


def decode_checked(raw: bytes | None, *, exact_integers: bool = False) -> Any:
    """The JSON value of one record, refused (:class:`EventError`) if it cannot be an event of any kind.

    Size, UTF-8, JSON, a key given twice, control characters in text fields: checks every input
    shares. ``exact_integers`` keeps JSON integers of any size exact (ethereum-etl's uint256).
    """
    if raw is None:
        raise EventError("empty_value", "record has no value (a tombstone), expected a JSON event")
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError("too_large", f"value is {len(raw)} bytes; an event is at most {MAX_EVENT_BYTES}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventError("invalid_utf8", f"value is not UTF-8 (byte {exc.start})") from None
    if exact_integers:
        data = _loads_exact(raw)
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise EventError("invalid_json", f"value is not JSON: {exc}") from None
    if not exact_integers and _has_duplicate_keys(raw, data):
        # JSON parsers keep one of the two silently; which amount was meant is unknowable.
        raise EventError("invalid_json", "an object has the same key twice")
    if b"\\" in raw or b"\x7f" in raw or b"\xc2" in raw:
        # A control character is in the text only as an escape (\u0000, \n), a raw DEL, or a
        # raw C1 character (UTF-8 \xc2\x80-\x9f); other events skip the look at every field.
        _refuse_control_characters(data)
    return data


def _loads_exact(raw: bytes) -> Any:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({key for key, _ in pairs}) != len(pairs):
            raise EventError("invalid_json", "an object has the same key twice")
        return dict(pairs)

    try:
        return json.loads(raw, object_pairs_hook=unique)
    except ValueError as exc:
        if isinstance(exc, EventError):
            raise
        raise EventError("invalid_json", f"value is not JSON: {exc}") from None


def check_not_future(event_ms: int, data: Any, now: datetime | None) -> None:
    """Refuse an event stamped more than :data:`MAX_FUTURE` after ``now`` (a clock or unit error upstream)."""
    if now is not None and event_ms > epoch_ms(now) + MAX_FUTURE_MS:
        stamp = data.get("timestamp") if isinstance(data, dict) else None
        raise EventError("invalid_field", f"field 'timestamp': {stamp!r} is more than a day in the future")


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"(\s*:)?')


def _has_duplicate_keys(raw: bytes, data: Any) -> bool:
    """Whether the text has more object keys than the parsed value kept."""
    if b"\\u" not in raw:
        # Fast and exact: outside strings, a colon ends a key, so the colons of the text
        # minus those inside strings count the keys written. Re-encoding the parsed value
        # writes each kept key once and every colon inside a string as it was (only a
        # \u escape can spell a colon differently, hence the condition above).
        return raw.count(b":") != orjson.dumps(data).count(b":")
    written = sum(1 for match in _JSON_STRING.finditer(raw) if match.group(1))
    return written != _count_keys(data)


def _count_keys(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_count_keys(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_keys(v) for v in value)
    return 0


#: The fields whose text reaches alerts, logs and keys.
_TEXT_FIELDS = (
    "type", "event_id", "account_id", "chain", "asset", "amount", "usd_value", "timestamp", "tx_hash", "to_address",
    "from_address", "token_contract",
)  # fmt: skip
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _refuse_control_characters(data: Any) -> None:
    """No ledger value holds a control character: one (a NUL, say) would flow into keys, summaries and logs."""
    if not isinstance(data, dict):
        return
    senders = data.get("from_addresses")
    named = [(name, data.get(name)) for name in _TEXT_FIELDS]
    if isinstance(senders, list):
        named += [(f"from_addresses.{i}", value) for i, value in enumerate(senders)]
    for name, value in named:
        found = _CONTROL.search(value) if isinstance(value, str) else None
        if found is not None:
            code = f"U+{ord(found.group()):04X}"
            raise EventError("invalid_field", f"field {name!r}: contains the control character {code}")


def event_from_dict(data: Any, expected: EventType | None = None) -> Event:
    """Validate an already-decoded JSON object as an event (see :func:`parse_event`)."""
    _refuse_control_characters(data)
    return validate_event(data, expected)


def validate_event(data: Any, expected: EventType | None) -> Event:
    """A decoded JSON value (see :func:`decode_checked`) as a deposit or withdrawal."""
    if not isinstance(data, dict):
        raise EventError("invalid_json", f"value is a JSON {type(data).__name__}, expected an object")
    declared = data.get("type")
    if declared is not None and declared not in _MODELS:
        raise EventError("invalid_field", f"field 'type': {str(declared)[:40]!r} is not deposit or withdrawal")
    if expected is not None:
        if declared is not None and declared != expected:
            raise EventError("type_mismatch", f"a {declared} on the {expected}s topic")
        model = _MODELS[expected]
    elif declared is None:
        raise EventError("missing_field", "required field 'type' is missing (deposit or withdrawal)")
    else:
        model = _MODELS[declared]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc) from None


def parse_moment(text: str) -> datetime:
    """An RFC 3339 date or date-time read leniently, in UTC (a time without a zone is UTC).

    For what people and files give the commands (``--since``, a test case's start, a list
    version, a line to order by); events themselves are held to the strict contract of
    :func:`parse_event`. Raises :class:`ValueError`.
    """
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def to_json_dict(event: Event) -> dict[str, Any]:
    """The event as a JSON-ready dict: decimals as strings, timestamps in RFC 3339 UTC."""
    data = event.model_dump(mode="json", exclude_none=True)
    data["timestamp"] = format_timestamp(event.timestamp)
    return data


def epoch_ms(moment: datetime) -> int:
    """Exact epoch milliseconds of ``moment``."""
    return (moment - EPOCH) // _MILLISECOND


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix and millisecond precision where needed."""
    moment = moment.astimezone(UTC)
    if moment.microsecond == 0:
        spec = "seconds"
    elif moment.microsecond % 1000 == 0:
        spec = "milliseconds"
    else:
        spec = "microseconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"
