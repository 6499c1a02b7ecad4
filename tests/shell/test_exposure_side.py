"""The exposure state over a table of bytes: what a batch writes, and what a rebalance reads back."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streams.core.events import wall_clock
from streams.core.exposure_format import entry_key
from streams.core.exposure_screening import ExposureScreening
from streams.core.rules import exposure_rule
from streams.core.rules.engine import Ruleset
from streams.core.rules.loader import load_ruleset
from streams.core.screening import Record, Screening
from streams.shell.exposure_side import ExposureTableStore, pass_on_checks
from tests.core.test_exposure import PACK, SEED, addr, dep, transfer
from tests.core.test_exposure_screening import screen


@pytest.fixture
def ruleset(tmp_path: Path) -> Ruleset:
    (tmp_path / "pack.yaml").write_text(PACK.replace("{min_share}", ""))
    return load_ruleset([tmp_path])


def test_a_batch_writes_only_what_it_changed_and_a_rebalance_reads_the_owned_partitions(ruleset: Ruleset) -> None:
    table: dict[bytes, bytes] = {}
    screening = ExposureScreening(ruleset, {"transfers": "transfer"}, clock=wall_clock)
    store = ExposureTableStore(table, screening)
    store.rebuild(owned={1, 2})
    # A clean transfer between two unexposed addresses changes nothing: no record at all.
    screen(screening, [transfer(9, 0, addr(8), addr(9))], partition=1)
    assert store.encode() == []
    screen(screening, [transfer(1, 1, SEED, addr(1)), dep("w", 5, addr(3))], partition=2)  # waits: 5 > 1
    screen(screening, [transfer(2, 2, SEED, addr(5))], partition=1)
    changes = store.encode()
    assert sorted((p, k) for p, k, _ in changes) == [
        (1, entry_key("indirect", addr(5))),
        (2, entry_key("indirect", addr(1))),
        (2, entry_key("indirect", addr(3))),
    ]
    store.apply(changes)
    # After a rebalance the graphs come back from the table, for the partitions still owned.
    store.forget()
    assert store.stale
    store.rebuild(owned={2})
    exposed = screening.exposure.of("indirect").graph.exposed
    assert set(exposed) == {addr(1)} and set(screening.exposure.of("indirect").seen) == {addr(3)}
    # The waiting deposit becomes an alert; an entry with nothing left in it is a tombstone.
    [alert] = screen(screening, [transfer(3, 0.5, SEED, addr(3))], partition=2)
    assert alert.retroactive
    written = {key: value for _, key, value in store.encode()}
    assert written[entry_key("indirect", addr(3))] is not None  # now exposed itself
    store.apply([(2, key, value) for key, value in written.items()])
    screening.exposure.of("indirect").graph.exposed.pop(addr(3))
    screening.touched[("indirect", addr(3))] = 2
    assert store.encode() == [(2, entry_key("indirect", addr(3)), None)]


def test_senders_forgotten_to_bound_memory_are_deleted_from_the_table_too(
    ruleset: Ruleset, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without transfers the exposure clock stands still and nothing waiting expires: the
    # bound on senders held is then all that keeps the table (and the changelog) finite.
    monkeypatch.setattr(exposure_rule, "MAX_SENDERS", 3)
    table: dict[bytes, bytes] = {}
    screening = ExposureScreening(ruleset, {"transfers": "transfer"}, clock=wall_clock)
    store = ExposureTableStore(table, screening)
    store.rebuild(owned={1, 2})
    screen(screening, [dep(f"d{n}", 5, addr(100 + n)) for n in range(3)], partition=1)
    store.apply(store.encode())
    assert len(table) == 3
    screen(screening, [dep(f"d{n}", 6, addr(100 + n)) for n in range(3, 5)], partition=2)
    changes = store.encode()
    assert sorted((p, k, v is None) for p, k, v in changes) == [
        (1, entry_key("indirect", addr(100)), True),  # forgotten: deleted where it was written
        (1, entry_key("indirect", addr(101)), True),
        (2, entry_key("indirect", addr(103)), False),
        (2, entry_key("indirect", addr(104)), False),
    ]
    store.apply(changes)
    assert sorted(table) == sorted(entry_key("indirect", addr(100 + n)) for n in (2, 3, 4))
    assert set(screening.exposure.of("indirect").seen) == {addr(102), addr(103), addr(104)}


def test_a_deposit_that_does_not_say_it_is_one_is_still_checked_for_exposure(ruleset: Ruleset) -> None:
    # On the deposits topic "type" may be left out (docs/events.md); the checks topic carries
    # both types, so the check passed on must say it. Passing the record's value on as it
    # came once dead-lettered such a deposit on the exposure side, unchecked.
    item = dep("untyped", 5, addr(3))
    del item["type"]
    main = Screening(ruleset, {"deposits": "deposit"}, clock=wall_clock)
    outcome = main.screen_one(Record("deposits", 0, 0, b"acct-untyped", orjson.dumps(item)))
    assert outcome.dead_letter is None
    pass_on_checks([outcome], ruleset, "checks")
    [(topic, key, check)] = outcome.forwards
    assert (topic, key) == ("checks", b"ethereum")
    side = ExposureScreening(ruleset, {"transfers": "transfer"}, clock=wall_clock)
    checked = side.screen_one(Record("checks", 2, 0, key, check))
    assert checked.dead_letter is None and checked.event == outcome.event
    assert set(side.exposure.of("indirect").seen) == {addr(3)}  # waiting for a transfer that exposes its sender
    # ...and one that says its type goes on exactly as it came: nothing is encoded again.
    typed = main.screen_one(Record("deposits", 0, 1, b"acct-typed", raw := orjson.dumps(dep("typed", 6, addr(4)))))
    pass_on_checks([typed], ruleset, "checks")
    assert typed.forwards[0][2] is raw
