"""Writing alerts and dead letters to Kafka, waiting for the broker's acknowledgement.

An idempotent producer with ``acks=all``: the broker de-duplicates its own retries, and
the caller learns a record is safe only once every in-sync replica has it. A failed
send is retried with back-off for as long as it takes, because giving up would either
lose an alert or let the input offset be committed past a record that produced nothing.

One failure is not cured by waiting: after the broker refused a batch (a record over the
topic's ``max.message.bytes``, say), aiokafka's idempotent producer keeps the sequence
numbers it gave that batch, and the broker then refuses every later batch for the same
partition with ``OutOfOrderSequenceNumber``, for ever (aio-libs/aiokafka#1017; the Java
client bumps its producer epoch instead). On such an error the sink replaces its producer
with a new one (a new producer id, sequences from zero) and sends again; the soak found it
(docs/guarantees.md, "Long fault soak").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import InvalidProducerEpoch, KafkaError, OutOfOrderSequenceNumber, UnknownProducerId
from aiokafka.partitioner import DefaultPartitioner

from streams.core.alerts import FreezeAlert
from streams.core.screening import DeadLetter, Outcome
from streams.shell import clients, metrics
from streams.shell.commit import Change
from streams.shell.settings import Settings

log = logging.getLogger(__name__)

#: Errors after which an idempotent producer never succeeds again: only a new producer helps.
#: Kafka's default partitioner (murmur2 of the key), as a keyed send uses it.
_PARTITIONER = DefaultPartitioner()
_PRODUCER_SESSION_BROKEN = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)

#: Largest value copied whole into a dead letter (the broker's default limit is 1 MiB).
MAX_DEAD_LETTER_VALUE = 900_000


class AlertSink:
    """Produces the outcomes of screening: alerts to the alert topic, dead letters to the DLQ."""

    def __init__(self, settings: Settings, *, changelog_topic: str | None = None, max_backoff: float = 5.0) -> None:
        self.alerts_topic = settings.alerts_topic
        self.dead_letter_topic = settings.dead_letter_topic
        #: Where :meth:`write_changelog` writes state changes (the worker's state table).
        self.changelog_topic = changelog_topic
        self._max_backoff = max_backoff
        self._settings = settings
        #: True while a produce is failing and being retried (input is held back on purpose).
        self.retrying = False
        self._producer: AIOKafkaProducer | None = None
        #: How many times the producer was replaced after its session broke (see the module doc).
        self.renewals = 0
        self._renewing = asyncio.Lock()
        #: (topic, key) -> partition, for records passed on by key (few keys: chains).
        self._partitions: dict[tuple[str, bytes], int] = {}

    async def start(self) -> None:
        """Connect to the cluster (the producer must be created inside the event loop)."""
        self._producer = await self._new_producer()

    async def _new_producer(self) -> AIOKafkaProducer:
        producer = clients.producer(
            self._settings,
            linger_ms=0,
            # A dead letter carries the original value; allow up to the broker's default limit.
            max_request_size=1_048_576 + 64_000,
            # State changelog records go out in batches of up to this many bytes per partition.
            max_batch_size=512 * 1024,
            client_id="deposit-sentinel-alerts",
        )
        await producer.start()
        return producer

    async def _renew(self, broken: AIOKafkaProducer) -> None:
        """Replace ``broken`` by a new producer, once however many sends saw it fail."""
        async with self._renewing:
            if id(self._producer) != id(broken):  # (not `is`: mypy would narrow `broken` to Optional)
                return  # another send already replaced it
            self._producer = await self._new_producer()
            self.renewals += 1
            log.warning("the alert producer's idempotence session broke; replaced it with a new producer")
        try:
            # Its stuck batches are abandoned: every record in them is sent again by its caller.
            await asyncio.wait_for(broken.stop(), 10)
        except (KafkaError, TimeoutError) as exc:
            log.warning("stopping the replaced producer: %s", exc)

    async def stop(self) -> None:
        """Flush and disconnect."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def emit(self, outcome: Outcome) -> None:
        """Produce what ``outcome`` calls for and return once the broker has acknowledged it."""
        if outcome.dead_letter is not None:
            await self._send_dead_letter(outcome.dead_letter)
        elif outcome.alerts:
            await self._send_alerts(outcome.alerts, outcome.record.timestamp)

    async def emit_many(self, outcomes: Sequence[Outcome]) -> None:
        """Produce the outputs of a batch of outcomes together; return once all are acknowledged.

        Records passed on (exposure checks) go out in producer batches, one per partition,
        as the changelog does: one per deposit, they would otherwise cost more than its screening.
        """
        pending = [self.emit(outcome) for outcome in outcomes if outcome.dead_letter is not None or outcome.alerts]
        forwards: dict[str, list[Change]] = {}
        for outcome in outcomes:
            for topic, key, value in outcome.forwards:
                forwards.setdefault(topic, []).append((await self._partition_of(topic, key), key, value))
        pending += [self.write_many(topic, records) for topic, records in forwards.items()]
        if pending:
            await asyncio.gather(*pending)

    async def _partition_of(self, topic: str, key: bytes) -> int:
        """The partition Kafka's default partitioner gives ``key`` (what a keyed send would choose)."""
        found = self._partitions.get((topic, key))
        if found is None:
            producer = self._producer
            if producer is None:
                raise RuntimeError("AlertSink.emit_many called before start")
            partitions = sorted(await producer.partitions_for(topic))
            found = self._partitions[(topic, key)] = _PARTITIONER(key, partitions, partitions)
        return found

    async def _send_alerts(self, alerts: Sequence[FreezeAlert], broker_time: float | None) -> None:
        await asyncio.gather(*(self._send(self.alerts_topic, alert.key(), alert.to_json(), []) for alert in alerts))
        done = time.time()
        for alert in alerts:
            metrics.ALERTS.labels(alert.rule_id, alert.typology, alert.severity, alert.action, alert.mode).inc()
            metrics.EVENT_TO_ALERT.observe(max(0.0, done - alert.event_time.timestamp()))
        if broker_time is not None:
            metrics.BROKER_TO_ALERT.observe(max(0.0, done - broker_time))

    async def _send_dead_letter(self, letter: DeadLetter) -> None:
        value, headers = letter.record.value, letter.headers()
        if value is not None and len(value) > MAX_DEAD_LETTER_VALUE:
            # The broker would refuse the record with our headers added, and retrying would
            # stall the partition. Keep the head of the value; the source offset in the
            # headers points at the untouched original.
            headers.append(("sentinel.value.truncated_from", str(len(value)).encode()))
            value = value[:MAX_DEAD_LETTER_VALUE]
        key = letter.record.key
        if key is None and value is None:
            # Kafka clients cannot write a record with neither key nor value; say so in a header.
            headers.append(("sentinel.value.null", b"true"))
            value = b""
        await self._send(self.dead_letter_topic, key, value, headers)
        metrics.DEAD_LETTERS.labels(letter.record.topic, letter.reason).inc()
        log.warning(
            "dead-lettered %s[%d]@%d: %s: %s",
            letter.record.topic,
            letter.record.partition,
            letter.record.offset,
            letter.reason,
            letter.detail[:200],
        )

    async def send_keyed(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Produce ``(key, value)`` records (partitioned by key) and return once all are acknowledged.

        They are handed to the producer without yielding in between, so they leave in one
        request per partition; a record whose batch failed is retried as every output is.
        """
        producer = self._producer
        if producer is None:
            raise RuntimeError("AlertSink.send_keyed called before start")
        futures = [await producer.send(topic, value=value, key=key) for key, value in records]
        results = await asyncio.gather(*futures, return_exceptions=True)
        for (key, value), result in zip(records, results, strict=True):
            if isinstance(result, KafkaError):
                await self._send(topic, key, value, [])
            elif isinstance(result, BaseException):
                raise result

    async def write_changelog(self, changes: Sequence[Change]) -> None:
        """Write state changes to the state table's changelog; return once all are acknowledged."""
        if self.changelog_topic is None:
            raise RuntimeError("AlertSink was built without a changelog topic")
        await self.write_many(self.changelog_topic, changes)

    async def write_many(self, topic: str, records: Sequence[Change]) -> None:
        """Produce ``(partition, key, value)`` records and return once all are acknowledged.

        Used for the state changelog: one record per account touched by a batch. They go
        out as one producer batch per partition and are awaited together; the records of
        a batch that failed are retried one by one, like every other output.
        """
        producer = self._producer
        if producer is None:
            raise RuntimeError("AlertSink.write_many called before start")
        # Batches are built here, one per partition, rather than record by record through
        # send(), whose per-record metadata and partition checks cost more than the
        # screening of a record.
        sent: list[tuple[Any, list[Change]]] = []
        open_batches: dict[int, tuple[Any, list[Change]]] = {}
        for record in records:
            partition, key, value = record
            current = open_batches.get(partition)
            if current is None:
                current = open_batches[partition] = (producer.create_batch(), [])
            if current[0].append(key=key, value=value, timestamp=None) is None:  # full
                sent.append((await producer.send_batch(current[0], topic, partition=partition), current[1]))
                current = open_batches[partition] = (producer.create_batch(), [])
                current[0].append(key=key, value=value, timestamp=None)
            current[1].append(record)
        for partition, (batch, members) in open_batches.items():
            sent.append((await producer.send_batch(batch, topic, partition=partition), members))
        results = await asyncio.gather(*(future for future, _ in sent), return_exceptions=True)
        for (_, members), result in zip(sent, results, strict=True):
            if isinstance(result, KafkaError):
                for partition, key, value in members:
                    await self._send(topic, key, value, [], partition)
            elif isinstance(result, BaseException):
                raise result

    async def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        partition: int | None = None,
    ) -> None:
        backoff = 0.1
        while True:
            producer = self._producer
            if producer is None:
                raise RuntimeError("AlertSink.emit called before start")
            try:
                await producer.send_and_wait(topic, value=value, key=key, headers=headers, partition=partition)
                self.retrying = False
                return
            except KafkaError as exc:
                self.retrying = True
                metrics.PRODUCE_RETRIES.labels(topic).inc()
                if isinstance(exc, _PRODUCER_SESSION_BROKEN):
                    await self._renew(producer)
                log.error("producing to %s failed (%s); retrying in %.1fs", topic, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
