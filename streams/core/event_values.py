"""The values every input is made of: exact amounts, UTC moments, addresses, and the error they raise.

Plain functions shared by the ledger events (:mod:`streams.core.events`), their pydantic
contract (:mod:`streams.core.event_contract`) and chain transfers
(:mod:`streams.core.transfers`): each validator raises ``ValueError`` saying in plain words
what is wrong; the callers turn that into an :class:`EventError` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

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
    whole, dot, fraction = value.partition(".")
    # ASCII digits, an optional point and more digits: what _DECIMAL matches, without a regex
    # (every amount of every event passes here). Anything else gets the regex's verdict.
    if not (whole.isdigit() and whole.isascii() and (not dot or (fraction.isdigit() and fraction.isascii()))):
        match = _DECIMAL.match(value)
        if not match:
            raise ValueError(f"{value[:60]!r} is not a plain decimal string (digits, optional fraction)")
        whole, fraction = match["int"], match["frac"] or ""
    if len(whole.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise ValueError(f"has more than {MAX_INTEGER_DIGITS} integer digits")
    if len(fraction) > MAX_FRACTION_DIGITS:
        raise ValueError(f"has more than {MAX_FRACTION_DIGITS} fraction digits")
    amount = Decimal(value)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise ValueError("must be greater than zero" if not allow_zero else "must not be negative")
    return amount


def positive_amount(value: Any) -> Decimal:
    """An amount greater than zero (:func:`decimal_string`)."""
    return decimal_string(value, allow_zero=False)


def non_negative_amount(value: Any) -> Decimal:
    """An amount of zero or more (:func:`decimal_string`): a USD value, a chain transfer's amount."""
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


def parse_moment(text: str) -> datetime:
    """An RFC 3339 date or date-time read leniently, in UTC (a time without a zone is UTC).

    For what people and files give the commands (``--since``, a test case's start, a list
    version, a line to order by); events themselves are held to the strict contract of
    :func:`parse_event`. Raises :class:`ValueError`.
    """
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


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
