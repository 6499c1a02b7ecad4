"""Inputs keep the JSON they came as when it stands alone, and make it once when it does not."""

from __future__ import annotations

import orjson

from streams.core.events import Event, EventType, parse_event, stand_alone_json, to_json_dict
from streams.core.inputs import MAX_SOURCE_JSON, parse_input
from streams.core.transfers import Transfer
from tests.factories import deposit, raw, withdrawal


def ledger(line: bytes, expected: EventType) -> Event:
    event = parse_input(line, expected)
    assert not isinstance(event, Transfer)
    return event


def test_an_input_that_declares_its_type_is_its_own_json() -> None:
    line = raw(deposit())
    event = ledger(line, "deposit")
    assert event.source_json is line
    assert stand_alone_json(event) is line


def test_one_whose_type_the_topic_implies_gets_json_that_reads_back_without_the_topic() -> None:
    data = withdrawal(memo="unknown fields are not kept")
    del data["type"]
    event = ledger(raw(data), "withdrawal")
    assert event.source_json is None
    made = stand_alone_json(event)
    assert parse_event(made) == event and orjson.loads(made) == to_json_dict(event)
    assert stand_alone_json(event) is made  # made once


def test_a_long_input_is_not_held_as_it_came() -> None:
    # Unknown fields are ignored, so a deposit padded with them is held as what was read.
    event = ledger(raw(deposit(memo="x" * MAX_SOURCE_JSON)), "deposit")
    assert event.source_json is None
    assert len(stand_alone_json(event)) < 600
