"""The Kafka side of ``sentinel rescreen``: read past input, find alerts already written, write new ones.

The matching itself is :mod:`streams.core.rescreen` (no Kafka there): an ordinary rule run by
the one screening path over what these functions read.
"""

from __future__ import annotations

import orjson

from streams.core.alerts import FreezeAlert
from streams.core.rescreen import RULE_ID
from streams.core.screening import Record
from streams.shell.clients import read_range, started_producer
from streams.shell.settings import Settings


async def topic_events(settings: Settings, since: float, until: float) -> list[Record]:
    """Every input record with a broker timestamp in [since, until), as consumed."""
    records = await read_range(settings, settings.topic_event_types, since, until)
    return [Record(r.topic, r.partition, r.offset, r.key, r.value) for r in records]


async def existing_alert_ids(settings: Settings, since: float) -> set[str]:
    """Ids of retroactive alerts already on the alert topic (written since ``since``)."""
    ids: set[str] = set()
    for record in await read_range(settings, [settings.alerts_topic], since):
        try:
            alert = orjson.loads(record.value or b"{}")
        except orjson.JSONDecodeError:
            continue
        if alert.get("rule_id") == RULE_ID:
            ids.add(alert["alert_id"])
    return ids


async def produce_alerts(settings: Settings, alerts: list[FreezeAlert]) -> None:
    """Write ``alerts`` to the alert topic, each acknowledged before the next."""
    async with started_producer(settings) as producer:
        for alert in alerts:
            await producer.send_and_wait(settings.alerts_topic, value=alert.to_json(), key=alert.key())
