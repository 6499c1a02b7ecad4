"""The alert sink on the real broker: a refused produce, once the topic accepts again, goes through."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.shell.clients import started_admin
from streams.shell.settings import Settings
from streams.shell.sink import AlertSink
from tests.integration.helpers import collect, isolated_settings, prepare_topics

pytestmark = pytest.mark.kafka


async def _limit(settings: Settings, max_bytes: int | None) -> None:
    value = str(max_bytes) if max_bytes is not None else "1048588"
    async with started_admin(settings) as admin:
        resource = ConfigResource(ConfigResourceType.TOPIC, settings.alerts_topic, configs={"max.message.bytes": value})
        await admin.alter_configs([resource])


async def test_writes_resume_after_the_topic_refused_them(kafka_bootstrap: str, unique: str) -> None:
    """aiokafka's idempotent producer keeps the sequence numbers of refused batches and is then
    refused forever (OutOfOrderSequenceNumber, aio-libs/aiokafka#1017) once the partition holds
    an earlier write of it: the sink must renew its producer rather than retry for ever."""
    settings = isolated_settings(kafka_bootstrap, unique)
    await prepare_topics(settings)
    sink = AlertSink(settings, max_backoff=0.5)
    await sink.start()
    try:
        await sink.write_many(settings.alerts_topic, [(0, b"k", b"before")])  # the partition knows this producer
        await _limit(settings, 200)
        # The broker applies a topic's new config shortly after accepting it (longer on a busy
        # machine): give it that moment, so the write below meets the limit.
        await asyncio.sleep(2)
        refused = asyncio.create_task(sink.write_many(settings.alerts_topic, [(0, b"k", b"x" * 400)]))
        await asyncio.sleep(3)
        assert not refused.done() and sink.retrying, "the write should be held while the topic refuses it"
        await _limit(settings, None)
        await asyncio.wait_for(refused, 30)
        await asyncio.wait_for(sink.write_many(settings.alerts_topic, [(0, b"k", b"after")]), 30)
    finally:
        await sink.stop()
    values = [r.value for r in await collect(kafka_bootstrap, [settings.alerts_topic], expected=3, settle=0.5)]
    assert values[0] == b"before" and values[-1] == b"after" and b"x" * 400 in values
