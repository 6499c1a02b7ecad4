"""The worker's state store: one versioned table entry per account, and expiry of idle accounts."""

from __future__ import annotations

import base64
import zlib
from datetime import timedelta

import orjson
import pytest

from streams.core.events import format_timestamp, parse_moment, wall_clock
from streams.core.rules.loader import load_ruleset
from streams.core.rules.state import AccountState, DictStore
from streams.core.rules.state_format import to_json
from streams.core.screening import Record, Screening
from streams.core.synthetic import synthetic_events
from streams.shell import state_table
from streams.shell.state_table import HEADER, TableStore, decode_value, encode_value
from tests.data import REPO
from tests.factories import deposit, raw

RULES = load_ruleset([REPO / "rules"])
DAY_MS = 24 * 3_600_000


def record(value: bytes, account: str = "acct-1", partition: int = 3, offset: int = 0) -> Record:
    return Record("deposits", partition, offset, account.encode(), value, [], 1.0)


def test_worker_state_of_an_account_is_one_table_entry() -> None:
    """One record's state changes reach the changelog as one record: all or nothing."""
    table: dict[bytes, bytes] = {}
    store = TableStore(table)
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock, state=store)
    screening.screen_one(record(raw(deposit(usd_value="5000", timestamp="2026-11-01T10:00:00Z"))))
    assert table == {}
    [(partition, key, value)] = store.encode()
    assert (partition, key) == (3, b"acct-1") and table == {}
    assert value is not None
    version, header_partition, latest = HEADER.unpack_from(value)
    assert (version, header_partition, latest) == (2, 3, 1_793_527_200_000)
    state = decode_value(value)
    assert state.latest == latest and len(state.seen) == 1
    assert {"pass-through", "fan-in", "velocity"} <= set(state.parts)
    body = orjson.loads(value[HEADER.size :])
    assert set(body) == {"latest", "seen", "rules"}  # named fields (docs/rules.md, "State format")


def test_a_value_written_before_the_header_existed_is_read() -> None:
    """Version 0 (the bare JSON document) is what the previous release wrote."""
    table = {b"acct-1": orjson.dumps({"#seen": {"d-1": 1_793_527_200_000}})}
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock, state=TableStore(table))
    again = screening.screen_one(record(raw(deposit(event_id="d-1"))))
    assert again.result == "duplicate"
    # It had no latest time of its own: its latest screened id's time stands for it (expiry reads it).
    older = decode_value(orjson.dumps({"#seen": {"d-1": 1_793_527_200_000, "d-2": 1_793_527_300_000}}))
    assert older.latest == 1_793_527_300_000


def test_a_value_of_an_unknown_version_is_refused_and_its_events_dead_lettered() -> None:
    newer = bytes([7]) + b"\0" * 10 + b"{}"
    with pytest.raises(ValueError, match="unknown version 7"):
        decode_value(newer)
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock, state=TableStore({b"acct-1": newer}))
    outcome = screening.screen_one(record(raw(deposit())))
    assert outcome.dead_letter is not None and outcome.dead_letter.reason == "state_unreadable"
    assert "unknown version 7" in outcome.dead_letter.detail


def test_a_changelog_written_by_the_previous_release_is_taken_over() -> None:
    """Version-1 values (the release before typed state) carry on as if nothing changed.

    The fixture was written by that release (tests/data/state/README.md): its table after
    1,000 records, and the alert ids it raised before and after. A worker of this version
    that takes over the table raises exactly the alerts the old one did on the rest.
    """
    folder = REPO / "tests" / "data" / "state"
    expected = orjson.loads((folder / "alerts-v1.json").read_bytes())
    table = {}
    for line in (folder / "changelog-v1.jsonl").read_bytes().splitlines():
        entry = orjson.loads(line)
        table[entry["key"].encode()] = base64.b64decode(entry["value"])
    assert {value[0] for value in table.values()} == {1}
    records = []
    for offset, line in enumerate((folder / "events.jsonl").read_bytes().splitlines()):
        try:
            account = orjson.loads(line)["account_id"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            continue
        records.append(Record("events", zlib.crc32(account.encode()) % 4, offset, account.encode(), line, [], None))
    first, rest = records[: expected["after_event"]], records[expected["after_event"] :]
    fresh = Screening(RULES, clock=wall_clock, state=DictStore())
    assert [a.alert_id for r in first for a in fresh.screen_one(r).alerts] == expected["first"]
    store = TableStore(table)
    taken_over = Screening(RULES, clock=wall_clock, state=store)
    found = [a for r in rest for a in taken_over.screen_one(r).alerts]
    assert [a.alert_id for a in found] == expected["rest"]
    # The old state mattered: without it the same records raise other alerts.
    without = Screening(RULES, clock=wall_clock, state=DictStore())
    assert [a.alert_id for r in rest for a in without.screen_one(r).alerts] != expected["rest"]
    assert {"fan-in", "fan-out", "pass-through"} <= {a.rule_id for a in found}  # windows and sequences
    # What this version writes back is version 2, and reads back to the same state.
    changes = store.encode()
    assert changes and all(value is not None and value[0] == 2 for _, _, value in changes)
    for _, key, value in changes:
        assert value is not None
        assert to_json(decode_value(value)) == to_json(store.account(key.decode(), 0))


def test_the_cache_keeps_documents_newer_than_the_table() -> None:
    """A bounded cache never drops a document whose changes are not in the table yet."""
    table: dict[bytes, bytes] = {}
    store = TableStore(table, max_cached=1)
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock, state=store)
    screening.screen_one(record(raw(deposit(event_id="a1", account_id="acct-a")), "acct-a"))
    first = store.encode()
    screening.screen_one(record(raw(deposit(event_id="b1", account_id="acct-b")), "acct-b"))
    second = store.encode()  # still in flight when the first batch is applied
    store.apply(first, second)
    again = screening.screen_one(record(raw(deposit(event_id="b1", account_id="acct-b")), "acct-b"))
    assert again.result == "duplicate"  # acct-b's document survived the trim


def test_only_idle_accounts_of_owned_partitions_expire_and_never_a_busy_one() -> None:
    table: dict[bytes, bytes] = {}
    store = TableStore(table)
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock, state=store)
    horizon = screening.state_horizon_ms
    assert horizon >= DAY_MS  # resends are recognised for a day
    old = "2026-11-01T10:00:00Z"
    accounts = [("idle", 0), ("other-worker", 1), ("busy", 0)]
    for i, (account, partition) in enumerate(accounts):
        screening.screen_one(
            record(raw(deposit(event_id=f"e{i}", account_id=account, timestamp=old)), account, partition)
        )
    store.apply(store.encode())
    start = 1_793_527_200_000
    busy = [b"busy"]  # changed by a batch whose changes are not applied yet
    assert store.expired({0: start + horizon, 1: start + 10 * horizon}, horizon, {0}, busy) == []
    later = {0: start + horizon + 1, 1: start + 10 * horizon}
    assert store.expired(later, horizon, {0}, busy) == [(0, b"idle", None)]
    # Its decoded document went too: the account starts afresh if it comes back.
    screening.screen_one(record(raw(deposit(event_id="e0", account_id="idle", timestamp=old)), "idle", 0))
    [(_, key, value)] = store.encode()
    assert key == b"idle" and value is not None and decode_value(value).seen == {"e0": start}


def test_expiring_idle_accounts_changes_no_alert() -> None:
    """Five days of events, state swept after every batch: the same alerts as with state kept forever."""
    lines = list(synthetic_events(12_000, seed=11, accounts=4_000, events_per_second=0.03, sanctioned_share=0.02))
    # Structuring over almost a whole day: the window must outlive every shorter horizon.
    base = parse_moment(orjson.loads(lines[1_000])["timestamp"])
    for event_id, at, usd in (("s1", 0, "9500"), ("s2", 8 * 60, "9000"), ("s3", 1439, "9999.99")):
        moment = format_timestamp(base + timedelta(minutes=at))
        lines.append(raw(deposit(event_id=event_id, account_id="structurer", usd_value=usd, timestamp=moment)))
    lines.sort(key=lambda line: parse_moment(orjson.loads(line)["timestamp"]))
    records = []
    for offset, line in enumerate(lines):
        account = orjson.loads(line)["account_id"]
        records.append(Record("events", zlib.crc32(account.encode()) % 4, offset, account.encode(), line, [], None))
    kept = Screening(RULES, clock=wall_clock, state=DictStore())
    oracle = [a for r in records for a in kept.screen_one(r).alerts]
    expected = [a.alert_id for a in oracle]

    table: dict[bytes, bytes] = {}
    store = TableStore(table)
    swept = Screening(RULES, clock=wall_clock, state=store)
    clocks: dict[int, int] = {}
    found, expired = [], 0
    for start in range(0, len(records), 200):
        for r in records[start : start + 200]:
            outcome = swept.screen_one(r)
            found.extend(a.alert_id for a in outcome.alerts)
            if outcome.event is not None:
                clocks[r.partition] = max(clocks.get(r.partition, 0), outcome.event.epoch_ms)
        changes = store.encode()
        tombstones = store.expired(clocks, swept.state_horizon_ms, range(4), busy={k for _, k, _ in changes})
        store.apply(changes)
        expired += len(tombstones)
        store.apply(tombstones)
    assert len(expected) > 50 and found == expected
    assert expired > 1_000 and len(table) < len(kept.state) - 1_000  # type: ignore[arg-type]


def test_a_sweep_in_slices_looks_at_every_account_once() -> None:
    """With a limit, a sweep goes on from call to call over the accounts it began with."""
    state = AccountState()
    state.latest = 1_000
    store = TableStore({f"a{i}".encode(): encode_value(0, state) for i in range(7)})
    slices = []
    while True:
        tombstones = store.expired({0: 10_000}, 100, {0}, limit=3)
        store.apply(tombstones)  # as the batch they ride with does
        slices.append([key for _, key, _ in tombstones])
        if not store.sweeping:
            break
    assert [len(s) for s in slices] == [3, 3, 1]
    assert sorted(k for s in slices for k in s) == [f"a{i}".encode() for i in range(7)]
    assert store.expired({0: 10_000}, 100, {0}, limit=3) == []  # a new sweep: the table is empty


def test_over_its_bound_the_cache_releases_states_of_its_older_generation_a_few_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over its bound the cache releases only the excess, from the states not used since its last turnover.

    An account used again before its state is released is not decoded again, and a state
    whose batch is not durable yet is never released (the table does not hold it yet).
    """
    table: dict[bytes, bytes] = {}
    store = TableStore(table, max_cached=8)
    screening = Screening(RULES, {"deposits": "deposit"}, clock=wall_clock, state=store)

    def screen(account: str, event_id: str) -> None:
        screening.screen_one(record(raw(deposit(event_id=event_id, account_id=account)), account))

    for n in range(5):
        screen(f"acct-{n}", f"e{n}")
    store.apply(store.encode())  # five over a half-bound of four: they become the older generation
    owner = {value: key.decode() for key, value in table.items()}
    decoded: list[str] = []

    def counting(value: bytes) -> AccountState:
        decoded.append(owner.get(value, "?"))
        return decode_value(value)

    monkeypatch.setattr(state_table, "decode_value", counting)
    screen("acct-0", "e0-again")  # taken back from the older generation
    for n in range(5, 9):
        screen(f"acct-{n}", f"e{n}")
    assert store.decoded == 0  # acct-0 came back from the older generation, the rest are new
    store.apply(store.encode())  # nine over eight: one state of the older generation goes
    assert store.cached == 8
    owner |= {value: key.decode() for key, value in table.items()}
    for n in range(9):
        assert store.peek(f"acct-{n}") is not None
    assert len(decoded) == 1 and decoded[0] in {"acct-1", "acct-2", "acct-3", "acct-4"}
    assert store.decoded == 1  # what sentinel_state_decoded_total counts

    for n in range(9, 13):
        screen(f"acct-{n}", f"e{n}")
    pending = store.encode()
    store.apply([], in_flight=pending)  # a turnover while their batch is not durable
    for _ in range(6):
        store.apply([], in_flight=pending)
    decoded.clear()
    for n in range(9, 13):
        assert store.peek(f"acct-{n}") is not None  # None would mean a state lost: not in the table yet
    assert decoded == []
    store.apply(pending)

    # The sweep drops an expired account from both generations.
    clocks = {3: 4_000_000_000_000}  # long after every event here
    store.apply(store.expired(clocks, DAY_MS, {3}))
    assert len(store) == 0
    for n in range(13):
        assert store.peek(f"acct-{n}") is None
