"""The chain-transfer contract: on-chain movements between addresses, to follow funds through hops.

A transfer is not a ledger event: it has no account, only a sender and a receiver
address (the ``chain-transfers`` topic, or lines with ``"type": "transfer"`` in a file).
Its amount may be zero (a contract call, address-poisoning dust): such a transfer is
valid input, and carries no exposure. See docs/events.md and
:mod:`streams.core.exposure` for what is done with it.

A worker may read all of a chain's transfers (tens of thousands a second), so a transfer
is a plain slotted value, not a pydantic model, and a well-formed one is checked by
:func:`_checked` with the same validators the contract uses. The pydantic model
:class:`TransferContract` stays the contract of record: whatever :func:`_checked` does not
accept goes through it, and its first problem is the error a user reads (so the fast path
can only ever refuse by deferring; tests hold the two to the same verdict and values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from streams.core.chains import CHAINS, check_chain, normalise_address
from streams.core.errors import first_problem
from streams.core.event_contract import Address, NonEmpty, NonNegativeAmount, Timestamp, UsdValue
from streams.core.event_values import (
    MAX_TEXT_LENGTH,
    EventError,
    address_text,
    decimal_string,
    epoch_ms,
    format_timestamp,
    utc_timestamp,
)
from streams.core.events import Event, EventType

InputType = Literal["deposit", "withdrawal", "transfer"]


@dataclass(slots=True)
class Transfer:
    """Value moved from one address to another on a chain (native coin or a token).

    Built only by :func:`transfer_from_dict`, from input the contract accepts.
    """

    event_id: str
    chain: str
    tx_hash: str
    from_address: str
    to_address: str
    asset: str
    amount: Decimal
    timestamp: datetime
    log_index: int | None = None
    #: The token's contract; absent for the chain's native coin.
    token_contract: str | None = None
    usd_value: Decimal | None = None
    block: int | None = None
    type: Literal["transfer"] = "transfer"
    #: Exact epoch milliseconds of ``timestamp``.
    epoch_ms: int = field(init=False, repr=False, compare=False)
    #: The sender in its matching form.
    sender: str = field(init=False, repr=False, compare=False)
    #: The receiver in its matching form.
    receiver: str = field(init=False, repr=False, compare=False)
    #: The token contract in its matching form (``None``: the native coin).
    token: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Every transfer is matched by these, so they are computed once, here.
        self.epoch_ms = epoch_ms(self.timestamp)
        self.sender = normalise_address(self.from_address)
        self.receiver = normalise_address(self.to_address)
        self.token = None if self.token_contract is None else normalise_address(self.token_contract)

    def as_json_dict(self) -> dict[str, Any]:
        """The transfer as its JSON input would carry it (absent fields left out)."""
        data: dict[str, Any] = {"type": self.type}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                data[name] = str(value) if isinstance(value, Decimal) else value
        data["timestamp"] = format_timestamp(self.timestamp)
        return data


class TransferContract(BaseModel):
    """The transfer contract as pydantic checks it: the reference, and the source of error messages."""

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")

    type: Literal["transfer"] = "transfer"
    event_id: NonEmpty
    chain: str
    tx_hash: NonEmpty
    log_index: int | None = Field(default=None, ge=0)
    from_address: Address
    to_address: Address
    asset: NonEmpty
    token_contract: Address | None = None
    amount: NonNegativeAmount
    usd_value: UsdValue | None = None
    timestamp: Timestamp
    block: int | None = Field(default=None, ge=0)

    @field_validator("chain")
    @classmethod
    def _known_chain(cls, value: str) -> str:
        return check_chain(value)


_FIELDS = (
    "event_id", "chain", "tx_hash", "log_index", "from_address", "to_address", "asset", "token_contract",
    "amount", "usd_value", "timestamp", "block",
)  # fmt: skip


def transfer_from_dict(data: Any) -> Transfer:
    """Validate a decoded JSON value as a transfer; raises :class:`EventError`."""
    if not isinstance(data, dict):
        raise EventError("invalid_json", f"value is a JSON {type(data).__name__}, expected an object")
    if data.get("type", "transfer") != "transfer":
        raise EventError("type_mismatch", f"a {str(data.get('type'))[:40]} on the chain-transfers topic")
    checked = _checked(data)
    if checked is not None:
        return checked
    try:
        model = TransferContract.model_validate(data)
    except ValidationError as exc:
        problem = first_problem(exc)
        name = ".".join(str(part) for part in problem.loc)
        if problem.kind == "missing":
            raise EventError("missing_field", f"required field {name!r} is missing") from None
        raise EventError("invalid_field", f"field {name!r}: {problem.message}") from None
    return Transfer(**{name: getattr(model, name) for name in _FIELDS})


def _checked(data: dict[str, Any]) -> Transfer | None:
    """``data`` as a transfer if it is one the contract accepts, else ``None`` (the contract then says why).

    Exactly :class:`TransferContract`'s checks, in the common case only: every field of its
    JSON type, no field that needs a closer look. ``None`` never means "invalid", only "ask
    the contract".
    """
    get = data.get
    event_id, chain, tx_hash, asset = get("event_id"), get("chain"), get("tx_hash"), get("asset")
    from_address, to_address, amount, stamp = get("from_address"), get("to_address"), get("amount"), get("timestamp")
    log_index, token_contract = get("log_index"), get("token_contract")
    usd_value, block = get("usd_value"), get("block")
    if not (
        type(event_id) is str and 0 < len(event_id) <= MAX_TEXT_LENGTH
        and type(tx_hash) is str and 0 < len(tx_hash) <= MAX_TEXT_LENGTH
        and type(asset) is str and 0 < len(asset) <= MAX_TEXT_LENGTH
        and type(chain) is str and chain in CHAINS
        and type(from_address) is str and type(to_address) is str
        and (token_contract is None or type(token_contract) is str)
        and (log_index is None or (type(log_index) is int and log_index >= 0))
        and (block is None or (type(block) is int and block >= 0))
    ):  # fmt: skip
        return None
    try:
        return Transfer(
            event_id, chain, tx_hash, address_text(from_address), address_text(to_address), asset,
            decimal_string(amount, allow_zero=True), utc_timestamp(stamp), log_index,
            None if token_contract is None else address_text(token_contract),
            None if usd_value is None else decimal_string(usd_value, allow_zero=True), block,
        )  # fmt: skip
    except ValueError:
        return None


def is_transfer(item: Event | Transfer) -> bool:
    """Whether a parsed input is a chain transfer (not a ledger event)."""
    return item.type == "transfer"


__all__ = ["EventType", "InputType", "Transfer", "TransferContract", "is_transfer", "transfer_from_dict"]
