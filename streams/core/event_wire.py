"""Well-formed ledger events decoded and checked in one pass (msgspec), before the full contract.

Nearly every record a worker reads is a plain, well-formed deposit or withdrawal. For those,
:func:`well_formed_event` does in one msgspec decode what :func:`streams.core.events.decode_checked`
and :func:`streams.core.events.validate_event` do in several steps (orjson, the
duplicate-key count, the field checks), and gives the same :class:`~streams.core.events.Deposit`
or :class:`~streams.core.events.Withdrawal`. It only ever *defers*: for anything it is not
certain about it returns ``None``, and the caller goes the full way, whose verdict and
dead-letter reason stand. A property test holds the two to the same events.

What it is certain about, and why it agrees with the full way:

- the record is ASCII with no backslash and no DEL: so no escape can hide a character,
  every string is as written, and no control character can be in it (a raw one is not
  JSON at all);
- msgspec reads it as one JSON object of known fields only, each of the type and length
  the contract requires (the same limits; that no address holds white space is checked
  after the decode, see :func:`_spaceless`);
- no key is written twice: JSON has colons only between a key and its value, and inside
  strings. The text's colons are at least the keys present plus the colons of the string
  values, and exactly that many only when no key is repeated (msgspec keeps the last
  silently). Field names hold no colon, and unknown fields are refused here;
- the amounts and the timestamp are in the plain spellings the contract's value functions
  read exactly as ``Decimal`` and ``datetime.fromisoformat`` read them, within its limits
  (checked after the decode, see :func:`_plain_amount` and :data:`_UTC_STAMP`).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from streams.core.chains import CHAINS
from streams.core.event_values import (
    EARLIEST_TIMESTAMP,
    MAX_ADDRESS_LENGTH,
    MAX_ADDRESSES,
    MAX_EVENT_BYTES,
    MAX_FRACTION_DIGITS,
    MAX_INTEGER_DIGITS,
    MAX_TEXT_LENGTH,
)
from streams.core.events import Deposit, Event, EventType, Withdrawal

__all__ = ["well_formed_event"]

_Text = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_LENGTH)]
#: :func:`streams.core.event_values.address_text` asks for 1 to 128 characters without
#: white space; the only white space a string can hold here is a space (see
#: :func:`_spaceless`), which is looked for in Python: cheaper than a pattern per address.
_Address = Annotated[str, Meta(min_length=1, max_length=MAX_ADDRESS_LENGTH)]
if TYPE_CHECKING:
    _Chain = str
else:  # the known chains, as msgspec checks them; a type checker cannot read a computed Literal
    _Chain = Literal[tuple(CHAINS)]
#: The amounts' and the timestamp's spellings are checked after the decode, in Python: a
#: msgspec ``pattern`` calls Python's ``re`` for each string anyway. On bench events the
#: whole pass went from 4.4-4.6 µs to 4.1 (docs/performance.md).
_Amount = str
_Stamp = str
#: The usual spelling of a UTC moment, which ``datetime.fromisoformat`` reads as
#: :func:`~streams.core.event_values.utc_timestamp` does (other spellings take the full way).
_UTC_STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z").fullmatch
_Senders = Annotated[list[_Address], Meta(min_length=1, max_length=MAX_ADDRESSES)]


class _Ledger(Struct, forbid_unknown_fields=True):
    """The fields both kinds share, as the JSON spells them (values still unparsed text)."""

    event_id: _Text
    account_id: _Text
    chain: _Chain
    asset: _Text
    amount: _Amount
    timestamp: _Stamp
    usd_value: _Amount | UnsetType | None = UNSET


class _DepositFields(_Ledger, forbid_unknown_fields=True, kw_only=True):
    tx_hash: _Text
    from_addresses: _Senders
    to_address: _Address


class _WithdrawalFields(_Ledger, forbid_unknown_fields=True, kw_only=True):
    to_address: _Address
    tx_hash: _Text | UnsetType | None = UNSET


# A file's line must say its type: decoded as a union tagged by "type".
class _TaggedDeposit(_DepositFields, tag_field="type", tag="deposit"):
    pass


class _TaggedWithdrawal(_WithdrawalFields, tag_field="type", tag="withdrawal"):
    pass


# A topic's record may leave its type out (the topic implies it), or say the same one.
class _TopicDeposit(_DepositFields):
    type: Literal["deposit"] | UnsetType = UNSET


class _TopicWithdrawal(_WithdrawalFields):
    type: Literal["withdrawal"] | UnsetType = UNSET


_Wire = _TaggedDeposit | _TaggedWithdrawal | _TopicDeposit | _TopicWithdrawal
_DECODERS: dict[EventType | None, msgspec.json.Decoder[Any]] = {
    None: msgspec.json.Decoder(_TaggedDeposit | _TaggedWithdrawal),
    "deposit": msgspec.json.Decoder(_TopicDeposit),
    "withdrawal": msgspec.json.Decoder(_TopicWithdrawal),
}
#: Keys every decoded kind has for sure: its required fields, and the tag where it is one
#: (msgspec keeps a tag out of the struct's fields).
_REQUIRED_KEYS = {
    kind: sum(f.required for f in msgspec.structs.fields(kind)) + (kind.__struct_config__.tag is not None)
    for kind in (_TaggedDeposit, _TaggedWithdrawal, _TopicDeposit, _TopicWithdrawal)
}


def well_formed_event(raw: bytes, expected: EventType | None) -> tuple[Event, bool] | None:
    """``raw`` as the event the full contract would make of it, and whether it declared its type; or ``None``.

    ``None`` never means "invalid", only "take the full way" (see the module's docstring).
    The event is not checked against a clock: the caller does that.
    """
    if len(raw) > MAX_EVENT_BYTES or not raw.isascii() or b"\\" in raw or b"\x7f" in raw:
        return None
    try:
        wire: _Wire = _DECODERS[expected].decode(raw)
    except msgspec.DecodeError:  # ValidationError is one: a field the contract may word or judge otherwise
        return None
    usd_value = wire.usd_value
    if (
        not _plain_amount(wire.amount)
        or (isinstance(usd_value, str) and not _plain_amount(usd_value))
        or _UTC_STAMP(wire.timestamp) is None
        or not _keys_written_once(raw, wire)
        or not _spaceless(wire)
    ):
        return None
    amount = Decimal(wire.amount)
    usd = None if usd_value is None or usd_value is UNSET else Decimal(usd_value)
    try:
        moment = datetime.fromisoformat(wire.timestamp)
    except ValueError:  # no such day or time (a 30 February): the contract words it
        return None
    if not amount or moment < EARLIEST_TIMESTAMP:
        return None
    if isinstance(wire, _DepositFields):
        event: Event = Deposit(
            event_id=wire.event_id, account_id=wire.account_id, chain=wire.chain, asset=wire.asset,
            amount=amount, usd_value=usd, timestamp=moment, to_address=wire.to_address,
            tx_hash=wire.tx_hash, from_addresses=wire.from_addresses,
        )  # fmt: skip
    else:
        tx_hash = wire.tx_hash
        event = Withdrawal(
            event_id=wire.event_id, account_id=wire.account_id, chain=wire.chain, asset=wire.asset,
            amount=amount, usd_value=usd, timestamp=moment, to_address=wire.to_address,
            tx_hash=None if tx_hash is UNSET else tx_hash,
        )  # fmt: skip
    declared = expected is None or getattr(wire, "type", UNSET) is not UNSET
    return event, declared


def _plain_amount(text: str) -> bool:
    """Whether ``text`` is a plain decimal within the contract's digits.

    As :func:`~streams.core.event_values.decimal_string` reads them. The text is ASCII
    (see :func:`well_formed_event`), so ``isdigit`` holds for 0-9 only.
    """
    whole, dot, fraction = text.partition(".")
    if dot and not (len(fraction) <= MAX_FRACTION_DIGITS and fraction.isdigit()):
        return False
    return whole.isdigit() and len(whole.lstrip("0")) <= MAX_INTEGER_DIGITS


def _keys_written_once(raw: bytes, wire: _Wire) -> bool:
    """Whether no key of ``raw`` is repeated (the colon count of the module's docstring)."""
    kind = type(wire)
    present = _REQUIRED_KEYS[kind] + (wire.usd_value is not UNSET)
    if kind is _TaggedWithdrawal or kind is _TopicWithdrawal:
        present += wire.tx_hash is not UNSET
    if kind is _TopicDeposit or kind is _TopicWithdrawal:
        present += wire.type is not UNSET  # type: ignore[union-attr]
    colons = raw.count(b":")
    in_strings = wire.timestamp.count(":")
    if colons == present + in_strings:
        return True
    # More colons: a key written twice, or colons in other values (ids such as "ledger:1").
    in_strings += sum(text.count(":") for text in _texts(wire))
    return colons == present + in_strings


def _texts(wire: _Wire) -> list[str]:
    """The string values of ``wire`` that may hold a colon, besides its timestamp."""
    texts = [wire.event_id, wire.account_id, wire.asset, wire.to_address]
    if isinstance(wire, _DepositFields):
        texts.append(wire.tx_hash)
        texts.extend(wire.from_addresses)
    elif isinstance(wire.tx_hash, str):
        texts.append(wire.tx_hash)
    return texts


def _spaceless(wire: _Wire) -> bool:
    """Whether no address has a space: with no escape and no raw control character (neither is
    JSON), a space is the only white space a string of ``raw`` can hold."""
    if " " in wire.to_address:
        return False
    return not isinstance(wire, _DepositFields) or not any(" " in sender for sender in wire.from_addresses)
