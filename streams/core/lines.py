"""Reading the time and account of a JSON line leniently, to order and share out files before validation."""

from __future__ import annotations

from datetime import datetime

import orjson

from streams.core.events import parse_moment


def line_timestamp(line: bytes) -> datetime | None:
    """The ``timestamp`` of a JSON line, leniently (for ordering and shifting files), or ``None``."""
    return line_time_and_account(line)[0]


def line_time_and_account(line: bytes) -> tuple[datetime | None, str | None]:
    """The ``timestamp`` and ``account_id`` of a JSON line, leniently; ``None`` for what is unreadable."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    account = data.get("account_id")
    try:
        moment: datetime | None = parse_moment(data.get("timestamp"))  # type: ignore[arg-type]
    except (AttributeError, TypeError, ValueError):
        moment = None
    return moment, account if isinstance(account, str) else None
