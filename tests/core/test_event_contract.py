"""The event contract: the fast check of deposits and withdrawals agrees with the pydantic contract of record."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.core.event_contract import DepositContract, WithdrawalContract
from streams.core.event_values import decimal_string
from streams.core.event_wire import well_formed_event
from streams.core.events import Deposit, Event, EventError, Withdrawal, _checked, to_json_dict, validate_event
from tests.core.test_transfers import ADDRESS, AMOUNT, STAMP, TEXT

KINDS = {"deposit": (Deposit, DepositContract), "withdrawal": (Withdrawal, WithdrawalContract)}
SENDERS = st.one_of(
    st.lists(ADDRESS, max_size=3),
    # Made, not drawn address by address: a thousand drawn strings overrun Hypothesis's
    # buffer and the example is dropped. Drawn this way it is rare still: the limit has a test.
    st.integers(999, 1001).map(lambda n: [f"0x{i:040x}" for i in range(n)]),
    ADDRESS,
    st.none(),
)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "event_id": TEXT,
    "account_id": TEXT,
    "chain": st.one_of(st.sampled_from(["ethereum", "bitcoin", "tron", "dogechain", "Ethereum"]), st.integers()),
    "asset": TEXT,
    "amount": AMOUNT,
    "usd_value": AMOUNT,
    "timestamp": STAMP,
    "tx_hash": TEXT,
    "from_addresses": SENDERS,
    "to_address": ADDRESS,
    "extra": st.integers(),
}
WELL_FORMED = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=256),
        "account_id": st.text(min_size=1, max_size=256),
        "chain": st.sampled_from(["ethereum", "bitcoin", "tron"]),
        "asset": st.sampled_from(["ETH", "USDT"]),
        "amount": st.from_regex(r"[0-9]{0,23}[1-9](\.[0-9]{1,18})?", fullmatch=True),
        "timestamp": st.sampled_from(["2022-03-29T12:00:00Z", "2026-11-30T23:59:59.999Z"]),
        "tx_hash": st.from_regex(r"0x[0-9a-f]{64}", fullmatch=True),
        "from_addresses": st.lists(st.from_regex(r"0x[0-9a-fA-F]{40}", fullmatch=True), min_size=1, max_size=3),
        "to_address": st.from_regex(r"0x[0-9a-fA-F]{40}", fullmatch=True),
    },
    optional={"usd_value": st.from_regex(r"[0-9]{1,10}\.[0-9]{2}", fullmatch=True), "extra": st.integers()},
)


def contract_verdict(data: dict[str, Any], kind: str) -> Event | str:
    """What the pydantic contract makes of ``data``: the event, or "refused"."""
    event_class, contract = KINDS[kind]
    try:
        model = contract.model_validate(data)
    except ValidationError:
        return "refused"
    return event_class(**{name: getattr(model, name) for name in event_class.FIELDS})


@settings(max_examples=600, deadline=None)
@given(st.fixed_dictionaries({}, optional=FIELDS), st.sampled_from(["deposit", "withdrawal"]))
def test_the_fast_check_accepts_only_what_the_contract_accepts_with_the_same_values(
    data: dict[str, Any], kind: str
) -> None:
    fast = _checked(data, kind)
    verdict = contract_verdict(data, kind)
    if fast is not None:
        assert verdict == fast
        assert fast.timestamp.tzinfo == verdict.timestamp.tzinfo  # type: ignore[union-attr]
        assert fast.epoch_ms == verdict.epoch_ms  # type: ignore[union-attr]
    try:
        parsed: Event | str = validate_event(data, kind)  # type: ignore[arg-type]
    except EventError:
        parsed = "refused"
    assert parsed == verdict


@settings(max_examples=300, deadline=None)
@given(WELL_FORMED, st.sampled_from(["deposit", "withdrawal"]))
def test_the_fast_check_carries_every_well_formed_event(data: dict[str, Any], kind: str) -> None:
    fast = _checked(data, kind)
    assert fast is not None and type(fast) is KINDS[kind][0]
    assert fast == contract_verdict(data, kind)
    assert validate_event(to_json_dict(fast), kind) == fast  # what rule tests and state write is read back the same  # type: ignore[arg-type]


@settings(max_examples=1000, deadline=None)
@given(WELL_FORMED, st.sampled_from(["deposit", "withdrawal"]), st.sampled_from(sorted(FIELDS)), st.data())
def test_a_well_formed_event_with_one_field_changed_gets_the_contract_s_verdict(
    data: dict[str, Any], kind: str, name: str, draw: st.DataObject
) -> None:
    """Each field's check meets a record complete but for that field (drawn at random, nearly
    every record lacks a field, and is refused before most values are looked at)."""
    data = {**data, name: draw.draw(FIELDS[name], label=name)}
    verdict = contract_verdict(data, kind)
    fast = _checked(data, kind)
    if fast is not None:
        assert fast == verdict
    try:
        parsed: Event | str = validate_event(data, kind)  # type: ignore[arg-type]
    except EventError:
        parsed = "refused"
    assert parsed == verdict


@pytest.mark.parametrize(("senders", "taken"), [(1000, True), (1001, False)])
def test_a_deposit_names_at_most_a_thousand_senders_on_every_path(senders: int, taken: bool) -> None:
    data = {
        "type": "deposit", "event_id": "d1", "account_id": "a1", "chain": "ethereum", "asset": "ETH",
        "amount": "1", "timestamp": "2026-01-01T00:00:00Z", "tx_hash": "0x1", "to_address": "0xe",
        "from_addresses": [f"0x{i:040x}" for i in range(senders)],
    }  # fmt: skip
    assert (contract_verdict(data, "deposit") != "refused") is taken
    assert (_checked(data, "deposit") is not None) is taken
    assert (well_formed_event(orjson.dumps(data), None) is not None) is taken


def regex_decimal(value: Any, allow_zero: bool) -> Decimal | str:
    """The amount check as a regex alone (its form before the fast path): the reference."""
    import re

    match = re.match(r"(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?\Z", value) if isinstance(value, str) else None
    if match is None or len(match["int"].lstrip("0")) > 24 or len(match["frac"] or "") > 18:
        return "refused"
    amount = Decimal(value)
    return "refused" if amount < 0 or (amount == 0 and not allow_zero) else amount


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        AMOUNT, st.text(alphabet="0123456789.-+e ²٣", max_size=30), st.from_regex(r"[0-9]{20,30}(\.[0-9]{15,20})?")
    ),
    st.booleans(),
)
def test_amounts_are_read_as_the_plain_decimal_pattern_reads_them(value: Any, allow_zero: bool) -> None:
    try:
        found: Decimal | str = decimal_string(value, allow_zero=allow_zero)
    except ValueError:
        found = "refused"
    assert found == regex_decimal(value, allow_zero)
