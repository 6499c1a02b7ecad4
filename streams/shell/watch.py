"""A person-readable view of the alert and dead-letter topics (``sentinel watch``)."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

import orjson

from streams.shell import clients
from streams.shell.settings import Settings

_COLOURS = {"critical": "\033[1;31m", "high": "\033[31m", "medium": "\033[33m", "low": "\033[36m"}
_RESET = "\033[0m"


def describe_alert(value: bytes, colour: bool = False) -> str:
    """One line for an alert: action, severity, typology, account, summary, rule and id."""
    try:
        alert = orjson.loads(value)
        severity = alert["severity"]
        head = f"{alert['action'].upper():<7} {severity:<8} {alert['typology']:<12}"
        if alert.get("mode") == "shadow":
            head += " (shadow)"
        if colour:
            head = f"{_COLOURS.get(severity, '')}{head}{_RESET}"
        return (
            f"{head} {alert['account_id']}: {alert['summary']} "
            f"[rule {alert['rule_id']}@{alert['rule_version']}, alert {alert['alert_id'][:12]}]"
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return f"UNREADABLE alert record: {value[:200]!r}"


def describe_dead_letter(headers: list[tuple[str, bytes]]) -> str:
    """One line for a dead letter: where it came from and why it could not be screened."""
    h = {k: v.decode(errors="replace") for k, v in headers}
    return (
        f"DEAD-LETTER {h.get('sentinel.source.topic', '?')}[{h.get('sentinel.source.partition', '?')}]"
        f"@{h.get('sentinel.source.offset', '?')}: {h.get('sentinel.error.reason', '?')}: "
        f"{h.get('sentinel.error.detail', '')}"
    )


async def watch(
    settings: Settings,
    *,
    from_beginning: bool = False,
    out: TextIO = sys.stdout,
    stop_after: float | None = None,
) -> None:
    """Print alerts and dead letters as they arrive (until cancelled or ``stop_after`` seconds)."""
    consumer = clients.consumer(settings)  # of no group: a viewer must not move any group's offsets
    await consumer.start()
    # Fix the start position before saying "watching", so records produced after that
    # line are never missed: wait for the assignment, then resolve every position now.
    topics = {settings.alerts_topic, settings.dead_letter_topic}
    consumer.subscribe(list(topics))
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 10
    while {tp.topic for tp in consumer.assignment()} != topics:
        if loop.time() > give_up:
            await consumer.stop()
            missing = topics - {tp.topic for tp in consumer.assignment()}
            raise SystemExit(f"sentinel: topic(s) {', '.join(sorted(missing))} not found (run: sentinel topics create)")
        await asyncio.sleep(0.05)
    partitions = sorted(consumer.assignment())
    if from_beginning:
        await consumer.seek_to_beginning(*partitions)
    else:
        await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)
    print(f"watching {settings.alerts_topic} and {settings.dead_letter_topic} ...", file=out, flush=True)
    colour = out.isatty()
    deadline = loop.time() + stop_after if stop_after else None
    try:
        while deadline is None or loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == settings.alerts_topic:
                        line = describe_alert(record.value or b"", colour)
                    else:
                        line = describe_dead_letter(list(record.headers))
                    print(line, file=out, flush=True)
    finally:
        await consumer.stop()
