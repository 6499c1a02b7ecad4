"""Client helpers that need no broker: the order of requests around an assignment."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.shell import allowlist_feed, clients


class RecordingConsumer:
    """What a consumer was asked, in order, and whether it held an assignment at the time."""

    def __init__(self, topics: set[str], end: int = 7) -> None:
        self._topics = topics
        self._end = end
        self._assigned: set[TopicPartition] = set()
        self.calls: list[tuple[str, bool]] = []

    async def topics(self) -> set[str]:
        return self._topics

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.calls.append(("end_offsets", bool(self._assigned)))
        return dict.fromkeys(partitions, self._end)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("assign", bool(self._assigned)))
        self._assigned.update(partitions)

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self.calls.append(("seek_to_beginning", bool(self._assigned)))


def consumer(fake: RecordingConsumer) -> AIOKafkaConsumer:
    return cast(AIOKafkaConsumer, fake)


def test_the_allowlist_topic_end_is_asked_before_the_partition_is_assigned() -> None:
    # Asked after, the request waits behind the assigned consumer's long-poll fetch (0.5 s
    # a topic at every worker start).
    fake = RecordingConsumer({"allowlist"})
    assigned = asyncio.run(allowlist_feed._assign(consumer(fake), "allowlist"))
    assert assigned == (TopicPartition("allowlist", 0), 7)
    assert fake.calls == [("end_offsets", False), ("assign", False), ("seek_to_beginning", True)]
    assert asyncio.run(allowlist_feed._assign(consumer(RecordingConsumer(set())), "allowlist")) is None


def test_an_end_offset_is_refused_once_the_partition_is_assigned() -> None:
    fake = RecordingConsumer({"t"})
    partition = TopicPartition("t", 0)
    fake.assign([partition])
    with pytest.raises(ValueError, match="before assigning"):
        asyncio.run(clients.end_offset_before_assigning(consumer(fake), partition))
