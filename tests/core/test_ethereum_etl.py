"""ethereum-etl's stream items (shapes of ethereum-etl 2.4.2's mappers and enrich step) as transfers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.core.events import EventError
from streams.core.inputs import parse_input
from streams.core.rules.loader import load_ruleset
from streams.core.transfers import Transfer
from tests.data import REPO

TOKENS = load_ruleset([REPO / "rules"]).token_info
SEED = "0x098b716b8aaf21512996dc57eb0615e2383e2f96"


def transaction(**changes: Any) -> dict[str, Any]:
    """An enriched `transaction` item as `ethereumetl stream -o kafka` writes it."""
    item: dict[str, Any] = {
        "type": "transaction", "hash": "0x" + "ab" * 32, "nonce": 7, "transaction_index": 3,
        "from_address": SEED, "to_address": "0x" + "11" * 20, "value": 500 * 10**18, "gas": 21000,
        "gas_price": 30 * 10**9, "input": "0x", "block_timestamp": 1648482000, "block_number": 14470000,
        "block_hash": "0x" + "cd" * 32, "max_fee_per_gas": None, "max_priority_fee_per_gas": None,
        "transaction_type": 2, "receipt_cumulative_gas_used": 100000, "receipt_gas_used": 21000,
        "receipt_contract_address": None, "receipt_root": None, "receipt_status": 1,
        "receipt_effective_gas_price": 30 * 10**9, "item_id": "transaction_0x" + "ab" * 32,
        "item_timestamp": "2022-03-28T15:40:00Z",
    }  # fmt: skip
    item.update(changes)
    return item


def token_transfer(**changes: Any) -> dict[str, Any]:
    """An enriched `token_transfer` item."""
    item: dict[str, Any] = {
        "type": "token_transfer", "token_address": "0xdac17f958d2ee523a2206206994597c13d831ec7",
        "from_address": SEED, "to_address": "0x" + "22" * 20, "value": 1_234_567_891,
        "transaction_hash": "0x" + "ef" * 32, "log_index": 12, "block_number": 14470001,
        "block_timestamp": 1648482012, "block_hash": "0x" + "01" * 32,
        "item_id": "token_transfer_0x" + "ef" * 32 + "_12", "item_timestamp": "2022-03-28T15:40:12Z",
    }  # fmt: skip
    item.update(changes)
    return item


def parse(item: dict[str, Any]) -> Transfer:
    parsed = parse_input(json.dumps(item).encode(), "transfer", token_info=TOKENS)
    assert isinstance(parsed, Transfer)
    return parsed


def test_a_transaction_moves_ether_in_whole_units() -> None:
    found = parse(transaction())
    assert (found.amount, found.asset, found.token_contract, found.tx_hash) == (500, "ETH", None, "0x" + "ab" * 32)
    assert found.event_id.startswith("transaction_0x") and found.block == 14470000
    assert found.timestamp.isoformat() == "2022-03-28T15:40:00+00:00"
    assert parse(transaction(receipt_status=0)).amount == 0  # a failed transaction moved nothing
    assert str(parse(transaction(value=1)).amount) == "1E-18"


def test_a_token_transfer_uses_the_listed_decimals_and_uint256_values_stay_exact() -> None:
    found = parse(token_transfer())
    assert (str(found.amount), found.asset, found.log_index) == ("1234.567891", "USDT", 12)
    huge = parse(token_transfer(token_address="0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2", value=123456 * 10**18 + 1))
    assert str(huge.amount) == "123456.000000000000000001"  # orjson cannot read this integer; it is exact here
    unlisted = parse(token_transfer(token_address="0x" + "99" * 20, value=2**200))
    assert (unlisted.amount, unlisted.asset) == (0, "unlisted-token")  # carries nothing, still screened


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (transaction(to_address=None), "invalid_field"),
        (transaction(value=-1), "invalid_field"),
        (transaction(value="500"), "invalid_field"),
        (token_transfer(block_timestamp=None), "missing_field"),
        (token_transfer(transaction_hash=None), "missing_field"),
    ],
)
def test_bad_items_are_refused_with_a_reason(item: dict[str, Any], reason: str) -> None:
    with pytest.raises(EventError) as caught:
        parse(item)
    assert caught.value.reason == reason


def test_an_etl_item_on_a_deposits_topic_is_not_a_deposit() -> None:
    with pytest.raises(EventError):
        parse_input(json.dumps(transaction()).encode(), "deposit", token_info=TOKENS)
