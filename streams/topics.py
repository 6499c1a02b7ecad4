"""Creating the project's topics on a cluster (idempotent)."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.settings import Settings

log = logging.getLogger(__name__)


def topic_specs(settings: Settings) -> list[NewTopic]:
    """The input, alert and dead-letter topics with their partitions and configs."""
    # LogAppendTime on inputs: the record timestamp is when the broker appended it, so
    # the broker→alert latency metric measures our delay, not the producer's clock.
    inputs = {"message.timestamp.type": "LogAppendTime"}
    return [
        NewTopic(settings.deposits_topic, settings.topic_partitions, 1, topic_configs=inputs),
        NewTopic(settings.withdrawals_topic, settings.topic_partitions, 1, topic_configs=inputs),
        NewTopic(settings.alerts_topic, settings.topic_partitions, 1),
        NewTopic(settings.dead_letter_topic, settings.topic_partitions, 1),
    ]


async def create_topics(settings: Settings, replication_factor: int = 1) -> list[str]:
    """Create whichever of the project's topics are missing; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_list)
    await admin.start()
    created = []
    try:
        existing = set(await admin.list_topics())
        for spec in topic_specs(settings):
            if spec.name in existing:
                continue
            spec.replication_factor = replication_factor
            try:
                await admin.create_topics([spec])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
    return created
