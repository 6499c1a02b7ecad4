"""The allowlist topic: what ``sentinel allow`` writes and every worker follows.

Each record is one :class:`~streams.core.allowlist.AllowlistChange` (an add or a revoke),
signed like a rules bundle (kind ``allowlist-change``, see :mod:`streams.shell.signing`),
under a key of its own (``<entry id>/add``, ``<entry id>/revoke``): the compacted topic keeps
every change, so it is the audit trail too. A worker reads the whole topic before it
screens its first record, then follows it; a record that is unsigned, wrongly signed or
malformed is logged, counted (``sentinel_allowlist_changes_total{result="rejected"}``) and
skipped, and every other entry keeps applying.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.core.allowlist import Allowlist, AllowlistChange, AllowlistError, parse_change
from streams.shell import clients, metrics
from streams.shell.settings import Settings
from streams.shell.signing import ALLOWLIST_CHANGE, ControlRejectedError, ControlTrust
from streams.shell.topics import allowlist_topic_spec, ensure_topic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicChange:
    """One record of the allowlist topic as read: the change, or why it was refused."""

    offset: int
    key: str
    change: AllowlistChange | None
    signer: str | None = None
    problem: str | None = None


def open_record(trust: ControlTrust, offset: int, key: bytes | None, value: bytes | None) -> TopicChange:
    """Verify and read one record; never raises (a refused record carries its reason)."""
    shown = (key or b"").decode(errors="replace")[:80]
    if value is None:
        return TopicChange(offset, shown, None, problem="empty record (tombstone)")
    try:
        payload, signer = trust.open(value, ALLOWLIST_CHANGE)
        change = parse_change(payload)
    except (ControlRejectedError, AllowlistError) as exc:
        return TopicChange(offset, shown, None, problem=str(exc))
    if key != change.record_key():
        return TopicChange(offset, shown, None, problem=f"key {shown!r} is not {change.record_key().decode()!r}")
    return TopicChange(offset, shown, change, signer=signer)


async def _assign(consumer: AIOKafkaConsumer, topic: str) -> tuple[TopicPartition, int] | None:
    """Read ``topic`` from its beginning: its partition and its end offset now (None: no such topic)."""
    if topic not in await consumer.topics():
        return None
    partition = TopicPartition(topic, 0)
    end = await clients.end_offset_before_assigning(consumer, partition)
    consumer.assign([partition])
    await consumer.seek_to_beginning(partition)
    return partition, end


async def _read_to_end(
    consumer: AIOKafkaConsumer, partition: TopicPartition, end: int, trust: ControlTrust
) -> list[TopicChange]:
    read: list[TopicChange] = []
    while await consumer.position(partition) < end:
        for records in (await consumer.getmany(partition, timeout_ms=1000)).values():
            read.extend(open_record(trust, r.offset, r.key, r.value) for r in records)
    return read


async def read_topic(settings: Settings, trust: ControlTrust) -> list[TopicChange]:
    """Every record of the allowlist topic, in order (for ``sentinel allow list`` and ``history``)."""
    async with clients.started_consumer(settings) as consumer:
        assigned = await _assign(consumer, settings.allowlist_topic)
        return [] if assigned is None else await _read_to_end(consumer, *assigned, trust)


async def publish_change(settings: Settings, change: AllowlistChange, record: bytes) -> None:
    """Write one signed change to the allowlist topic (created, compacted, if missing)."""
    await ensure_topic(settings, allowlist_topic_spec(settings))
    async with clients.started_producer(settings) as producer:
        await producer.send_and_wait(settings.allowlist_topic, value=record, key=change.record_key())


class AllowlistFeed(mode.Service):
    """Keeps a worker's allowlist in step with the topic; ``install`` gets each new allowlist."""

    def __init__(
        self, settings: Settings, trust: ControlTrust, install: Callable[[Allowlist], None], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.trust = trust
        self.install = install
        self.allowlist = Allowlist()
        self._task: asyncio.Task[None] | None = None
        #: Made at start; a worker that fails to start stops services that never started.
        self._consumer: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        self._consumer = consumer = clients.consumer(self.settings)
        await consumer.start()
        # The entries already on the topic apply before the first record is screened.
        assigned = await _assign(consumer, self.settings.allowlist_topic)
        if assigned is not None:
            self._take(await _read_to_end(consumer, *assigned, self.trust))
        self._task = asyncio.create_task(self._follow(consumer, None if assigned is None else assigned[0]))

    async def on_stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()

    async def _follow(self, consumer: AIOKafkaConsumer, partition: TopicPartition | None) -> None:
        topic = self.settings.allowlist_topic
        while partition is None:  # created by the first `sentinel allow add`
            await asyncio.sleep(5)
            assigned = await _assign(consumer, topic)
            partition = None if assigned is None else assigned[0]
        while True:
            batches = await consumer.getmany(partition, timeout_ms=1000)
            read = [open_record(self.trust, r.offset, r.key, r.value) for rs in batches.values() for r in rs]
            if read:
                self._take(read)

    def _take(self, read: list[TopicChange]) -> None:
        """Apply what was read into a copy, then install the copy whole (between two records)."""
        updated = Allowlist(dict(self.allowlist.adds), dict(self.allowlist.revokes))
        accepted = [item.change for item in read if item.change is not None]
        refused = {id(change): reason for change, reason in updated.apply_all(accepted)}
        for item in read:
            problem = item.problem or (refused.get(id(item.change)) if item.change is not None else None)
            if problem is not None:
                metrics.ALLOWLIST_CHANGES.labels("rejected").inc()
                log.warning(
                    "allowlist change at %s offset %d (key %r) rejected, the other entries still apply: %s",
                    self.settings.allowlist_topic,
                    item.offset,
                    item.key,
                    problem,
                )
            elif item.change is not None:
                metrics.ALLOWLIST_CHANGES.labels("applied").inc()
                change = item.change
                what = change.scope if change.action == "add" else "revoked"
                log.info("allowlist entry %s (%s) by %s: %s", change.entry_id, what, change.by, change.reason)
        self.allowlist = updated
        self.install(updated)
