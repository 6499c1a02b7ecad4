"""The event contract: deposits and withdrawals from the exchange ledger.

Events arrive as JSON (one object per Kafka record, or one per line in a file). This
module turns raw bytes into validated, typed events, or raises :class:`EventError`
with a stable ``reason`` code (used as the dead-letter reason and as a metric label)
and a plain-words ``detail``. Amounts are exact: they travel as decimal strings and
become :class:`~decimal.Decimal`; a JSON number is refused because a float may already
have lost digits before we see it. See docs/events.md.

An event is a plain slotted value (:class:`Deposit`, :class:`Withdrawal`), built by
:func:`validate_event`: a well-formed event is checked field by field with the contract's
own validators (:mod:`streams.core.event_values`), and anything else goes to the pydantic
contract (:mod:`streams.core.event_contract`), whose first problem is the error a user
reads. The fast check can only ever refuse by deferring; a property test holds the two to
the same verdict and values. Before all this, :func:`streams.core.inputs.parse_input` tries
:mod:`streams.core.event_wire`, which reads a well-formed record in one msgspec pass.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

import orjson
from pydantic import ValidationError

from streams.core.chains import CHAINS, normalise_address
from streams.core.event_contract import DepositContract, WithdrawalContract, first_error
from streams.core.event_values import (
    EARLIEST_TIMESTAMP,
    EPOCH,
    MAX_ADDRESSES,
    MAX_EVENT_BYTES,
    MAX_FUTURE,
    MAX_FUTURE_MS,
    MAX_TEXT_LENGTH,
    Clock,
    EventError,
    address_text,
    decimal_string,
    epoch_ms,
    format_timestamp,
    parse_moment,
    utc_timestamp,
    wall_clock,
)
from streams.core.stored_json import dumps_to_keep

__all__ = [
    "EARLIEST_TIMESTAMP", "EPOCH", "EVENT_TYPES", "MAX_EVENT_BYTES", "MAX_FUTURE", "MAX_TEXT_LENGTH", "Clock",
    "Deposit", "Event", "EventError", "EventType", "Withdrawal", "check_not_future", "decode_checked", "epoch_ms",
    "event_from_dict", "format_timestamp", "parse_event", "parse_moment", "to_json_dict", "too_far_ahead",
    "validate_event", "wall_clock",
]  # fmt: skip

EventType = Literal["deposit", "withdrawal"]
EVENT_TYPES: tuple[EventType, ...] = ("deposit", "withdrawal")


@dataclass(slots=True, kw_only=True)
class LedgerEvent:
    """Fields every ledger event carries, and what it answers about its addresses."""

    event_id: str
    account_id: str
    chain: str
    asset: str
    amount: Decimal
    usd_value: Decimal | None = None
    timestamp: datetime
    #: Exact epoch milliseconds of ``timestamp`` (every stateful rule needs it).
    epoch_ms: int = field(init=False, repr=False, compare=False)
    _address_keys: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    #: JSON that reads back as this very event on its own, with no topic to imply its type:
    #: the input as it came when it declares its type, else made once by :func:`stand_alone_json`.
    source_json: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Not frozen: a frozen dataclass sets every field through object.__setattr__, which
        # doubled the cost of an event. Nothing changes an event after this.
        self.epoch_ms = epoch_ms(self.timestamp)
        self._address_keys = {}

    def address_keys(self, field: str) -> tuple[str, ...]:
        """The addresses of ``field`` in their normalised matching form (computed once per field)."""
        found = self._address_keys.get(field)
        if found is None:
            found = self._address_keys[field] = tuple(normalise_address(a) for a in self.addresses(field))
        return found

    def addresses(self, field: str) -> tuple[str, ...]:
        """The address or addresses held in ``field``, as spelled in the event."""
        value = getattr(self, field, None)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        return tuple(value)


@dataclass(slots=True, kw_only=True)
class Deposit(LedgerEvent):
    """Funds arriving at one of the exchange's deposit addresses (from :func:`validate_event`, or the one pass of
    :mod:`streams.core.event_wire`, which gives the same)."""

    type: Literal["deposit"] = "deposit"
    tx_hash: str
    from_addresses: list[str]
    to_address: str
    #: The fields of the JSON form, in its order.
    FIELDS: ClassVar[tuple[str, ...]] = (
        "event_id", "account_id", "chain", "asset", "amount", "usd_value", "timestamp", "type", "tx_hash",
        "from_addresses", "to_address",
    )  # fmt: skip


@dataclass(slots=True, kw_only=True)
class Withdrawal(LedgerEvent):
    """Funds leaving the exchange to an external address (made as a :class:`Deposit` is)."""

    type: Literal["withdrawal"] = "withdrawal"
    to_address: str
    tx_hash: str | None = None
    #: The fields of the JSON form, in its order.
    FIELDS: ClassVar[tuple[str, ...]] = (
        "event_id", "account_id", "chain", "asset", "amount", "usd_value", "timestamp", "type", "to_address",
        "tx_hash",
    )  # fmt: skip


Event = Deposit | Withdrawal


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


def too_far_ahead(event_ms: int, now: datetime | None) -> bool:
    """Whether an input stamped ``event_ms`` is more than :data:`MAX_FUTURE` after ``now`` (never without a clock)."""
    return now is not None and event_ms > epoch_ms(now) + MAX_FUTURE_MS


def check_not_future(event_ms: int, data: Any, now: datetime | None) -> None:
    """Refuse an event stamped more than :data:`MAX_FUTURE` after ``now`` (a clock or unit error upstream)."""
    if too_far_ahead(event_ms, now):
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


_KINDS: dict[str, tuple[type[Deposit] | type[Withdrawal], type[DepositContract] | type[WithdrawalContract]]] = {
    "deposit": (Deposit, DepositContract),
    "withdrawal": (Withdrawal, WithdrawalContract),
}


def validate_event(data: Any, expected: EventType | None) -> Event:
    """A decoded JSON value (see :func:`decode_checked`) as a deposit or withdrawal."""
    if not isinstance(data, dict):
        raise EventError("invalid_json", f"value is a JSON {type(data).__name__}, expected an object")
    declared = data.get("type")
    if declared is not None and declared not in _KINDS:
        raise EventError("invalid_field", f"field 'type': {str(declared)[:40]!r} is not deposit or withdrawal")
    if expected is not None:
        if declared is not None and declared != expected:
            raise EventError("type_mismatch", f"a {declared} on the {expected}s topic")
        kind = expected
    elif declared is None:
        raise EventError("missing_field", "required field 'type' is missing (deposit or withdrawal)")
    else:
        kind = declared
    checked = _checked(data, kind)
    if checked is not None:
        return checked
    event_class, contract = _KINDS[kind]
    try:
        model = contract.model_validate(data)
    except ValidationError as exc:
        raise first_error(exc) from None
    return event_class(**{name: getattr(model, name) for name in event_class.FIELDS})


def _text(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_TEXT_LENGTH


def _checked(data: dict[str, Any], kind: str) -> Event | None:
    """``data`` as an event if it is one the contract accepts, else ``None`` (the contract then says why).

    Exactly the contract's checks, in the common case only: every field of its JSON type,
    no field that needs a closer look. ``None`` never means "invalid", only "ask the contract".
    """
    # Any: each is checked below before it is used as what the event's field needs.
    event_id: Any = data.get("event_id")
    account_id: Any = data.get("account_id")
    chain: Any = data.get("chain")
    asset: Any = data.get("asset")
    tx_hash: Any = data.get("tx_hash")
    get = data.get
    if not (_text(event_id) and _text(account_id) and _text(asset) and type(chain) is str and chain in CHAINS):
        return None
    usd_value = get("usd_value")
    senders: Any = get("from_addresses")
    if kind == "deposit":
        if not (
            type(tx_hash) is str and _text(tx_hash) and type(senders) is list and 0 < len(senders) <= MAX_ADDRESSES
        ):
            return None
    elif tx_hash is not None and not _text(tx_hash):
        return None
    try:
        amount = decimal_string(get("amount"), allow_zero=False)
        usd = None if usd_value is None else decimal_string(usd_value, allow_zero=True)
        moment, receiver = utc_timestamp(get("timestamp")), address_text(get("to_address"))
        if kind == "withdrawal":
            return Withdrawal(
                event_id=event_id, account_id=account_id, chain=chain, asset=asset, amount=amount, usd_value=usd,
                timestamp=moment, to_address=receiver, tx_hash=tx_hash,
            )  # fmt: skip
        return Deposit(
            event_id=event_id, account_id=account_id, chain=chain, asset=asset, amount=amount, usd_value=usd,
            timestamp=moment, to_address=receiver, tx_hash=tx_hash, from_addresses=[address_text(a) for a in senders],
        )  # fmt: skip
    except ValueError:
        return None


def stand_alone_json(event: Event) -> bytes:
    """The event as JSON another reader takes without a topic to imply its type (see :attr:`LedgerEvent.source_json`).

    The input itself when it declared its type (no encoding: this is what an exposure check
    carries and what a waiting deposit is stored as); otherwise the :func:`to_json_dict` form,
    made once per event.
    """
    found = event.source_json
    if found is None:
        found = event.source_json = dumps_to_keep(to_json_dict(event))
    return found


def to_json_dict(event: Event) -> dict[str, Any]:
    """The event as a JSON-ready dict (absent fields left out): decimals as strings, timestamps in RFC 3339 UTC."""
    data: dict[str, Any] = {}
    for name in event.FIELDS:
        value = getattr(event, name)
        if value is None:
            continue
        data[name] = str(value) if isinstance(value, Decimal) else list(value) if isinstance(value, list) else value
    data["timestamp"] = format_timestamp(event.timestamp)
    return data
