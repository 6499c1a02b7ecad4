"""Every use of faust-streaming's private names, in one place.

The worker keeps what Faust gives it (group membership, the changelog-backed state table
and its recovery, offset commits, rebalances, timers), but two things it needs have no
public API in faust-streaming 0.15:

- **Input in whole poll batches.** Faust hands every record to a stream through its
  conductor, a queue and several tasks per record; measured here that path tops out at
  about 12,000 records/s per process whatever the agent does (``make bench``,
  docs/performance.md). :class:`BatchConsumer` is Faust's aiokafka consumer whose fetch
  loop (a copy of Faust 0.15's ``_drain_messages``/``getmany``) hands each poll batch of
  the input topics to a :class:`BatchReceiver` and lets the records of any other topic
  go Faust's way; records are acknowledged with :meth:`BatchConsumer.ack_records` once
  their outputs are safe (see :mod:`streams.shell.commit`).
- **How long an empty fetch waits.** Faust builds its aiokafka consumer with
  ``fetch_max_wait_ms=1500`` and no setting for it. aiokafka sends one fetch per broker for
  the partitions that have nothing buffered; when the busy partitions still have records
  buffered, that fetch holds only idle ones (a worker's partitions of an idle topic), the
  broker keeps it for 1.5 s, and the busy partitions cannot be fetched again until it
  returns. Measured on one busy partition (``chain-transfers``, one chain): a 1.4 s gap
  after every 1 MB fetch, 1,850 transfers/s. :class:`BatchConsumerThread` lowers the wait
  to :data:`FETCH_MAX_WAIT_MS` on the consumer Faust built, before it starts.
- **A start without Faust's fixed pause.** Faust's table manager sleeps 1 s before it
  registers the tables (time for agents declared during start-up to add theirs); the
  worker declares every table before it starts, so :class:`PromptTableManager` (set
  through Faust's public ``TableManager`` setting) registers them at once: every worker
  start, restart and fail-over is 1 s shorter. A test holds Faust's own ``on_start`` to the
  three steps this copies.
- **The state table's bytes and the committed offsets.** The worker writes the changelog
  itself, in producer batches, after the alerts are acknowledged, so it puts the durable
  documents in the table's in-memory store directly (:func:`table_bytes`), and reads the
  consumer's last committed offsets for the lag gauge (:func:`committed_offset`).

:data:`PRIVATE_NAMES` lists every private name used here; :func:`check_faust_internals`
raises at start-up (and in ``tests/shell/test_faust_adapter.py``) if the installed Faust lacks
one, instead of misbehaving quietly. faust-streaming is pinned below 0.16 for this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import faust
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from faust.tables import TableManager
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, TableT, TransportT

#: The private names of Faust this module relies on: (class, name, where it is defined).
PRIVATE_NAMES: tuple[tuple[type, str, str], ...] = (
    (faust.App, "_new_transport", "method"),
    (FaustConsumer, "_drain_messages", "method"),  # what Faust's Fetcher runs: our batch loop replaces it
    (FaustConsumer, "_wait_next_records", "method"),
    (FaustConsumer, "_add_gap", "method"),
    (faust_aiokafka.Consumer, "_to_message", "method"),
    (FaustConsumer, "_read_offset", "instance"),
    (FaustConsumer, "_committed_offset", "instance"),
    (FaustConsumer, "_buffered_partitions", "instance"),
    (FaustConsumer, "_thread", "instance"),
    (FaustConsumer, "_stopped", "instance"),
    (faust_aiokafka.Consumer, "_new_consumer_thread", "method"),
    (faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer", "method"),
    (TableManager, "_update_channels", "method"),
)
#: aiokafka's own name for the wait, read by its fetcher when the consumer starts.
AIOKAFKA_FETCH_WAIT = "_fetch_max_wait_ms"
#: How long the broker may hold a fetch of partitions with no new records (aiokafka's default is 500).
FETCH_MAX_WAIT_MS = 100


def check_faust_internals(consumer: object | None = None) -> None:
    """Raise :class:`RuntimeError` naming every private name of Faust that is missing.

    Methods are looked up on the classes; instance attributes on ``consumer`` when one
    is given (they exist only once Faust has built it).
    """
    missing = []
    for owner, name, kind in PRIVATE_NAMES:
        if kind == "method" and not callable(getattr(owner, name, None)):
            missing.append(f"{owner.__qualname__}.{name}")
        elif kind == "instance" and consumer is not None and not hasattr(consumer, name):
            missing.append(f"{owner.__qualname__}().{name}")
    if missing:
        raise RuntimeError(
            f"faust-streaming {faust.__version__} lacks what streams/shell/faust_adapter.py relies on: "
            f"{', '.join(missing)}; check the adapter against this Faust version"
        )


class BatchReceiver(Protocol):
    """What takes the input records off the batch consumer (the worker)."""

    #: Names of the topics whose records come in batches.
    batch_topics: frozenset[str]

    async def screen_batch(self, records: list[ConsumerRecord]) -> None:
        """Screen one poll batch (in partition order); ack the records once they are safe."""

    async def finish_in_flight(self) -> None:
        """Let the batch in flight complete (a graceful stop)."""


#: Screens one batch of input records.
BatchHandler = Callable[[list[ConsumerRecord]], Awaitable[None]]


@dataclass(eq=False, slots=True, weakref_slot=True)  # Faust keeps unacked messages in a WeakSet
class _Offset:
    """What Faust's :meth:`Consumer.ack` reads of a message: where it is, and whether acked."""

    topic: str
    partition: int
    offset: int
    tp: TP
    acked: bool = False


class _Position(Protocol):
    """Where a record is (a screening ``Record`` or an aiokafka ``ConsumerRecord``)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, whose aiokafka consumer waits :data:`FETCH_MAX_WAIT_MS` on an empty fetch."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        set_fetch_wait(consumer, FETCH_MAX_WAIT_MS)
        return consumer


def set_fetch_wait(consumer: object, wait_ms: int) -> None:
    """Set an unstarted aiokafka consumer's ``fetch_max_wait_ms``; RuntimeError if aiokafka renamed it."""
    if not isinstance(getattr(consumer, AIOKAFKA_FETCH_WAIT, None), int):
        raise RuntimeError(
            f"aiokafka's consumer has no {AIOKAFKA_FETCH_WAIT}: check streams/shell/faust_adapter.py against it"
        )
    setattr(consumer, AIOKAFKA_FETCH_WAIT, wait_ms)


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose fetcher hands input records over in batches.

    The loop below follows Faust 0.15's ``_drain_messages`` and ``getmany`` (active
    partitions, read offsets, gap tracking, generation and flow checks, stop conditions)
    with one change: input records are collected as aiokafka delivered them and handed
    to the :class:`BatchReceiver` once per poll, instead of each being wrapped in a
    Faust message and passed through a queue. Records of other topics go Faust's way.
    """

    def _new_consumer_thread(self) -> BatchConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _receiver(self) -> BatchReceiver:
        transport = self.transport
        if not isinstance(transport, BatchTransport) or transport.receiver is None:
            raise RuntimeError("BatchConsumer runs only under a BatchDeliveryApp with a batch receiver")
        return transport.receiver

    async def on_start(self) -> None:
        """Check Faust's instance attributes before the first fetch."""
        check_faust_internals(self)
        await super().on_start()

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
        inputs = self._receiver().batch_topics
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
        await self._receiver().finish_in_flight()
        await super().wait_empty()

    def ack_records(self, records: Sequence[_Position]) -> None:
        """Acknowledge input records (Faust commits offsets up to the last contiguous ack)."""
        ack = self.ack
        for record in records:
            ack(_Offset(record.topic, record.partition, record.offset, TP(record.topic, record.partition)))  # type: ignore[arg-type]

    #: Input was dropped during a rebalance: seek to the committed offsets once it ends.
    _seek_due: bool = False

    def _fetched_since_rebalance(self, rebalances: int, generation: int) -> bool:
        """Whether input polled when ``rebalances`` rebalances had begun may be screened now.

        Not if a rebalance began since (or is still under way): the records were fetched
        from positions of the old assignment. Faust's revocation awaits more than once
        after it calls ``on_rebalance_start`` (which abandons the batches in flight) and
        before it stops the flow, and input partitions are resumed during recovery a
        moment before the seek to the committed offsets; a batch screened in either gap
        would run against state that lacks the abandoned batches and could be acknowledged
        past them, losing their alerts.
        """
        app = self.app
        return (
            not app.rebalancing
            and app.rebalancing_count == rebalances
            and app.consumer_generation_id == generation
            and self.flow_active
        )

    def _drop_stale(self, records: Sequence[ConsumerRecord]) -> None:
        """Drop input fetched before a rebalance; the seek after it reads the records again."""
        self._seek_due = True
        self.log.info(
            "dropped %d input records fetched before a rebalance; they are read again from the committed offsets",
            len(records),
        )

    async def _drain_messages(self, fetcher: Any) -> None:
        app = self.app
        receiver = self._receiver()
        inputs = receiver.batch_topics
        handle = receiver.screen_batch
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = app.topics.acks_enabled_for
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                rebalances = app.rebalancing_count
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
                fetched_before_seek = self._seek_due and not app.rebalancing
                if fetched_before_seek:
                    # Input was dropped during the rebalance that has just ended: go back to
                    # the committed offsets before screening anything. This poll's input
                    # was fetched before the seek, so it is skipped below.
                    try:
                        await self.perform_seek()
                    except Exception as exc:
                        self.log.warning("seek to committed offsets failed: %r", exc)
                        continue
                    self._seek_due = False
                generation = app.consumer_generation_id
                batch: list[Any] = []
                for tp, records in polled.items():
                    if active is not None and tp not in active and tp not in self._buffered_partitions:
                        continue
                    if app.consumer_generation_id != generation or not self.flow_active:
                        break
                    is_input = tp.topic in inputs
                    if is_input and fetched_before_seek:
                        continue  # read again after the seek just made
                    read = get_read_offset(tp)
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
                if batch and not self._fetched_since_rebalance(rebalances, generation):
                    self._drop_stale(batch)
                elif batch:
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
    """Faust's aiokafka transport with :class:`BatchConsumer`, and the receiver it feeds."""

    Consumer: ClassVar[Any] = BatchConsumer
    receiver: BatchReceiver | None = None


class PromptTableManager(TableManager):
    """Faust's table manager, registering the tables as it starts instead of 1 s later."""

    async def on_start(self) -> None:
        """Faust's ``on_start`` without its ``sleep(1.0)``: every table exists before the app starts."""
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class BatchDeliveryApp(faust.App):
    """A Faust app whose input topics arrive in poll batches at :attr:`batch_receiver`.

    Every table must be declared before the app starts (see :class:`PromptTableManager`).
    """

    batch_receiver: BatchReceiver | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("TableManager", PromptTableManager)
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> TransportT:
        transport = BatchTransport(self.conf.broker_consumer, self)
        transport.receiver = self.batch_receiver
        return transport

    def ack_records(self, records: Sequence[_Position]) -> None:
        """Acknowledge input records screened in batches (see :class:`BatchConsumer`)."""
        consumer = self.consumer
        if not isinstance(consumer, BatchConsumer):
            raise RuntimeError("input records can be acked only through the BatchConsumer")
        consumer.ack_records(records)

    def committed_offset(self, tp: TP) -> int | None:
        """The offset this worker last committed for ``tp`` (None before its first commit)."""
        # Faust's own record; the public alternative (aiokafka's committed()) is a broker round trip.
        offsets: Mapping[TP, int] = getattr(self.consumer, "_committed_offset")  # noqa: B009
        return offsets.get(tp)

    def recovery_completed(self) -> bool:
        """Whether the tables have been rebuilt from their changelogs."""
        return bool(self.tables.recovery.completed.is_set())  # type: ignore[attr-defined]


def table_bytes(table: TableT[bytes, bytes]) -> MutableMapping[bytes, bytes]:
    """The dict inside a memory-backed table's store: Faust fills it from the changelog on recovery."""
    data: MutableMapping[bytes, bytes] = table.data.data  # type: ignore[attr-defined]
    return data
