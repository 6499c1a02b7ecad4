"""Raw input records to parsed inputs: ledger events, chain transfers, and ethereum-etl items.

The one decoder every input goes through (:class:`streams.core.screening.Screening` calls
it): a well-formed deposit or withdrawal in one pass (:mod:`streams.core.event_wire`), else
the shared checks of :func:`streams.core.events.decode_checked`, then the contract of the
record's type. Items written by ``ethereumetl stream`` (``transaction``,
``token_transfer``) are accepted where transfers are, converted by
:mod:`streams.core.ethereum_etl`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from streams.core.ethereum_etl import from_etl_item, is_etl_item
from streams.core.event_wire import well_formed_event
from streams.core.events import Event, check_not_future, decode_checked, too_far_ahead, validate_event
from streams.core.transfers import InputType, Transfer, transfer_from_dict

#: The longest input kept as an event's own JSON (:attr:`~streams.core.events.LedgerEvent.source_json`):
#: unknown fields are ignored, and a waiting deposit is held in that form, so a longer one
#: is held as the fields it was read as instead.
MAX_SOURCE_JSON = 2048
#: ethereum-etl writes uint256 values as JSON integers, too large for orjson to keep exact.
_ETL_TRANSFER, _ETL_TRANSACTION = b'"token_transfer"', b'"transaction"'


def parse_input(
    raw: bytes | None,
    expected: InputType | None = None,
    now: datetime | None = None,
    *,
    token_info: Mapping[str, tuple[str, int]] | None = None,
    chain: str = "ethereum",
) -> Event | Transfer:
    """Decode and validate one input record: a deposit, a withdrawal or a chain transfer.

    As :func:`streams.core.events.parse_event`, with ``"transfer"`` as one more type (the
    ``chain-transfers`` topic implies it), and ethereum-etl items read as transfers on
    ``chain`` with the token symbols and decimals of ``token_info`` (contract -> (symbol,
    decimals)).
    """
    if expected in (None, "transfer") and raw is not None and (_ETL_TRANSFER in raw or _ETL_TRANSACTION in raw):
        # Read exactly: orjson would turn a uint256 value into a float and lose digits.
        etl = decode_checked(raw, exact_integers=True)
        if is_etl_item(etl):
            transfer = from_etl_item(etl, chain, token_info or {})
            check_not_future(transfer.epoch_ms, etl, now)
            return transfer
    if expected != "transfer" and raw is not None:
        fast = well_formed_event(raw, expected)
        if fast is not None and not too_far_ahead(fast[0].epoch_ms, now):  # else the full way words the refusal
            event, says_type = fast
            if says_type and len(raw) <= MAX_SOURCE_JSON:
                event.source_json = raw  # as below
            return event
    data = decode_checked(raw)
    if expected in (None, "transfer") and is_etl_item(data):
        transfer = from_etl_item(data, chain, token_info or {})
        check_not_future(transfer.epoch_ms, data, now)
        return transfer
    declared = data.get("type") if isinstance(data, dict) else None
    if expected == "transfer" or (expected is None and declared == "transfer"):
        transfer = transfer_from_dict(data)
        check_not_future(transfer.epoch_ms, data, now)
        return transfer
    event = validate_event(data, expected)
    check_not_future(event.epoch_ms, data, now)
    if declared is not None and raw is not None and len(raw) <= MAX_SOURCE_JSON:
        event.source_json = raw  # it stands alone: its type is in it, and it was read as this event
    return event
