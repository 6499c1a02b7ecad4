from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from streams.core.events import (
    Deposit,
    EventError,
    Withdrawal,
    event_from_dict,
    format_timestamp,
    parse_event,
    to_json_dict,
)
from tests.factories import deposit, raw, withdrawal

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def test_deposit_is_parsed_exactly() -> None:
    event = parse_event(raw(deposit(amount="0.000000000000000001", usd_value="123456789012345678.25")))
    assert isinstance(event, Deposit)
    assert event.amount == Decimal("0.000000000000000001")
    assert event.usd_value == Decimal("123456789012345678.25")
    assert event.timestamp == datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def test_topic_implies_the_type() -> None:
    event = parse_event(raw(deposit(type=...)), expected="deposit")
    assert isinstance(event, Deposit)
    event = parse_event(raw(withdrawal(type=...)), expected="withdrawal")
    assert isinstance(event, Withdrawal)


def test_type_must_match_the_topic() -> None:
    with pytest.raises(EventError) as caught:
        parse_event(raw(withdrawal()), expected="deposit")
    assert caught.value.reason == "type_mismatch"


def test_files_need_a_type_on_every_line() -> None:
    with pytest.raises(EventError) as caught:
        parse_event(raw(deposit(type=...)))
    assert caught.value.reason == "missing_field"
    assert "'type'" in caught.value.detail


@pytest.mark.parametrize(
    ("value", "reason", "words"),
    [
        (None, "empty_value", "tombstone"),
        (b"\xff\xfe{}", "invalid_utf8", "not UTF-8"),
        (b"{not json", "invalid_json", "not JSON"),
        (b"[1, 2]", "invalid_json", "JSON list"),
        (b'"a string"', "invalid_json", "JSON str"),
        (raw(deposit(event_id=...)), "missing_field", "'event_id'"),
        (raw(deposit(from_addresses=...)), "missing_field", "'from_addresses'"),
        (raw(deposit(from_addresses=[])), "invalid_field", "from_addresses"),
        (raw(deposit(amount="-1")), "invalid_field", "'amount'"),
        (raw(deposit(amount="0")), "invalid_field", "greater than zero"),
        (raw(deposit(amount="1" * 40)), "invalid_field", "integer digits"),
        (raw(deposit(amount="0." + "1" * 19)), "invalid_field", "fraction digits"),
        (raw(deposit(amount=1.5)), "invalid_field", "decimal string"),
        (raw(deposit(amount="1e5")), "invalid_field", "plain decimal"),
        (raw(deposit(amount="NaN")), "invalid_field", "plain decimal"),
        (raw(deposit(amount="Infinity")), "invalid_field", "plain decimal"),
        (raw(deposit(usd_value="-0.01")), "invalid_field", "'usd_value'"),
        (raw(deposit(chain="dogechain")), "invalid_field", "unknown chain"),
        (raw(deposit(chain="Ethereum")), "invalid_field", "unknown chain"),
        (raw(deposit(timestamp="2026-11-27 06:00")), "invalid_field", "RFC 3339"),
        (raw(deposit(timestamp="2026-11-27T06:00:00+02:00")), "invalid_field", "UTC"),
        (raw(deposit(timestamp="2026-13-45T06:00:00Z")), "invalid_field", "not a valid date"),
        (raw(deposit(timestamp=1795759628)), "invalid_field", "RFC 3339"),
        (raw(deposit(account_id=42)), "invalid_field", "'account_id'"),
        (raw(deposit(account_id="")), "invalid_field", "'account_id'"),
        (raw(deposit(to_address=" 0xabc")), "invalid_field", "without spaces"),
        (raw(deposit(type="transfer")), "invalid_field", "'type'"),
        (raw(deposit(timestamp="2008-12-31T23:59:59Z")), "invalid_field", "before 2009-01-03"),
        (raw(deposit(timestamp="2999-01-01T00:00:00Z")), "invalid_field", "in the future"),
        (raw(deposit(memo="x" * 70_000)), "too_large", "bytes"),
        (b'{"type": "deposit", "amount": "1", "amount": "1000000"}', "invalid_json", "same key twice"),
        (b"[" * 5000 + b"]" * 5000, "invalid_json", "not JSON"),
        (
            raw(deposit(account_id="acct\u0000x")),
            "invalid_field",
            "'account_id': contains the control character U+0000",
        ),
        (raw(deposit(event_id="e\n1")), "invalid_field", "'event_id': contains the control character U+000A"),
        (raw(deposit(asset="ETH\x7f")), "invalid_field", "'asset': contains the control character U+007F"),
        (raw(deposit(to_address="0xab\u0085")), "invalid_field", "'to_address': contains the control character U+0085"),
        (raw(deposit(from_addresses=["0xab", "0x\u001b[31m"])), "invalid_field", "'from_addresses.1'"),
    ],
)
def test_bad_input_has_a_reason_and_says_what_is_wrong(value: bytes | None, reason: str, words: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_event(value, expected=None if value is None or b'"type"' in value else "deposit", now=NOW)
    assert caught.value.reason == reason
    assert words in caught.value.detail


def test_the_future_is_measured_from_the_clock_passed_in() -> None:
    """The core reads no clock: "in the future" means after the moment the caller gives."""
    later = raw(deposit(timestamp="2026-12-01T12:00:00Z"))
    with pytest.raises(EventError):
        parse_event(later, now=NOW)
    assert parse_event(later, now=NOW + timedelta(days=1)).event_id == "dep-1"
    assert parse_event(later).event_id == "dep-1"  # no clock, no bound (rule test cases, files)


def test_text_with_other_escapes_or_non_ascii_is_accepted() -> None:
    event = parse_event(raw(deposit(asset='£\u00e9"x', event_id="d\\1")), now=NOW)
    assert (event.asset, event.event_id) == ('£é"x', "d\\1")


def test_control_characters_are_refused_in_events_built_from_dicts_too() -> None:
    with pytest.raises(EventError, match="U\\+0000"):
        event_from_dict(deposit(account_id="a\x00"))


def test_unknown_fields_are_ignored() -> None:
    event = parse_event(raw(deposit(memo="hello", risk={"x": 1})))
    assert event.event_id == "dep-1"


def test_usd_value_is_optional_and_may_be_zero() -> None:
    assert parse_event(raw(deposit(usd_value=...))).usd_value is None
    assert parse_event(raw(deposit(usd_value="0"))).usd_value == Decimal(0)


def test_nanosecond_timestamps_are_accepted() -> None:
    event = parse_event(raw(deposit(timestamp="2026-11-27T06:00:00.123456789Z")))
    assert event.timestamp.microsecond == 123456


def test_round_trip_to_json() -> None:
    event = parse_event(raw(deposit(timestamp="2026-11-27T06:00:00.250Z")))
    data = to_json_dict(event)
    assert data["amount"] == "1.5"
    assert data["timestamp"] == "2026-11-27T06:00:00.250Z"
    assert parse_event(raw(data)) == event


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), "2026-01-02T03:04:05.120Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), "2026-01-02T03:04:05.123456Z"),
    ],
)
def test_format_timestamp(moment: datetime, text: str) -> None:
    assert format_timestamp(moment) == text


@pytest.mark.parametrize(
    ("text", "duplicated"),
    [
        ('{"a": "x:y", "b": {"c": "1:2:3", "d": ["e:f"]}}', False),
        ('{"a": "x:y", "a": "z"}', True),
        ('{"a": "z", "a": "x:y"}', True),
        ('{"a": {"b": 1, "b": 2}}', True),
        ('{"a" : 1, "b"\t:\n2}', False),
        ('{"k\\u003a": "v", "k:": "w"}', True),
        ('{"k\\u003a": "v\\u003a", "j": ":"}', False),
        ('{"\\"a:": "\\\\:", "b": "\\"c\\":"}', False),
    ],
)
def test_duplicate_keys_are_found_however_colons_are_spelled(text: str, duplicated: bool) -> None:
    from streams.core.events import _has_duplicate_keys

    raw = text.encode()
    assert _has_duplicate_keys(raw, orjson.loads(raw)) is duplicated
