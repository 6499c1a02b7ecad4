"""Screening of records: one outcome each, duplicates dropped, state durable only once persisted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from streams.core.events import EventError, format_timestamp, parse_event, wall_clock
from streams.core.rules.loader import load_ruleset
from streams.core.rules.observer import CountingObserver
from streams.core.rules.state import AccountState, DictStore, Journal, Window
from streams.core.rules.state_format import to_json
from streams.core.screening import Record, Screening
from streams.core.synthetic import synthetic_events
from streams.shell.state_table import TableStore
from tests.data import REPO
from tests.factories import RONIN_EXPLOITER, deposit, raw, withdrawal
from tests.poison import Poison, poison_records

RULES = load_ruleset([REPO / "rules"])
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(
    value: bytes | None, offset: int = 0, topic: str = "deposits", key: bytes | None = b"", partition: int = 1
) -> Record:
    if key == b"":  # keyed by account, as producers must
        key = orjson.loads(value)["account_id"].encode() if value and value.startswith(b'{"') else b"acct-1"
    return Record(topic, partition, offset, key, value, [("trace", b"abc")], 1.0)


def fan_in(n: int) -> list[Record]:
    return [
        record(
            raw(
                deposit(
                    event_id=f"d{i}",
                    from_addresses=[f"s{i}"],
                    timestamp=format_timestamp(T0 + timedelta(minutes=i)),
                )
            ),
            offset=i,
        )
        for i in range(n)
    ]


def test_dead_letter_headers_say_where_and_why() -> None:
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock)
    outcome = screening.screen_one(record(b"{broken"))
    assert outcome.result == "dead_lettered" and outcome.dead_letter is not None
    headers = dict(outcome.dead_letter.headers())
    assert headers["trace"] == b"abc"
    assert headers["sentinel.source.topic"] == b"deposits"
    assert headers["sentinel.source.partition"] == b"1"
    assert headers["sentinel.error.reason"] == b"invalid_json"
    assert headers["sentinel.error.class"] == b"EventError"


def test_the_same_event_id_twice_is_screened_once() -> None:
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock)
    value = raw(deposit(from_addresses=[RONIN_EXPLOITER]))
    first, second = screening.screen_one(record(value)), screening.screen_one(record(value, offset=1))
    assert first.result == "alerted" and second.result == "duplicate" and second.alerts == []
    # the same id in another account is another event
    other = screening.screen_one(record(raw(deposit(account_id="acct-2", from_addresses=[RONIN_EXPLOITER]))))
    assert other.result == "alerted"


def test_event_ids_are_remembered_for_a_day_of_event_time_and_ten_thousand_at_most() -> None:
    store = DictStore()
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock, state=store)
    early = raw(deposit(event_id="e1", timestamp=format_timestamp(T0)))
    screening.screen_one(record(early))
    later = deposit(event_id="e2", timestamp=format_timestamp(T0 + timedelta(hours=24, minutes=1)))
    screening.screen_one(record(raw(later), offset=1))
    assert list(store.account("acct-1").seen) == ["e2"]
    assert screening.screen_one(record(early, offset=2)).result != "duplicate"  # a day on, a resend is screened
    for i in range(10_001):
        stamp = format_timestamp(T0 + timedelta(hours=25, milliseconds=i))
        screening.screen_one(record(raw(deposit(event_id=f"n{i}", timestamp=stamp)), offset=3 + i))
    seen = store.account("acct-1").seen
    assert len(seen) == 10_000 and "n0" not in seen and "n10000" in seen


def test_state_is_durable_only_once_persisted() -> None:
    table: dict[bytes, bytes] = {}
    store = TableStore(table)
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock, state=store)
    screening.screen_one(record(raw(deposit())))
    changes = store.encode()
    assert table == {}
    assert [key for _, key, _ in changes] == [b"acct-1"]
    store.apply(changes)
    assert list(table) == [b"acct-1"]


@pytest.mark.parametrize("crash_after", range(8, 13))
def test_a_crash_before_persist_replays_to_the_same_alerts(crash_after: int) -> None:
    """Records whose state was not made durable are replayed: no alert lost, none new."""
    records = fan_in(14)
    clean = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock)
    expected = [a.alert_id for r in records for a in clean.screen_one(r).alerts]
    assert expected

    table: dict[bytes, bytes] = {}
    first = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock, state=TableStore(table))
    emitted = []
    for r in records[:crash_after]:
        emitted += [a.alert_id for a in first.screen_one(r).alerts]
        first.state.apply(first.state.encode())  # type: ignore[attr-defined]
    # the next record is screened and its alert produced, but the worker dies before persisting
    emitted += [a.alert_id for a in first.screen_one(records[crash_after]).alerts]

    restarted = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock, state=TableStore(table))
    for r in records[crash_after:]:  # replay from the last committed record
        emitted += [a.alert_id for a in restarted.screen_one(r).alerts]
        restarted.state.apply(restarted.state.encode())  # type: ignore[attr-defined]
    assert set(emitted) == set(expected)


def test_a_forgotten_batch_reads_the_durable_state_again() -> None:
    """A batch abandoned at a rebalance leaves the durable state as the batch first met it."""
    table: dict[bytes, bytes] = {}
    store = TableStore(table)
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock, state=store)
    records = fan_in(12)
    for r in records[:6]:
        screening.screen_one(r)
    store.apply(store.encode())
    durable = dict(table)
    assert durable
    for r in records[6:]:
        screening.screen_one(r)
    store.forget()
    assert table == durable
    again = [screening.screen_one(r).result for r in records[6:]]
    assert "duplicate" not in again


def test_a_crash_after_persist_but_before_the_offset_commit_adds_nothing() -> None:
    records = fan_in(12)
    state = DictStore()
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock, state=state)
    expected = {a.alert_id for r in records for a in screening.screen_one(r).alerts}
    # the offsets of the last five were never committed: they come again
    again = [screening.screen_one(r) for r in records[-5:]]
    assert {o.result for o in again} == {"duplicate"}
    assert expected


def test_a_failed_evaluation_leaves_no_partial_state() -> None:
    """Every rule changes its state, then evaluation fails: the journal undoes all of it."""
    store = DictStore()
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock, state=store)
    screening.screen_one(record(raw(deposit(event_id="e0"))))
    before = to_json(store.account("acct-1"))

    class BrokenRuleError(Exception):
        pass

    real = RULES.evaluate_event

    def explode(*args: Any, **kwargs: Any) -> list[object]:
        assert real(*args, **kwargs) is not None
        raise BrokenRuleError("boom")

    screening.ruleset = RULES.__class__(RULES.version, RULES.rules, RULES.lists, RULES.files)
    screening.ruleset.evaluate_event = explode  # type: ignore[method-assign]
    outcome = screening.screen_one(record(raw(deposit(event_id="e1", usd_value="9000")), offset=1))
    assert outcome.dead_letter is not None and outcome.dead_letter.reason == "evaluation_error"
    assert to_json(store.account("acct-1")) == before
    assert screening.screen_one(record(raw(deposit(event_id="e1")), offset=1)).result != "duplicate"


def test_rolling_back_any_event_restores_the_state_exactly() -> None:
    """Over a stream that fills windows, completes sequences and prunes, undo is exact.

    Every event is first evaluated and rolled back (its state must come back byte for
    byte, aggregates included), then evaluated for real.
    """
    lines = list(synthetic_events(3_000, seed=5, accounts=20, events_per_second=0.2, sanctioned_share=0.03))
    store = DictStore()
    journal = Journal()
    alerts = 0
    for line in lines:
        try:
            event = parse_event(line)
        except EventError:
            continue
        state = store.account(event.account_id)
        before = (to_json(state), _aggregates(state))
        RULES.evaluate_event(event, state, wall_clock, CountingObserver(), journal)
        journal.rollback()
        assert (to_json(state), _aggregates(state)) == before
        alerts += len(RULES.evaluate_event(event, state, wall_clock, CountingObserver(), journal))
        journal.clear()
    assert alerts > 100


def _aggregates(state: AccountState) -> list[object]:
    windows = [part for part in state.parts.values() if isinstance(part, Window)]
    return [(window.units, dict(window.counts or {})) for window in windows]


def test_a_withdrawal_on_the_withdrawals_topic() -> None:
    screening = Screening(RULES, {"withdrawals": "withdrawal"}, clock=wall_clock)
    outcome = screening.screen_one(record(raw(withdrawal(type=...)), topic="withdrawals"))
    assert outcome.result == "clean"


@pytest.mark.parametrize(("key", "reason"), [(None, "missing_key"), (b"acct-2", "key_mismatch")])
def test_input_records_must_be_keyed_by_account(key: bytes | None, reason: str) -> None:
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock)
    outcome = screening.screen_one(record(raw(deposit()), key=key))
    assert outcome.dead_letter is not None and outcome.dead_letter.reason == reason


def test_files_have_no_keys_to_check() -> None:
    assert Screening(RULES, clock=wall_clock).screen_one(Record("file", 0, 1, None, raw(deposit()))).result == "clean"


@pytest.mark.parametrize("bad", poison_records(deposit()), ids=lambda p: p.name)
def test_every_class_of_poison_becomes_a_dead_letter_with_its_reason(bad: Poison) -> None:
    """The catalogue the chaos suite feeds the real worker, here through the screening path alone."""
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock)
    outcome = screening.screen_one(Record("deposits", 0, 7, bad.key, bad.value))
    assert outcome.dead_letter is not None and outcome.alerts == []
    assert outcome.dead_letter.reason == bad.reason
    assert dict(outcome.dead_letter.headers())["sentinel.source.offset"] == b"7"
