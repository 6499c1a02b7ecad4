"""Garbage-collector pace: none automatic in a worker (full ones on its schedule) or an offline run."""

from __future__ import annotations

import asyncio
import csv
import gc
from collections.abc import Iterator

import orjson
import pytest
from prometheus_client import REGISTRY

from streams.core.backtest import backtest_lines
from streams.core.events import wall_clock
from streams.core.rules.loader import load_ruleset
from streams.core.synthetic import synthetic_events
from streams.shell.collector import FullCollections
from streams.shell.memory import (
    collect_fully,
    offline_collections,
    pace_worker_collections,
)
from tests.core.test_exposure_ronin import as_transfer, deposit_from
from tests.data import REPO, RONIN


@pytest.fixture(autouse=True)
def _restore_collections() -> Iterator[None]:
    before, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.set_threshold(*before)
    if enabled:
        gc.enable()


def _cycle() -> None:
    a: list[object] = []
    b: list[object] = [a]
    a.append(b)


def test_the_worker_pace_turns_automatic_collections_off() -> None:
    pace_worker_collections()
    assert not gc.isenabled()
    _cycle()
    assert gc.collect() >= 2  # what the worker's own schedule runs still frees cycles


def test_a_full_collection_frees_cycles_and_says_how_long_it_took() -> None:
    gc.collect()
    _cycle()
    freed, seconds = collect_fully()
    assert freed >= 2  # the two lists of the cycle
    assert 0 <= seconds < 5


def test_the_service_collects_on_its_interval() -> None:
    def count() -> float:
        return REGISTRY.get_sample_value("sentinel_full_collection_seconds_count") or 0.0

    async def run() -> float:
        # Polled, not slept for a fixed time: in a full test session the heap is large and
        # one full collection can take longer than the interval.
        before = count()
        service = FullCollections(0.05)
        await service.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while count() - before < 3 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await service.stop()
        return count() - before

    assert asyncio.run(run()) >= 3


def test_an_offline_run_has_no_automatic_collections_and_they_resume_after_it() -> None:
    assert gc.isenabled()
    with offline_collections():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), offline_collections():
        raise RuntimeError("a failed backtest")
    assert gc.isenabled()


def test_screening_makes_no_reference_cycles() -> None:
    """What lets an offline run go without the cyclic collector: it would find nothing to free.

    Every kind of record: clean events of many accounts (windows, sequences, alerts and
    suppressions), resends, bad lines of every kind, chain transfers of the real Ronin trail
    (exposure graphs, retroactive findings) and the deposits they expose, and idle accounts
    deleted by the sweep.
    """
    ruleset = load_ruleset([REPO / "rules"])
    lines = list(synthetic_events(6_000, seed=5, accounts=300, poison_share=0.05))
    lines += lines[:200]  # resends
    with (RONIN / "ronin_lazarus_transfers_normalised.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    lines += [orjson.dumps(as_transfer(n, row)) for n, row in enumerate(rows)]
    lines += [orjson.dumps(deposit_from(row["to_address"], n)) for n, row in enumerate(rows[:300])]
    gc.collect()
    with offline_collections():
        report = backtest_lines(lines, ruleset, clock=wall_clock, keep_alerts=False)
        assert report.invalid and report.alert_count
        assert {"ofac-indirect-exposure", "pass-through", "fan-in"} <= {rule for rule, _, _ in report.alerts_by_rule}
        assert gc.collect() == 0
