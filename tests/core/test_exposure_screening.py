"""Screening where the exposure state is: transfers, checked deposits, the state's persisted form."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.core.backtest import backtest_lines
from streams.core.events import wall_clock
from streams.core.exposure_format import decode_entry, encode_entry, entry_key, entry_partition
from streams.core.exposure_screening import ExposureScreening
from streams.core.rules.engine import Ruleset
from streams.core.rules.exposure_rule import ExposureStore, RuleExposureState
from streams.core.rules.loader import load_ruleset
from streams.core.screening import Record
from tests.core.test_exposure import PACK, SEED, addr, dep, transfer
from tests.core.test_stored_json import held_bytes_each


@pytest.fixture
def shared(tmp_path: Path) -> Ruleset:
    (tmp_path / "pack.yaml").write_text(PACK.replace("{min_share}", "min_share: 0.05"))
    return load_ruleset([tmp_path])


def screen(screening: ExposureScreening, items: list[dict[str, Any]], partition: int = 2) -> list[Any]:
    found = []
    for n, item in enumerate(items):
        topic = "transfers" if item["type"] == "transfer" else "checks"
        outcome = screening.screen_one(Record(topic, partition, n, None, orjson.dumps(item)))
        assert outcome.dead_letter is None, outcome.dead_letter
        found += outcome.alerts
    return found


def backtest(ruleset: Ruleset, items: list[dict[str, Any]]) -> list[str]:
    return [a.alert_id for a in backtest_lines([orjson.dumps(i) for i in items], ruleset, clock=wall_clock).alerts]


def test_a_deposit_checked_after_later_transfers_is_judged_by_the_share_at_its_time(shared: Ruleset) -> None:
    # addr(1) holds only tainted funds at minute 10; clean funds at minute 20 bring it under 5%.
    transfers = [transfer(1, 1, SEED, addr(1), "6"), transfer(2, 20, addr(9), addr(1), "994")]
    early, late = dep("early", 10, addr(1)), dep("late", 30, addr(1))
    screening = ExposureScreening(shared, {"transfers": "transfer"}, clock=wall_clock)
    found = screen(screening, [*transfers, early, late])
    assert [a.event_ids for a in found] == [["early"]]
    assert found[0].evidence["exposure"]["share"] == "1.0000"
    assert [a.alert_id for a in found] == backtest(shared, [*transfers, early, late])


def test_a_deposit_checked_before_its_sender_is_exposed_waits_and_alerts_once(shared: Ruleset) -> None:
    screening = ExposureScreening(shared, {"transfers": "transfer"}, clock=wall_clock)
    d = dep("d", 60, addr(4))
    screen(screening, [transfer(9, 0, addr(8), addr(9))])  # the chain feed is at minute 0
    screening.touched.clear()
    assert screen(screening, [d, d]) == []  # checked twice (a crash and a replay): remembered once
    assert screening.touched == {("indirect", addr(4)): 2}
    [alert] = screen(screening, [transfer(1, 30, SEED, addr(4))])
    assert alert.retroactive and alert.event_ids == ["d"]
    assert screen(screening, [transfer(2, 31, SEED, addr(4))]) == []


def test_the_state_survives_encoding_and_a_delisted_seed_exposes_nobody(shared: Ruleset, tmp_path: Path) -> None:
    screening = ExposureScreening(shared, {"transfers": "transfer"}, clock=wall_clock)
    screen(screening, [transfer(1, 1, SEED, addr(1), "6"), transfer(2, 2, addr(1), addr(2), "3"), dep("w", 5, addr(3))])
    state = screening.exposure.of("indirect")
    raws = {a: encode_entry(state, "indirect", a, 2) for a in (addr(1), addr(2), addr(3), addr(7))}
    assert raws[addr(7)] is None  # nothing held of it
    assert entry_key("indirect", addr(1)) == b"indirect\x00" + addr(1).encode()
    assert entry_partition(raws[addr(1)] or b"") == 2
    configs = {r.spec.id: r.config for r in shared.exposure_rules}
    store = ExposureStore(remember_deposits=True)
    for raw in raws.values():
        if raw is not None:
            decode_entry(raw, configs, {"indirect": store.of("indirect")})
    again = store.of("indirect")
    assert again.graph.exposed == state.graph.exposed
    assert [(t, e.event_id) for t, e in again.seen[addr(3)]] == [(t, e.event_id) for t, e in state.seen[addr(3)]]
    # The seed taken off its list: what it exposed is dropped when the state is read back.
    (tmp_path / "pack.yaml").write_text(PACK.replace(SEED, addr(0x5EED)).replace("{min_share}", ""))
    delisted = load_ruleset([tmp_path])
    store = ExposureStore()
    decode_entry(
        raws[addr(2)] or b"", {r.spec.id: r.config for r in delisted.exposure_rules}, {"indirect": store.of("indirect")}
    )
    assert store.of("indirect").graph.exposed == {}
    with pytest.raises(ValueError, match="unknown version 9"):
        entry_partition(b'{"version": 9}')


def test_hops_keep_their_amounts_and_state_of_version_1_is_still_read(shared: Ruleset) -> None:
    screening = ExposureScreening(shared, {"transfers": "transfer"}, clock=wall_clock)
    screen(screening, [transfer(1, 1, SEED, addr(1), "6"), transfer(2, 2, addr(1), addr(2), "3")])
    state = screening.exposure.of("indirect")
    path = [hop.as_evidence() for hop in state.graph.exposed[addr(2)].path]
    assert [(hop["amount"], hop["asset"]) for hop in path] == [("6", "ETH"), ("3", "ETH")]
    # The previous release wrote version 1: the same entry, its path steps without amount and asset.
    current = orjson.loads(encode_entry(state, "indirect", addr(2), 2) or b"")
    assert current["version"] == 2
    older = {**current, "version": 1}
    older["exposure"] = {**current["exposure"], "path": [step[:4] for step in current["exposure"]["path"]]}
    store = ExposureStore()
    decode_entry(
        orjson.dumps(older), {r.spec.id: r.config for r in shared.exposure_rules}, {"indirect": store.of("indirect")}
    )
    read = store.of("indirect").graph.exposed[addr(2)]
    assert [hop.to_address for hop in read.path] == [addr(1), addr(2)]
    assert all("amount" not in hop.as_evidence() for hop in read.path)


def test_expiry_forgets_idle_exposures_and_old_waiting_deposits(shared: Ruleset) -> None:
    screening = ExposureScreening(shared, {"transfers": "transfer"}, clock=wall_clock)
    screen(screening, [transfer(9, 0, addr(8), addr(9)), dep("w", 0, addr(3)), transfer(1, 1, SEED, addr(1))])
    screening.touched.clear()
    screen(screening, [transfer(2, 60 * 24 * 200, addr(8), addr(9))])  # 200 days later: both are past their time
    screening.touched.clear()
    held = {("indirect", addr(1)): 2, ("indirect", addr(3)): 2}
    assert screening.expire(held) == 2
    assert set(screening.touched) == set(held)
    assert screening.exposure.of("indirect").graph.exposed == {} and screening.exposure.of("indirect").seen == {}


def test_an_encoded_entry_is_held_at_its_own_size(shared: Ruleset) -> None:
    # Entries live in the worker's exposure table, one per waiting deposit's address: at
    # orjson's 4 KiB each, 150,000 bench events held 500 MB of buffers.
    screening = ExposureScreening(shared, {"transfers": "transfer"}, clock=wall_clock)
    deposits = [dep(f"d{n}", 5, addr(100 + n)) for n in range(500)]
    screen(screening, [transfer(9, 0, addr(8), addr(9)), *deposits])
    state = screening.exposure.of("indirect")
    raws = [encode_entry(state, "indirect", addr(100 + n), 2) for n in range(500)]
    assert all(raw is not None and len(raw) < 1_000 for raw in raws)
    assert held_bytes_each(lambda n: encode_entry(state, "indirect", addr(100 + n), 2), count=500) < 2_000


def test_full_caches_evict_their_oldest_without_a_scan() -> None:
    """The waiting senders are bounded: once full, each new one evicts the oldest.

    On a plain dict the first key after many deletions at its front is found by scanning
    the holes they left: 60 µs an eviction after 400,000 inserts, and a worker on 300,000
    bench events spent 12% of its time there. An OrderedDict finds it at once.
    """
    assert isinstance(RuleExposureState().seen, OrderedDict)
