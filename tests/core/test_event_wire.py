"""Well-formed events in one pass: the same events as the full contract, or a deferral."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.event_wire import well_formed_event
from streams.core.events import Event, EventError, EventType, decode_checked, validate_event
from streams.core.inputs import parse_input
from streams.core.synthetic import synthetic_events
from tests.core.test_event_contract import FIELDS

EXPECTED: list[EventType | None] = [None, "deposit", "withdrawal"]
TYPES = st.sampled_from(["deposit", "withdrawal", "transfer", None])
ASCII_TEXT = st.from_regex(r"[A-Za-z0-9:_ .-]{1,12}", fullmatch=True)
WELL_FORMED = st.fixed_dictionaries(
    {
        "event_id": ASCII_TEXT,
        "account_id": ASCII_TEXT,
        "chain": st.sampled_from(["ethereum", "bitcoin", "tron"]),
        "asset": st.sampled_from(["ETH", "USDT"]),
        "amount": st.from_regex(r"0{0,2}[0-9]{0,23}[1-9](\.[0-9]{1,18})?", fullmatch=True),
        "timestamp": st.sampled_from(["2022-03-29T12:00:00Z", "2026-11-30T23:59:59.999Z", "2009-01-03T00:00:00Z"]),
        "tx_hash": st.from_regex(r"0x[0-9a-f]{64}", fullmatch=True),
        "from_addresses": st.lists(st.from_regex(r"0x[0-9a-fA-F]{40}", fullmatch=True), min_size=1, max_size=3),
        "to_address": st.from_regex(r"[0-9a-zA-Z:]{1,128}", fullmatch=True),
    },
    optional={"usd_value": st.one_of(st.none(), st.from_regex(r"[0-9]{1,10}\.[0-9]{2}", fullmatch=True))},
)


def full_way(raw: bytes, expected: EventType | None) -> Event | str:
    """What the full contract makes of ``raw``: the event, or "refused"."""
    try:
        return validate_event(decode_checked(raw), expected)
    except EventError:
        return "refused"


def spelled(data: dict[str, Any], style: str) -> bytes:
    """``data`` as JSON: compact and unescaped, as Python's json writes it by default, or with a key written twice."""
    if style == "spaced":
        return json.dumps(data).encode()
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    first = next(iter(data), None)
    if style == "compact" or first is None:
        return text.encode()
    again = json.dumps({first: data[first]}, separators=(",", ":"), ensure_ascii=False)[1:-1]
    return ("{" + again + "," + text[1:]).encode()


def assert_same_or_deferred(raw: bytes, expected: EventType | None) -> Event | None:
    found = well_formed_event(raw, expected)
    verdict = full_way(raw, expected)
    if found is None:
        return None
    event, says_type = found
    assert event == verdict
    assert not isinstance(verdict, str)
    assert event.timestamp.tzinfo == verdict.timestamp.tzinfo and event.epoch_ms == verdict.epoch_ms
    assert says_type == (orjson.loads(raw).get("type") is not None)
    return event


@settings(max_examples=800, deadline=None)
@given(
    st.fixed_dictionaries({}, optional={**FIELDS, "type": TYPES}),
    st.sampled_from(EXPECTED),
    st.sampled_from(["compact", "spaced", "twice"]),
)
def test_it_accepts_only_what_the_contract_accepts_with_the_same_values(
    data: dict[str, Any], expected: EventType | None, style: str
) -> None:
    assert_same_or_deferred(spelled(data, style), expected)


@settings(max_examples=400, deadline=None)
@given(WELL_FORMED, st.sampled_from(["deposit", "withdrawal"]), st.booleans(), st.sampled_from(["compact", "spaced"]))
def test_it_carries_well_formed_events_and_defers_a_key_written_twice(
    data: dict[str, Any], kind: EventType, says_type: bool, style: str
) -> None:
    if kind == "withdrawal":
        data = {k: v for k, v in data.items() if k != "from_addresses"}
    if says_type:
        data = {"type": kind, **data}
    for expected in [None, kind] if says_type else [kind]:
        raw = spelled(data, style)
        assert assert_same_or_deferred(raw, expected) is not None, raw
        assert well_formed_event(spelled(data, "twice"), expected) is None


@settings(max_examples=1500, deadline=None)
@given(
    WELL_FORMED,
    st.sampled_from(["deposit", "withdrawal"]),
    st.sampled_from(sorted(FIELDS)),
    st.data(),
    st.sampled_from(["compact", "spaced"]),
)
def test_a_well_formed_event_with_one_field_changed_is_the_contract_s_or_deferred(
    data: dict[str, Any], kind: EventType, name: str, draw: st.DataObject, style: str
) -> None:
    """Every check of the one pass meets a record complete but for one field of any value.

    Records with fields drawn at random are nearly all incomplete, and deferred before
    any of the checks on values is reached; these are not.
    """
    if kind == "withdrawal":
        data = {k: v for k, v in data.items() if k != "from_addresses"}
    data = {"type": kind, **data, name: draw.draw(FIELDS[name], label=name)}
    for expected in (None, kind):
        assert_same_or_deferred(spelled(data, style), expected)


def test_the_bench_events_take_the_one_pass() -> None:
    """The speed is not lost in silence: every event of the generator's that the contract takes."""
    lines = list(synthetic_events(3000, seed=5, accounts=500, poison_share=0.01))
    carried = deferred = 0
    for raw in lines:
        if isinstance(full_way(raw, None), str):
            continue
        if assert_same_or_deferred(raw, None) is None:
            deferred += 1
        else:
            carried += 1
    assert carried > 2900 and deferred == 0


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"extra": 1}, "an unknown field"),
        ({"asset": "a\\u0041"}, "an escape"),
        ({"asset": "É"}, "not ASCII"),
        ({"timestamp": "2026-02-30T00:00:00Z"}, "no such day"),
        ({"timestamp": "2026-01-01T00:00:00+00:00"}, "another spelling of UTC"),
        ({"amount": "0"}, "a zero amount"),
        ({"amount": "1e5"}, "an exponent"),
        ({"amount": "-1"}, "a sign"),
        ({"amount": "NaN"}, "not a number"),
        ({"amount": "1."}, "a point without fraction digits"),
        ({"amount": ".5"}, "a point without integer digits"),
        ({"amount": "1." + "0" * 18 + "1"}, "19 fraction digits"),
        ({"amount": "00" + "1" * 25}, "25 integer digits"),
        ({"usd_value": "1e5"}, "an exponent in usd_value"),
        ({"timestamp": "2026-01-01T00:00:00.1234567Z"}, "7 fraction digits of a second"),
        ({"timestamp": "2026-01-01T00:00:00z"}, "a lower-case zone"),
        ({"timestamp": "2026-01-01 00:00:00Z"}, "a space for the T"),
        ({"to_address": "0x a"}, "a space in an address"),
        ({"type": None}, "a null type"),
    ],
)
def test_it_defers_what_it_is_not_certain_of(change: dict[str, Any], why: str) -> None:
    data = {
        "type": "deposit", "event_id": "d1", "account_id": "a1", "chain": "ethereum", "asset": "ETH", "amount": "1",
        "timestamp": "2026-01-01T00:00:00Z", "tx_hash": "0x1", "from_addresses": ["0xf"], "to_address": "0xe",
    }  # fmt: skip
    raw = orjson.dumps(data)
    assert well_formed_event(raw, "deposit") is not None
    for key, value in change.items():
        data[key] = value
    raw = orjson.dumps(data).replace(b"\\\\u", b"\\u")
    assert well_formed_event(raw, "deposit") is None, why


def test_the_caller_still_refuses_a_future_event_as_the_contract_words_it() -> None:
    raw = orjson.dumps(
        {
            "type": "withdrawal", "event_id": "w1", "account_id": "a1", "chain": "ethereum", "asset": "ETH",
            "amount": "1", "timestamp": "2026-01-03T00:00:01Z", "to_address": "0xe",
        }
    )  # fmt: skip
    assert well_formed_event(raw, None) is not None
    with pytest.raises(EventError) as refused:
        parse_input(raw, None, datetime(2026, 1, 2, tzinfo=UTC))
    assert refused.value.reason == "invalid_field" and "in the future" in refused.value.detail
    assert parse_input(raw, None, datetime(2026, 1, 3, tzinfo=UTC)).source_json == raw


def test_an_event_over_the_size_limit_is_left_to_the_contract() -> None:
    senders = [f"0x{i:0126x}" for i in range(600)]  # 128 characters each
    raw = orjson.dumps(
        {
            "type": "deposit", "event_id": "d1", "account_id": "a1", "chain": "ethereum", "asset": "ETH",
            "amount": "1", "timestamp": "2026-01-01T00:00:00Z", "tx_hash": "0x1", "from_addresses": senders,
            "to_address": "0xe",
        }
    )  # fmt: skip
    assert len(raw) > 64 * 1024
    assert well_formed_event(raw, None) is None
    with pytest.raises(EventError) as refused:
        parse_input(raw)
    assert refused.value.reason == "too_large"
