"""Idle accounts' rule state is deleted on the real broker, and a restarted worker recovers only live state."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.factories import deposit, raw
from tests.integration.helpers import WorkerProcess, collect, isolated_settings, prepare_topics, produce, start_worker

pytestmark = pytest.mark.kafka


def metric(worker: WorkerProcess, name: str) -> float | None:
    for line in worker.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def wait_for_metric(worker: WorkerProcess, name: str, value: float, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while metric(worker, name) != value:
        assert time.monotonic() < deadline, f"{name} is {metric(worker, name)}, not {value}"
        time.sleep(0.5)


async def test_an_idle_account_state_is_tombstoned_and_not_recovered(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    # One partition, so the busy account's events move the idle account's partition clock.
    settings = isolated_settings(kafka_bootstrap, unique, topic_partitions=1, state_sweep_interval=0.5)
    await prepare_topics(settings)
    changelog = f"{settings.app_id}-rule-state-changelog"
    worker = await asyncio.to_thread(start_worker, settings, tmp_path, "w1")
    try:
        idle = raw(deposit(event_id="old", account_id="idle-acct", timestamp="2026-11-01T10:00:00Z"))
        await produce(kafka_bootstrap, [(settings.deposits_topic, b"idle-acct", idle)])
        await collect(kafka_bootstrap, [changelog], expected=1, settle=1.0)
        busy = raw(deposit(event_id="new", account_id="busy-acct", timestamp="2026-11-04T10:00:00Z"))
        await produce(kafka_bootstrap, [(settings.deposits_topic, b"busy-acct", busy)])
        records = await collect(kafka_bootstrap, [changelog], expected=3, settle=2.0)
        assert [(r.key, r.value is None) for r in records] == [
            (b"idle-acct", False),
            (b"busy-acct", False),
            (b"idle-acct", True),  # three days idle: past the pack's 24 h 35 m horizon
        ]
        assert metric(worker, "sentinel_state_expired_total") == 1.0
    finally:
        assert await asyncio.to_thread(worker.stop) == 0, worker.log()[-4000:]
    restarted = await asyncio.to_thread(start_worker, settings, tmp_path, "w2")
    try:
        await asyncio.to_thread(wait_for_metric, restarted, "sentinel_state_keys", 1.0)
    finally:
        assert await asyncio.to_thread(restarted.stop) == 0, restarted.log()[-4000:]
