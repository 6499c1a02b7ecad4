"""The ledger-event contract as pydantic checks it: the reference, and the source of error messages.

:mod:`streams.core.events` accepts a well-formed event without pydantic (a worker parses
tens of thousands a second); whatever its fast check does not accept comes here, and the
first problem pydantic finds is the error a user reads. A property test holds the two to
the same verdict and the same values (tests/core/test_events.py).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from streams.core.chains import check_chain
from streams.core.errors import first_problem
from streams.core.event_values import (
    MAX_ADDRESSES,
    MAX_TEXT_LENGTH,
    EventError,
    address_text,
    non_negative_amount,
    positive_amount,
    utc_timestamp,
)

Amount = Annotated[Decimal, BeforeValidator(positive_amount)]
UsdValue = Annotated[Decimal, BeforeValidator(non_negative_amount)]
Timestamp = Annotated[datetime, BeforeValidator(utc_timestamp)]
Address = Annotated[str, BeforeValidator(address_text)]
NonEmpty = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_LENGTH)]
#: An amount that may be zero (a chain transfer of no value), exact as the others.
NonNegativeAmount = Annotated[Decimal, BeforeValidator(non_negative_amount)]


class EventContract(BaseModel):
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


class DepositContract(EventContract):
    """Funds arriving at one of the exchange's deposit addresses."""

    type: Literal["deposit"] = "deposit"
    tx_hash: NonEmpty
    from_addresses: Annotated[list[Address], Field(min_length=1, max_length=MAX_ADDRESSES)]
    to_address: Address


class WithdrawalContract(EventContract):
    """Funds leaving the exchange to an external address."""

    type: Literal["withdrawal"] = "withdrawal"
    to_address: Address
    tx_hash: NonEmpty | None = None


def first_error(exc: ValidationError) -> EventError:
    """Condense pydantic's report into one reason code and a plain sentence."""
    problem = first_problem(exc)
    field = ".".join(str(part) for part in problem.loc if part not in ("deposit", "withdrawal"))
    if problem.kind == "missing":
        return EventError("missing_field", f"required field {field!r} is missing")
    more = f" (and {problem.more} more problem(s))" if problem.more else ""
    return EventError("invalid_field", f"field {field!r}: {problem.message}{more}")
