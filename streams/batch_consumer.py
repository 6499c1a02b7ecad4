"""Faust's Kafka consumer, delivering the input topics in whole poll batches.

Faust hands every record to a stream through its conductor, a queue and several tasks
per record; measured here, that path tops out at about 12,000 records/s per process
whatever the agent does (``make bench``, docs/performance.md). The worker keeps
everything else Faust gives it (group membership, the changelog-backed state table and
its recovery, offset commits, rebalances, timers), but the records of its input topics
skip the per-record path: the fetcher hands each poll batch to one coroutine, which
screens the batch with the engine's batch entry point, waits for the outputs, and then
acknowledges the records so Faust commits their offsets as usual.

Records of any other subscribed topic (Faust's own) go the ordinary way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from aiokafka import TopicPartition
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

#: Screens one batch of input records (aiokafka ``ConsumerRecord``s, in partition order)
#: and acknowledges them with :meth:`BatchConsumer.ack_records` once their outputs are safe.
BatchHandler = Callable[[list[Any]], Awaitable[None]]


@dataclass(eq=False, slots=True, weakref_slot=True)  # Faust keeps unacked messages in a WeakSet
class _Offset:
    """What Faust's :meth:`Consumer.ack` reads of a message: where it is, and whether acked."""

    topic: str
    partition: int
    offset: int
    tp: TP
    acked: bool = False


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose fetcher hands input records over in batches.

    The app must have ``batch_topics`` (names) and ``screen_batch`` (a
    :data:`BatchHandler`). The loop below follows Faust 0.15's ``_drain_messages`` and
    ``getmany`` (active partitions, read offsets, gap tracking, generation and flow
    checks, stop conditions) with one change: input records are collected as aiokafka
    delivered them and handed over once per poll, instead of each being wrapped in a
    Faust message and passed through a queue. Records of other topics go Faust's way.
    """

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek to the committed offsets, and an input partition never committed to its beginning.

        aiokafka leaves a partition without a committed offset wherever its position is.
        After a rebalance that position can be past records that were fetched but never
        screened (a batch abandoned, a poll dropped while the flow was stopped); staying
        there would skip them. The group starts such a partition at its beginning
        (``auto_offset_reset=earliest``), so that is where it goes back to; what is
        screened twice is dropped as a duplicate.
        """
        committed = await super().seek_to_committed()
        inputs = cast(Any, self.app).batch_topics
        never = [
            TopicPartition(tp.topic, tp.partition)
            for tp, offset in committed.items()
            if tp.topic in inputs and not (offset and offset > 0)
        ]
        if never:
            await self._thread.seek_to_beginning(*never)
        return committed

    async def wait_empty(self) -> None:
        """Let the batch in flight be acknowledged before Faust's last commit (a graceful stop)."""
        await cast(Any, self.app).finish_in_flight()
        await super().wait_empty()

    def ack_records(self, records: list[Any]) -> None:
        """Acknowledge input records (Faust commits offsets up to the last contiguous ack)."""
        ack = self.ack
        for record in records:
            ack(_Offset(record.topic, record.partition, record.offset, TP(record.topic, record.partition)))  # type: ignore[arg-type]

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised by the worker tests
        app = cast(Any, self.app)
        inputs: frozenset[str] = app.batch_topics
        handle: BatchHandler = app.screen_batch
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = app.topics.acks_enabled_for
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                polled, active = await self._wait_next_records(1.0)
                await self.sleep(0)
                if polled is None or self.should_stop:
                    continue
                if not self.flow_active:
                    # A rebalance began: drop what was fetched and go back to the committed
                    # offsets, as Faust's getmany does.
                    try:
                        await self.perform_seek()
                    except Exception as exc:
                        self.log.warning("seek to committed offsets failed: %r", exc)
                    continue
                generation = app.consumer_generation_id
                batch: list[Any] = []
                for tp, records in polled.items():
                    if active is not None and tp not in active and tp not in self._buffered_partitions:
                        continue
                    if app.consumer_generation_id != generation or not self.flow_active:
                        break
                    read = get_read_offset(tp)
                    is_input = tp.topic in inputs
                    for record in records:
                        offset = record.offset
                        if read is not None and offset < read:
                            continue  # already read before a seek (Faust drops these too)
                        if read and offset - read > 1 and acks_enabled_for(tp.topic):
                            await self._add_gap(tp, read + 1, offset)  # e.g. transaction markers
                        if is_input:
                            batch.append(record)
                        else:
                            message = self._to_message(tp, record)
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        read = offset
                        set_read_offset(tp, offset)
                if batch:
                    await handle(batch)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except asyncio.CancelledError:
            if fetcher_should_stop() or consumer_should_stop():
                # Stopped on purpose (shutdown, or a rebalance, after which Faust starts the
                # fetcher again). Faust's own handler would "crash" the fetcher here when a
                # rebalance is under way, and then fail calling a supervisor it does not
                # have, which kills a worker told to stop during a rebalance.
                return
            raise
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class BatchTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`BatchConsumer`."""

    Consumer: ClassVar[Any] = BatchConsumer
