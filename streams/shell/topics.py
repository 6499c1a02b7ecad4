"""Creating the project's topics on a cluster (idempotent)."""

from __future__ import annotations

import logging

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.shell.clients import started_admin, started_producer
from streams.shell.settings import Settings

log = logging.getLogger(__name__)

#: Compaction cleans closed segments only. With Kafka's default 1 GiB segments a busy
#: changelog is never compacted, and a worker that restarts or takes a partition over
#: reads every state write since the topic began: the fault soak measured 1.3 GB after
#: six minutes at 1,250 events/s, and a restarted worker not ready after four minutes.
#: Segments of 16 MiB (or ten minutes) keep what recovery reads near the live state.
CHANGELOG_TOPIC_CONFIGS = {"segment.bytes": str(16 * 1024 * 1024), "segment.ms": str(10 * 60 * 1000)}


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
        *exposure_topic_specs(settings),
        *([control_topic_spec(settings)] if settings.control_topic else []),
        *([allowlist_topic_spec(settings)] if settings.allowlist_topic else []),
        dispositions_topic_spec(settings),
        *(
            [NewTopic(settings.screening_decisions_topic, settings.topic_partitions, 1)]
            if settings.screening_port
            else []
        ),
    ]


def screening_topic_spec(settings: Settings) -> NewTopic:
    """The audit topic of the screening API's decisions (keyed by account or address)."""
    return NewTopic(settings.screening_decisions_topic, settings.topic_partitions, settings.replication_factor)


def exposure_topic_specs(settings: Settings) -> list[NewTopic]:
    """Chain transfers (keyed by chain) and the exposure checks passed to their partitions, if enabled.

    Both have the input topics' partition count, so that a partition of each and of the
    exposure state table go to one worker (see streams.shell.exposure_side).
    """
    if not settings.transfers_topic:
        return []
    inputs = {"message.timestamp.type": "LogAppendTime"}
    return [
        NewTopic(settings.transfers_topic, settings.topic_partitions, 1, topic_configs=inputs),
        NewTopic(settings.exposure_checks_topic, settings.topic_partitions, 1),
    ]


def control_topic_spec(settings: Settings) -> NewTopic:
    """One partition (one order for everyone), compacted (the latest bundle is kept)."""
    return NewTopic(
        settings.control_topic,
        1,
        1,
        topic_configs={"cleanup.policy": "compact", "max.message.bytes": "1048588"},
    )


def allowlist_topic_spec(settings: Settings) -> NewTopic:
    """One partition (one order), compacted: each change has a key of its own, so none is ever removed.

    The topic is the allowlist's audit trail: every add and revoke with who, why and when.
    Compaction only drops an exact re-send of a change (same key); time-based deletion does
    not apply to a compacted topic, so the history stays for as long as the topic does.
    """
    return NewTopic(settings.allowlist_topic, 1, 1, topic_configs={"cleanup.policy": "compact"})


def dispositions_topic_spec(settings: Settings) -> NewTopic:
    """The console's triage decisions: one partition (one order), compacted, each decision under a key of its own.

    So compaction never removes a decision: the topic is the audit trail of every
    disposition, with who, when and why, as the allowlist topic is of every entry.
    """
    compacted = {"cleanup.policy": "compact"}
    return NewTopic(settings.dispositions_topic, 1, settings.replication_factor, topic_configs=compacted)


async def ensure_topic(settings: Settings, spec: NewTopic) -> None:
    """Create ``spec``'s topic if it is missing."""
    async with started_admin(settings) as admin:
        if spec.name in set(await admin.list_topics()):
            return
        try:
            await admin.create_topics([spec])
        except TopicAlreadyExistsError:
            pass


async def create_topics(settings: Settings, replication_factor: int = 1) -> list[str]:
    """Create whichever of the project's topics are missing; return the names created."""
    created = []
    async with started_admin(settings) as admin:
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
    return created


async def publish_bundle(settings: Settings, bundle: bytes) -> None:
    """Write a rules bundle to the control topic (created, compacted, if missing)."""
    from streams.shell.reload import BUNDLE_KEY

    await ensure_topic(settings, control_topic_spec(settings))
    async with started_producer(settings, max_request_size=1_048_576) as producer:
        await producer.send_and_wait(settings.control_topic, value=bundle, key=BUNDLE_KEY)
