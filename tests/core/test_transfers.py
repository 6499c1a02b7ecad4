"""The transfer contract: the fast check agrees with the pydantic contract of record."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.core.events import EventError
from streams.core.transfers import Transfer, TransferContract, _checked, transfer_from_dict

TEXT = st.one_of(st.text(max_size=260), st.just(""), st.text(min_size=250, max_size=270), st.integers(), st.none())
ADDRESS = st.one_of(
    st.from_regex(r"0x[0-9a-fA-F]{40}", fullmatch=True),
    st.sampled_from(["bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh", "has space", "", " 0xab", "a" * 128, "a" * 129]),
    st.text(max_size=140),
    st.integers(),
    st.none(),
)
AMOUNT = st.one_of(
    st.sampled_from(["0", "12.5", "0.000000000000000001", "-1", "1e5", "01.50", " 1", "1.", ".5", "9" * 25]),
    st.from_regex(r"[0-9]{1,26}(\.[0-9]{1,20})?", fullmatch=True),
    st.integers(),
    st.floats(allow_nan=False),
    st.none(),
)
STAMP = st.one_of(
    st.sampled_from(
        [
            "2022-03-29T12:00:00Z",
            "2022-03-29 12:00:00.123z",
            "2022-03-29T12:00:00.123456789Z",
            "2022-03-29T12:00:00+00:00",
            "2022-03-29T12:00:00-00:00",
            "2022-03-29T12:00:00+01:00",
            "2008-12-31T00:00:00Z",
            "2022-02-30T12:00:00Z",
            "2022-03-29T12:00:00",
            "yesterday",
        ]
    ),
    st.integers(),
    st.none(),
)
COUNT = st.one_of(
    st.integers(min_value=-3, max_value=3),  # near the bound: over the whole range a negative is rarely drawn
    st.integers(min_value=-3, max_value=2**70),
    st.booleans(),
    st.floats(allow_nan=False),
    st.text(max_size=3),
)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["transfer"]),
    "event_id": TEXT,
    "chain": st.one_of(st.sampled_from(["ethereum", "bitcoin", "tron", "dogechain", "Ethereum"]), st.integers()),
    "tx_hash": TEXT,
    "log_index": st.one_of(COUNT, st.none()),
    "from_address": ADDRESS,
    "to_address": ADDRESS,
    "asset": TEXT,
    "token_contract": ADDRESS,
    "amount": AMOUNT,
    "usd_value": AMOUNT,
    "timestamp": STAMP,
    "block": st.one_of(COUNT, st.none()),
    "extra": st.integers(),
}
#: Inputs that look like real transfers: every field of its type and in range.
WELL_FORMED = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=256),
        "chain": st.sampled_from(["ethereum", "bitcoin", "tron"]),
        "tx_hash": st.from_regex(r"0x[0-9a-f]{64}", fullmatch=True),
        "from_address": st.from_regex(r"0x[0-9a-fA-F]{40}", fullmatch=True),
        "to_address": st.from_regex(r"0x[0-9a-fA-F]{40}", fullmatch=True),
        "asset": st.sampled_from(["ETH", "USDT"]),
        "amount": st.from_regex(r"[0-9]{1,24}(\.[0-9]{1,18})?", fullmatch=True),
        "timestamp": st.sampled_from(["2022-03-29T12:00:00Z", "2026-11-30T23:59:59.999Z"]),
    },
    optional={
        "type": st.just("transfer"),
        "log_index": st.integers(min_value=0, max_value=10**6),
        "token_contract": st.from_regex(r"0x[0-9a-fA-F]{40}", fullmatch=True),
        "usd_value": st.from_regex(r"[0-9]{1,10}\.[0-9]{2}", fullmatch=True),
        "block": st.integers(min_value=0, max_value=10**9),
    },
)


def contract_verdict(data: dict[str, Any]) -> Transfer | str:
    """What the pydantic contract makes of ``data``: the transfer, or its error reason."""
    try:
        model = TransferContract.model_validate(data)
    except ValidationError:
        return "refused"
    return Transfer(**{name: getattr(model, name) for name in TransferContract.model_fields if name != "type"})


@settings(max_examples=600, deadline=None)
@given(st.fixed_dictionaries({}, optional=FIELDS))
def test_the_fast_check_accepts_only_what_the_contract_accepts_with_the_same_values(data: dict[str, Any]) -> None:
    fast = _checked(data)
    verdict = contract_verdict(data)
    if fast is not None:
        assert verdict == fast
        assert fast.timestamp == verdict.timestamp and fast.timestamp.tzinfo == verdict.timestamp.tzinfo  # type: ignore[union-attr]
    try:
        parsed: Transfer | str = transfer_from_dict(data)
    except EventError:
        parsed = "refused"
    assert parsed == verdict


@settings(max_examples=1000, deadline=None)
@given(WELL_FORMED, st.sampled_from(sorted(FIELDS)), st.data())
def test_a_well_formed_transfer_with_one_field_changed_gets_the_contract_s_verdict(
    data: dict[str, Any], name: str, draw: st.DataObject
) -> None:
    """Each field's check meets a record complete but for that field (drawn at random, nearly
    every record lacks a field, and is refused before most values are looked at)."""
    data = {**data, name: draw.draw(FIELDS[name], label=name)}
    verdict = contract_verdict(data)
    fast = _checked(data)
    if fast is not None:
        assert fast == verdict
    try:
        parsed: Transfer | str = transfer_from_dict(data)
    except EventError:
        parsed = "refused"
    assert parsed == verdict


@settings(max_examples=300, deadline=None)
@given(WELL_FORMED)
def test_the_fast_check_carries_every_well_formed_transfer(data: dict[str, Any]) -> None:
    fast = _checked(data)
    assert fast is not None
    assert fast == contract_verdict(data)
    assert transfer_from_dict(fast.as_json_dict()) == fast  # what rule tests write is read back the same


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": "-1"}, "field 'amount': '-1' is not a plain decimal string"),
        ({"log_index": -1}, "field 'log_index'"),
        ({"block": True}, "field 'block'"),
        ({"block": -1}, "field 'block'"),
        ({"event_id": ""}, "field 'event_id'"),
        ({"chain": "dogechain"}, "unknown chain 'dogechain'"),
    ],
)
def test_a_refused_transfer_reads_as_the_contract_words_it(changes: dict[str, Any], message: str) -> None:
    data = {
        "event_id": "t1", "chain": "ethereum", "tx_hash": "0xab", "from_address": "0xa", "to_address": "0xb",
        "asset": "ETH", "amount": "1", "timestamp": "2022-03-29T12:00:00Z",
    } | changes  # fmt: skip
    with pytest.raises(EventError) as refused:
        transfer_from_dict(data)
    assert refused.value.reason == "invalid_field"
    assert message in refused.value.detail


def test_derived_fields_are_the_matching_forms() -> None:
    data = {
        "event_id": "t1", "chain": "ethereum", "tx_hash": "0xab", "asset": "USDT", "amount": "1.50",
        "from_address": "0x098B716B8Aaf21512996dC57EB0615e2383E2f96", "to_address": "Base58Keeps",
        "token_contract": "0xDAC17F958D2EE523A2206206994597C13D831EC7", "timestamp": "1970-01-01T00:00:01.5Z",
    }  # fmt: skip
    data["timestamp"] = "2022-03-29T12:00:00.5Z"
    transfer = transfer_from_dict(data)
    assert transfer.sender == "0x098b716b8aaf21512996dc57eb0615e2383e2f96"
    assert transfer.receiver == "Base58Keeps"
    assert transfer.token == "0xdac17f958d2ee523a2206206994597c13d831ec7"
    assert transfer.epoch_ms == 1_648_555_200_500
    assert transfer.amount == Decimal("1.50")
