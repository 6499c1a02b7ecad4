"""The worker's garbage-collector pace: small young collections, full ones on a schedule."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from streams.shell.collector import FullCollections
from streams.shell.memory import (
    NEVER,
    WORKER_YOUNG_COLLECTION_THRESHOLD,
    collect_fully,
    pace_offline_collections,
    pace_worker_collections,
)


@pytest.fixture(autouse=True)
def _restore_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def _cycle() -> None:
    a: list[object] = []
    b: list[object] = [a]
    a.append(b)


def test_the_worker_pace_turns_automatic_full_collections_off() -> None:
    pace_worker_collections()
    young, _, full = gc.get_threshold()
    assert young == WORKER_YOUNG_COLLECTION_THRESHOLD
    assert full == NEVER


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


def test_an_offline_run_has_no_automatic_full_collections() -> None:
    gc.set_threshold(50_000, 10, 10)
    pace_offline_collections()
    assert gc.get_threshold() == (50_000, 10, NEVER)
