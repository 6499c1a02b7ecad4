"""Items that ``ethereumetl stream`` writes to Kafka, as chain transfers.

Shapes checked against the ethereum-etl package's own source (2.4.2):
``EthTransactionMapper.transaction_to_dict`` and ``enrich_transactions`` (``hash``,
``from_address``, ``to_address``, ``value`` in wei as a JSON integer, ``block_number``,
``block_timestamp`` in epoch seconds, ``receipt_status``), ``EthTokenTransferMapper``
and ``enrich_token_transfers`` (``token_address``, ``from_address``, ``to_address``,
``value`` in the token's raw units as a JSON integer, ``transaction_hash``, ``log_index``,
``block_number``, ``block_timestamp``); the streamer adds ``item_id`` (``transaction_<hash>``,
``token_transfer_<hash>_<log_index>``). JSON integers of uint256 size are read exactly.

- A transaction moves the native coin: ``value / 10**18``. A failed one (``receipt_status``
  0) moved nothing: amount 0. One without a receiver (a contract creation) is refused.
- A token transfer's amount is ``value / 10**decimals``, with the decimals of the token
  list (a ``decimals`` attribute). A token not on any list with decimals cannot be read in
  whole units; it carries no value for exposure anyway, so it becomes amount 0, asset
  ``unlisted-token``: still screened, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from streams.core.events import EventError, format_timestamp
from streams.core.transfers import Transfer, transfer_from_dict

ETL_TYPES = frozenset({"transaction", "token_transfer"})
#: The native coin of each chain ethereum-etl (and its forks for EVM chains) can stream.
NATIVE = {"ethereum": ("ETH", 18), "ethereum_classic": ("ETC", 18), "bsc": ("BNB", 18), "polygon": ("MATIC", 18)}
UNLISTED = "unlisted-token"


def is_etl_item(data: Any) -> bool:
    """Whether a decoded value is an ethereum-etl transaction or token transfer item."""
    return isinstance(data, dict) and data.get("type") in ETL_TYPES


def from_etl_item(data: dict[str, Any], chain: str, token_info: Mapping[str, tuple[str, int]]) -> Transfer:
    """One ethereum-etl item as a :class:`Transfer`; raises :class:`EventError` like any bad input."""
    seconds = _integer(data, "block_timestamp")
    try:
        when = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise EventError("invalid_field", "field 'block_timestamp': not a time in epoch seconds") from None
    common: dict[str, Any] = {
        "type": "transfer",
        "chain": chain,
        "from_address": data.get("from_address"),
        "to_address": data.get("to_address"),
        "timestamp": format_timestamp(when),
        "block": data.get("block_number"),
    }
    if data["type"] == "transaction":
        if data.get("to_address") is None:
            raise EventError("invalid_field", "field 'to_address': a contract creation moves no value to an address")
        symbol, decimals = NATIVE.get(chain, ("native", 18))
        value = Decimal(_integer(data, "value")) if data.get("receipt_status", 1) != 0 else Decimal(0)
        tx_hash = data.get("hash")
        fields = {**common, "event_id": data.get("item_id") or f"transaction_{tx_hash}", "tx_hash": tx_hash,
                  "asset": symbol, "amount": _units(value, decimals)}  # fmt: skip
    else:
        contract = str(data.get("token_address") or "")
        known = token_info.get(contract.lower())
        raw = Decimal(_integer(data, "value"))
        tx_hash, log_index = data.get("transaction_hash"), data.get("log_index")
        fields = {
            **common,
            "event_id": data.get("item_id") or f"token_transfer_{tx_hash}_{log_index}",
            "tx_hash": tx_hash,
            "log_index": log_index,
            "token_contract": contract or None,
            "asset": known[0] if known is not None else UNLISTED,
            "amount": _units(raw, known[1]) if known is not None else "0",
        }
    return transfer_from_dict({k: v for k, v in fields.items() if v is not None})


def _integer(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        if value is None:
            raise EventError("missing_field", f"required field {name!r} is missing")
        raise EventError("invalid_field", f"field {name!r}: must be a non-negative integer")
    return value


def _units(raw: Decimal, decimals: int) -> str:
    """``raw`` smallest units as a plain decimal string of whole units (exact)."""
    value = raw.scaleb(-decimals)
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
