"""Producing a file of events to the input topics (the demo feed, test fixtures, replays)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from streams.core.events import format_timestamp, wall_clock
from streams.core.lines import line_timestamp
from streams.shell.clients import key_for, started_producer, topic_for
from streams.shell.settings import Settings


def feed_records(
    path: Path, settings: Settings, shift_to: datetime | None = None, id_suffix: str | None = None
) -> Iterator[tuple[str, bytes | None, bytes]]:
    """Yield ``(topic, key, value)`` for each line of a JSONL file of typed events.

    Each line goes to the topic of its ``type`` (lines without one go to the deposits
    topic, where they will be dead-lettered: the feed does not hide bad input). With
    ``shift_to``, timestamps move so the latest event happens at that moment, keeping
    the gaps between events. With ``id_suffix``, every ``event_id`` gets it appended, so
    a file fed again counts as new events (a demo run again) rather than as resends the
    worker drops as duplicates; otherwise event ids stay the same.
    """
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    offset = timedelta(0)
    if shift_to is not None:
        stamps = [line_timestamp(line) for line in lines]
        known = [s for s in stamps if s is not None]
        if known:
            offset = shift_to - max(known)
    for line in lines:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield settings.deposits_topic, None, line
            continue
        if not isinstance(data, dict):
            yield settings.deposits_topic, None, line
            continue
        topic = topic_for(settings, data)
        key = key_for(data)
        stamp = line_timestamp(line)
        changed = False
        if offset and stamp is not None:
            data["timestamp"] = format_timestamp(stamp + offset)
            changed = True
        if id_suffix and isinstance(data.get("event_id"), str):
            data["event_id"] += id_suffix
            changed = True
        yield topic, key, orjson.dumps(data) if changed else line


async def produce_file(path: Path, settings: Settings, *, shift_to_now: bool = False, new_ids: bool = False) -> int:
    """Produce every line of ``path``; return how many records were acknowledged.

    ``new_ids`` suffixes every event id with this moment (``-r20261127T061500``).
    """
    count = 0
    async with started_producer(settings) as producer:
        now = wall_clock()
        shift = now if shift_to_now else None
        suffix = now.strftime("-r%Y%m%dT%H%M%S") if new_ids else None
        for topic, key, value in feed_records(path, settings, shift, suffix):
            await producer.send(topic, value=value, key=key)
            count += 1
        await producer.flush()
    return count
