"""Durations in rule files: ``90s``, ``30m``, ``1h``, ``7d`` (a whole number and a unit)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(?P<n>[0-9]{1,9})(?P<unit>ms|s|m|h|d)\Z")
_MILLIS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: object) -> int:
    """Milliseconds in ``text``; raises ``ValueError`` with a plain explanation otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration; write it like 90s, 30m, 1h or 7d")
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration; write it like 90s, 30m, 1h or 7d")
    return int(match["n"]) * _MILLIS[match["unit"]]


def format_duration_ms(millis: int) -> str:
    """The shortest exact spelling of ``millis`` (for messages and docs)."""
    for unit in ("d", "h", "m", "s"):
        if millis and millis % _MILLIS[unit] == 0:
            return f"{millis // _MILLIS[unit]}{unit}"
    return f"{millis}ms"
