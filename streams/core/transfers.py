"""The chain-transfer contract: on-chain movements between addresses, to follow funds through hops.

A transfer is not a ledger event: it has no account, only a sender and a receiver
address (the ``chain-transfers`` topic, or lines with ``"type": "transfer"`` in a file).
Its amount may be zero (a contract call, address-poisoning dust): such a transfer is
valid input, and carries no exposure. See docs/events.md and
:mod:`streams.core.exposure` for what is done with it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from streams.core.chains import check_chain, normalise_address
from streams.core.errors import first_problem
from streams.core.events import (
    Address,
    Event,
    EventError,
    EventType,
    NonEmpty,
    NonNegativeAmount,
    Timestamp,
    UsdValue,
    epoch_ms,
)

InputType = Literal["deposit", "withdrawal", "transfer"]


class Transfer(BaseModel):
    """Value moved from one address to another on a chain (native coin or a token)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")

    type: Literal["transfer"] = "transfer"
    event_id: NonEmpty
    chain: str
    tx_hash: NonEmpty
    log_index: int | None = Field(default=None, ge=0)
    from_address: Address
    to_address: Address
    asset: NonEmpty
    #: The token's contract; absent for the chain's native coin.
    token_contract: Address | None = None
    amount: NonNegativeAmount
    usd_value: UsdValue | None = None
    timestamp: Timestamp
    block: int | None = Field(default=None, ge=0)

    @field_validator("chain")
    @classmethod
    def _known_chain(cls, value: str) -> str:
        return check_chain(value)

    # Computed once, kept in the instance dict by hand rather than with functools.cached_property
    # (which takes a lock on every read in Python 3.11): measured interleaved with
    # tests/bench/exposure.py, 22,353-23,074 transfers/s against 18,978-20,491.
    @property
    def epoch_ms(self) -> int:
        """Exact epoch milliseconds of ``timestamp``."""
        found: int | None = self.__dict__.get("_epoch_ms")
        if found is None:
            found = self.__dict__["_epoch_ms"] = epoch_ms(self.timestamp)
        return found

    @property
    def sender(self) -> str:
        """The sender in its matching form."""
        found: str | None = self.__dict__.get("_sender")
        if found is None:
            found = self.__dict__["_sender"] = normalise_address(self.from_address)
        return found

    @property
    def receiver(self) -> str:
        """The receiver in its matching form."""
        found: str | None = self.__dict__.get("_receiver")
        if found is None:
            found = self.__dict__["_receiver"] = normalise_address(self.to_address)
        return found

    @property
    def token(self) -> str | None:
        """The token contract in its matching form (``None``: the native coin)."""
        if self.token_contract is None:
            return None
        found: str | None = self.__dict__.get("_token")
        if found is None:
            found = self.__dict__["_token"] = normalise_address(self.token_contract)
        return found


def transfer_from_dict(data: Any) -> Transfer:
    """Validate a decoded JSON value as a transfer; raises :class:`EventError`."""
    if not isinstance(data, dict):
        raise EventError("invalid_json", f"value is a JSON {type(data).__name__}, expected an object")
    if data.get("type", "transfer") != "transfer":
        raise EventError("type_mismatch", f"a {str(data.get('type'))[:40]} on the chain-transfers topic")
    try:
        return Transfer.model_validate(data)
    except ValidationError as exc:
        problem = first_problem(exc)
        field = ".".join(str(part) for part in problem.loc)
        if problem.kind == "missing":
            raise EventError("missing_field", f"required field {field!r} is missing") from None
        raise EventError("invalid_field", f"field {field!r}: {problem.message}") from None


def is_transfer(item: Event | Transfer) -> bool:
    """Whether a parsed input is a chain transfer (not a ledger event)."""
    return item.type == "transfer"


__all__ = ["EventType", "InputType", "Transfer", "is_transfer", "transfer_from_dict"]
