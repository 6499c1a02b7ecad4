"""The console's feed: where it starts reading, asked of the broker before any partition is assigned."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndTimestamp

from streams.core.triage import AlertQueue
from streams.shell import clients
from streams.shell.console import feed
from streams.shell.console.feed import ConsoleFeed, PageHub
from streams.shell.settings import Settings
from tests.shell.test_clients import RecordingConsumer


class StartingConsumer(RecordingConsumer):
    """A consumer at the console's start: history since a time, the dispositions from their first offset."""

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def offsets_for_times(self, times: dict[TopicPartition, int]) -> dict[TopicPartition, Any]:
        self.calls.append(("offsets_for_times", bool(self._assigned)))
        return dict.fromkeys(times, OffsetAndTimestamp(2, 0))

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.calls.append(("beginning_offsets", bool(self._assigned)))
        return dict.fromkeys(partitions, 0)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.calls.append((f"seek {partition.topic} {offset}", bool(self._assigned)))

    async def getmany(self, *partitions: TopicPartition, **options: Any) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(3600)  # the test is over before anything would arrive
        return {}


class Producer:
    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def test_the_console_asks_where_to_start_before_it_is_assigned_the_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    # Asked after the assignment, each request waits behind the long-poll fetch (up to 0.5 s
    # each, at every console start).
    settings = Settings(alerts_topic="alerts", dispositions_topic="decisions")
    fake = StartingConsumer({"alerts", "decisions"})

    async def no_topic_to_create(*_: Any) -> None:
        pass

    async def one_partition(_: Settings, topic: str) -> list[int]:
        return [0]

    monkeypatch.setattr(feed, "ensure_topic", no_topic_to_create)
    monkeypatch.setattr(clients, "partitions_of", one_partition)
    monkeypatch.setattr(clients, "consumer", lambda _: fake)
    monkeypatch.setattr(clients, "producer", lambda _: Producer())

    async def start_and_stop() -> None:
        console = ConsoleFeed(settings, AlertQueue(), PageHub())
        await console.start()
        await console.stop()

    asyncio.run(start_and_stop())
    asked = [call for call, _ in fake.calls if not call.startswith(("assign", "seek"))]
    assert asked == ["offsets_for_times", "end_offsets", "beginning_offsets"]
    assert not [call for call, assigned in fake.calls if assigned and call in asked]
    # The alerts from the history's first offset, the dispositions from their beginning.
    assert [call for call, assigned in fake.calls if assigned] == ["seek alerts 2", "seek decisions 0"]
