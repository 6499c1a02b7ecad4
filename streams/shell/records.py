"""aiokafka's consumer records as the screening path takes them."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import ConsumerRecord

from streams.core.screening import Record


def record_of(message: ConsumerRecord) -> Record:
    """An aiokafka record as the screening path takes it."""
    stamp = message.timestamp
    return Record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=_headers(message.headers),
        timestamp=stamp / 1000 if stamp is not None else None,
    )


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    """aiokafka's record headers (a sequence of name, value pairs) as the Record keeps them."""
    if not raw:
        return []
    return [(str(k), bytes(v) if v is not None else b"") for k, v in raw]
