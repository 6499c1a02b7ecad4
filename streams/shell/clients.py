"""Every Kafka client of the project, built in one place from the settings.

Connection and security options come from :func:`streams.shell.security.client_options`, so a
client built here speaks TLS/SASL exactly as the worker does. Defaults are the ones an
at-least-once tool needs (producers: ``acks=all`` and idempotence; consumers: no group
and no auto-commit, so reading never moves anyone's offsets); callers override by
keyword. The Faust worker's own consumer and changelog producer are Faust's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.structs import ConsumerRecord

from streams.shell.security import client_options, tls_problem
from streams.shell.settings import Settings


def admin_client(settings: Settings, **overrides: Any) -> AIOKafkaAdminClient:
    """An admin client (not started)."""
    return AIOKafkaAdminClient(**{**client_options(settings), **overrides})


def producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent ``acks=all`` producer (not started; build it inside the event loop)."""
    return AIOKafkaProducer(**{**client_options(settings), "acks": "all", "enable_idempotence": True, **overrides})


def consumer(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer of no group that commits nothing (not started), subscribed to ``topics`` if any."""
    options = {**client_options(settings), "group_id": None, "enable_auto_commit": False, **overrides}
    return AIOKafkaConsumer(*topics, **options)


@asynccontextmanager
async def _running(start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    await start()
    try:
        yield
    finally:
        await stop()


@asynccontextmanager
async def started_admin(settings: Settings, **overrides: Any) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client, started, closed on exit."""
    client = admin_client(settings, **overrides)
    async with _running(client.start, client.close):
        yield client


@asynccontextmanager
async def started_producer(settings: Settings, **overrides: Any) -> AsyncIterator[AIOKafkaProducer]:
    """A producer, started; flushed and stopped on exit."""
    client = producer(settings, **overrides)
    async with _running(client.start, client.stop):
        yield client


@asynccontextmanager
async def started_consumer(settings: Settings, *topics: str, **overrides: Any) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer, started, stopped on exit."""
    client = consumer(settings, *topics, **overrides)
    async with _running(client.start, client.stop):
        yield client


async def end_offset_before_assigning(consumer: AIOKafkaConsumer, partition: TopicPartition) -> int:
    """The end offset of ``partition``, asked before ``consumer`` is assigned it.

    Once a consumer is assigned a partition it keeps a long-poll fetch open on the
    leader's connection, and the broker answers one request of a connection at a time: an
    offsets request then waits behind the fetch, up to ``fetch_max_wait_ms`` (0.5 s) when
    the topic is quiet. Asked first, it is answered at once (a worker started 1 s sooner,
    with the control and allowlist topics read this way).
    """
    if partition in consumer.assignment():
        raise ValueError(f"{partition} is assigned already: ask for its end offset before assigning it")
    ends: dict[TopicPartition, int] = await consumer.end_offsets([partition])
    return ends[partition]


#: The ``type`` of chain transfers: ours, and the items ethereum-etl writes (docs/events.md).
TRANSFER_TYPES = frozenset({"transfer", "transaction", "token_transfer"})


def topic_for(settings: Settings, event: Mapping[str, Any]) -> str:
    """The input topic an event belongs on, by its ``type``.

    Anything that is not a withdrawal or a chain transfer goes to the deposits topic, where
    the worker dead-letters it if it is not a valid deposit: routing never hides bad input.
    """
    kind = event.get("type")
    if kind in TRANSFER_TYPES and settings.transfers_topic:
        return settings.transfers_topic
    return settings.withdrawals_topic if kind == "withdrawal" else settings.deposits_topic


def key_for(event: Mapping[str, Any]) -> bytes | None:
    """The record key of an input: its account, or for a chain transfer its chain (one partition per chain)."""
    if event.get("type") in TRANSFER_TYPES:
        return str(event.get("chain", "ethereum")).encode()  # ethereum-etl's items have no chain: Ethereum's
    return str(event["account_id"]).encode() if "account_id" in event else None


async def partitions_of(settings: Settings, topic: str) -> list[int]:
    """The partitions of ``topic`` (none if it does not exist)."""
    async with started_admin(settings) as admin:
        described = await admin.describe_topics([topic])
    return sorted(p["partition"] for d in described if d.get("error_code", 0) == 0 for p in d.get("partitions", []))


async def read_range(
    settings: Settings, topics: Iterable[str], since: float, until: float | None = None
) -> list[ConsumerRecord]:
    """Every record of ``topics`` with a broker timestamp in [since, until) (``None``: to the end).

    The bounds (Unix seconds) are turned into offsets with offsets-for-times, so only the
    range is read, however long the topic.
    """
    partitions = [TopicPartition(topic, p) for topic in topics for p in await partitions_of(settings, topic)]
    out: list[ConsumerRecord] = []
    if not partitions:
        return out
    async with started_consumer(settings) as reader:
        # Asked before the assignment, as in end_offset_before_assigning: after it, each of
        # these requests could wait behind a long-poll fetch.
        starts = await reader.offsets_for_times({tp: int(since * 1000) for tp in partitions})
        ends = await reader.end_offsets(partitions)
        stops = (
            await reader.offsets_for_times({tp: int(until * 1000) for tp in partitions}) if until is not None else {}
        )
        reader.assign(partitions)
        bounds = {}
        for tp in partitions:
            start = starts[tp].offset if starts.get(tp) else ends[tp]
            stop = stops[tp].offset if stops.get(tp) else ends[tp]
            if start < stop:
                bounds[tp] = stop
                reader.seek(tp, start)
        while bounds:
            batches = await reader.getmany(*bounds.keys(), timeout_ms=1000)
            for tp, records in batches.items():
                out.extend(record for record in records if record.offset < bounds.get(tp, -1))
                if await reader.position(tp) >= bounds.get(tp, 0):
                    bounds.pop(tp, None)
    return out


_REFUSED_BY_ACL = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)


async def explain_refusal(settings: Settings, exc: KafkaError, *, connecting: bool = False) -> str:
    """One plain sentence for a Kafka error a command cannot go on from: who we are, and why.

    ``connecting``: the error came while connecting (any error then means we cannot connect).
    """
    who = f" as {settings.sasl_username!r} ({settings.sasl_mechanism})" if settings.sasl_username else ""
    where = f"{settings.kafka_bootstrap_servers} over {settings.security_protocol}{who}"
    name = type(exc).__name__
    if isinstance(exc, _REFUSED_BY_ACL):
        return (
            f"the cluster at {where} refused: {name}: {exc}. This principal lacks an ACL for it"
            " (docs/operations.md, 'Who may do what')"
        )
    if isinstance(exc, KafkaConnectionError):
        tls = await tls_problem(settings)
        if tls is not None:
            return f"cannot connect to {where}: {tls}"
    if connecting or isinstance(exc, KafkaConnectionError):
        return f"cannot connect to {where}: {name}: {exc}"
    return f"the cluster at {where} answered: {name}: {exc}"


async def check_connection(settings: Settings, topics: tuple[str, ...] = (), wait: float = 30.0) -> None:
    """Connect once and fail with a plain message (not a retry loop) if the cluster refuses us.

    With ``topics``, also wait (up to ``wait`` seconds) until each exists with a leader for
    every partition: a consumer group joined before then is given no partitions and would
    sit idle until its next metadata refresh.
    """
    admin = admin_client(settings, request_timeout_ms=15_000)
    try:
        await admin.start()
        await admin.list_topics()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while topics:
            described = await admin.describe_topics(list(topics))
            ready = {
                d["topic"]
                for d in described
                if d.get("error_code", 0) == 0
                and d.get("partitions")
                and all(p.get("leader", -1) >= 0 for p in d["partitions"])
            }
            if ready >= set(topics):
                break
            if loop.time() > deadline:
                missing = ", ".join(sorted(set(topics) - ready))
                raise ConnectionError(f"topic(s) {missing} not found on the cluster (run: sentinel topics create)")
            await asyncio.sleep(0.2)
    except KafkaError as exc:
        raise ConnectionError(await explain_refusal(settings, exc, connecting=True)) from None
    finally:
        await admin.close()
