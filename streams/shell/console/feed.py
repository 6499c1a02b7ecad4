"""The console's Kafka side: read alerts and dispositions into the queue, write dispositions, tell open pages.

Every console reads every partition of ``freeze-alerts`` (``SENTINEL_CONSOLE_HISTORY_DAYS``
back, found with the broker's offsets for times) and the whole ``alert-dispositions``
topic, without a consumer group: a group would share the partitions out between consoles,
and each console must show the whole queue. Nothing is stored elsewhere, so a console
restarted (or a second one) rebuilds the same queue and the same dispositions from the
topics. A disposition is written, acknowledged by the broker, and shown once the console
has read it back, so what a page shows is always what the topic holds.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.core.triage import AlertQueue, Disposition, TriageError
from streams.shell import clients
from streams.shell.settings import Settings
from streams.shell.topics import dispositions_topic_spec, ensure_topic

log = logging.getLogger(__name__)

#: Waiting pages get at most this many updates queued; a page further behind is closed and
#: reloads the queue when its browser reconnects (EventSource does so by itself).
PAGE_BACKLOG = 1000


class PageHub:
    """The open pages' update streams: each gets every change as it is read."""

    def __init__(self) -> None:
        self._pages: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def open(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A new page's queue of updates (``None``: the page fell behind and must reload)."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(PAGE_BACKLOG + 1)
        self._pages.add(queue)
        return queue

    def close(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Forget a page that went away."""
        self._pages.discard(queue)

    def publish(self, update: dict[str, Any]) -> None:
        """Send ``update`` to every page; a page with a full queue gets ``None`` and is forgotten."""
        for queue in list(self._pages):
            if queue.qsize() >= PAGE_BACKLOG:
                queue.put_nowait(None)
                self._pages.discard(queue)
            else:
                queue.put_nowait(update)

    def close_all(self) -> None:
        """End every page's stream (the console is stopping; pages reconnect to another)."""
        for queue in self._pages:
            queue.put_nowait(None)
        self._pages.clear()


class ConsoleFeed:
    """Keeps an :class:`AlertQueue` in step with the two topics and writes new dispositions."""

    def __init__(self, settings: Settings, queue: AlertQueue, hub: PageHub) -> None:
        self.settings = settings
        self.queue = queue
        self.hub = hub
        #: Set once the history present at start-up has been read.
        self.caught_up = asyncio.Event()
        self.unreadable_dispositions = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._read_to: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()

    async def start(self) -> None:
        """Connect, choose where to start reading, and read in the background."""
        settings = self.settings
        await ensure_topic(settings, dispositions_topic_spec(settings))
        self._producer = clients.producer(settings)
        await self._producer.start()
        consumer = self._consumer = clients.consumer(settings)
        await consumer.start()
        alerts = await _partitions(settings, settings.alerts_topic)
        if not alerts:
            await self.stop()
            raise SystemExit(f"sentinel: topic {settings.alerts_topic} not found (run: sentinel topics create)")
        decisions = await _partitions(settings, settings.dispositions_topic)
        since = datetime.now(UTC) - timedelta(days=settings.console_history_days)
        # Asked before the assignment, as in clients.end_offset_before_assigning: after it,
        # each request could wait up to 0.5 s behind the consumer's long-poll fetch.
        starts = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in alerts})
        ends = await consumer.end_offsets(alerts + decisions)
        firsts = await consumer.beginning_offsets(decisions)
        begin = {tp: starts[tp].offset if starts.get(tp) else ends[tp] for tp in alerts} | firsts
        consumer.assign(alerts + decisions)
        for tp, offset in begin.items():
            consumer.seek(tp, offset)
        pending = {tp: end for tp, end in ends.items() if end > begin[tp]}
        self._task = asyncio.create_task(self._read(pending))

    async def stop(self) -> None:
        """Stop reading and close the clients."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for client in (self._consumer, self._producer):
            if client is not None:
                await client.stop()

    async def decide(self, disposition: Disposition) -> None:
        """Write a disposition; return once this console has read it back (so the queue shows it)."""
        assert self._producer is not None
        key = f"{disposition.alert_id}/{secrets.token_hex(8)}".encode()
        meta = await self._producer.send_and_wait(self.settings.dispositions_topic, disposition.to_json(), key=key)
        written = TopicPartition(meta.topic, meta.partition)
        async with self._progress:
            await asyncio.wait_for(
                self._progress.wait_for(lambda: self._read_to.get(written, -1) > meta.offset), timeout=10
            )

    async def _read(self, pending: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        if not pending:
            self.caught_up.set()
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batches.items():
                for record in records:
                    self._take(tp, record.partition, record.offset, record.value)
            # The fetch position, not the last record's offset + 1: it also passes what a
            # record does not show (control markers, offsets compacted away).
            for tp in {*batches, *pending}:
                self._read_to[tp] = await self._consumer.position(tp)
            for tp in [tp for tp, end in pending.items() if self._read_to[tp] >= end]:
                del pending[tp]
            if not self.caught_up.is_set() and not pending:
                log.info("console: %d alerts read (%d unreadable)", len(self.queue), self.queue.unreadable)
                self.caught_up.set()
            if batches:
                async with self._progress:
                    self._progress.notify_all()

    def _take(self, tp: TopicPartition, partition: int, offset: int, value: bytes | None) -> None:
        if tp.topic == self.settings.alerts_topic:
            unreadable = self.queue.unreadable
            item = self.queue.add_alert(value, partition, offset)
            if self.queue.unreadable > unreadable:
                log.warning("console: %s[%d]@%d is not an alert: counted, not shown", tp.topic, partition, offset)
            if item is not None and self.caught_up.is_set():
                self.hub.publish({"kind": "alert", "row": item.row(), "unreadable": self.queue.unreadable})
            return
        try:
            disposition = Disposition.from_json(value or b"")
        except TriageError as exc:
            self.unreadable_dispositions += 1
            log.warning("console: disposition record at offset %d ignored: %s", offset, exc)
            return
        changed = self.queue.apply(disposition)
        if changed is not None and self.caught_up.is_set():
            self.hub.publish({"kind": "disposition", "row": changed.row(), "disposition": disposition.as_json_dict()})


async def _partitions(settings: Settings, topic: str, wait_s: float = 10.0) -> list[TopicPartition]:
    """The partitions of ``topic``, given up to ``wait_s`` to show (a topic created just now)."""
    deadline = time.monotonic() + wait_s
    while not (found := await clients.partitions_of(settings, topic)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return [TopicPartition(topic, p) for p in found]
