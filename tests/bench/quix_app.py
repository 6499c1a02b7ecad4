"""Row D's contestant: the four bench rules written with Quix Streams, as a Quix user would.

OFAC sanctioned sender (deposits), OFAC sanctioned destination (withdrawals), fan-out
(withdrawals: 10 distinct destinations in 1 h) and velocity (deposits: 1,000,000 USD in
1 h), with the semantics of the shipped rules (5 m late tolerance, entries kept per
account up to 10,000, one alert per rule and account per hour unless it is the alert
that began the period) so that its alert ids can be checked against the oracle. State
is Quix State (RocksDB with a changelog topic), processing at-least-once; the windows are
recomputed from the stored entries on every event, the way a state callback is usually
written. Validation and the list lookup reuse this project's event contract and list
loader, so both contestants do the same work per event.

Run by ``tests/bench/peer.py``; not part of the product.
"""

from __future__ import annotations

import argparse
import bisect
import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from quixstreams import Application, State

from streams.core.alerts import alert_id_for
from streams.core.events import EventError, EventType, parse_event, wall_clock
from streams.core.lists import AddressList
from streams.core.rules.loader import load_ruleset

HOUR_MS = 3_600_000
LATE_TOLERANCE_MS = 5 * 60_000
MAX_STATE = 10_000
VERSION = "1.0.0"


def window_alert(
    state: State, rule_id: str, t: int, event_id: str, value: Any, total: Callable[[list[list[Any]]], bool]
) -> str | None:
    """Add the event to the rule's 1-hour window; the alert id if the window now fires."""
    window = state.get(rule_id) or {"mark": None, "entries": [], "suppressed": None}
    mark = window["mark"]
    if mark is None or t > mark:
        window["mark"] = mark = t
    elif t < mark - LATE_TOLERANCE_MS:
        return None  # late: not counted
    entries = window["entries"]
    position = bisect.bisect_left(entries, [t, event_id], key=lambda e: e[:2])
    if position == len(entries) or entries[position][:2] != [t, event_id]:
        entries.insert(position, [t, event_id, value])
    entries = [e for e in entries if e[0] > mark - HOUR_MS][-MAX_STATE:]
    window["entries"] = entries
    fired = total(entries)
    alert_id = alert_id_for(rule_id, VERSION, [e[1] for e in entries]) if fired else None
    if alert_id is not None:
        last = window["suppressed"]
        if last is not None and last[0] <= mark < last[0] + HOUR_MS:
            alert_id = alert_id if last[1] == alert_id else None
        else:
            window["suppressed"] = [mark, alert_id]
    state.set(rule_id, window)
    return alert_id


def over_a_million(entries: list[list[Any]]) -> bool:
    return sum((Decimal(e[2]) for e in entries), Decimal(0)) >= 1_000_000


def ten_destinations(entries: list[list[Any]]) -> bool:
    return len({e[2] for e in entries}) >= 10


def screener(kind: EventType, ofac: AddressList) -> Callable[[bytes, Any, int, Any, State], list[dict[str, str]]]:
    """The state callback for one input topic: its event type's two rules."""

    def screen(value: bytes, key: Any, timestamp: int, headers: Any, state: State) -> list[dict[str, str]]:
        try:
            event = parse_event(value, kind, wall_clock())
        except EventError:
            return []  # the worker dead-letters these; they raise no alert either way
        if key != event.account_id.encode():
            return []
        out = []
        t = event.epoch_ms
        if kind == "deposit":
            if any(ofac.get(a) is not None for a in event.address_keys("from_addresses")):
                out.append(alert_id_for("ofac-sanctioned-sender", VERSION, [event.event_id]))
            if event.usd_value is not None:
                out.append(window_alert(state, "velocity", t, event.event_id, str(event.usd_value), over_a_million))
        else:
            if any(ofac.get(a) is not None for a in event.address_keys("to_address")):
                out.append(alert_id_for("ofac-sanctioned-destination", VERSION, [event.event_id]))
            [destination] = event.address_keys("to_address")
            out.append(window_alert(state, "fan-out", t, event.event_id, destination, ten_destinations))
        return [{"alert_id": a, "account_id": event.account_id} for a in out if a is not None]

    return screen


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("bootstrap", "group", "deposits", "withdrawals", "alerts", "rules", "state_dir"):
        parser.add_argument(f"--{name.replace('_', '-')}", required=True)
    args = parser.parse_args()
    ofac = load_ruleset([Path(args.rules)]).lists["ofac_sdn"]
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        processing_guarantee="at-least-once",
        # The worker commits after every batch; Quix's default is every 5 s, which would
        # add up to 5 s to a drain measured by the group's committed offsets.
        commit_interval=0.5,
        loglevel=logging.WARNING,
    )
    alerts = app.topic(args.alerts, value_serializer="json", key_serializer="bytes")
    for kind, name in (("deposit", args.deposits), ("withdrawal", args.withdrawals)):
        topic = app.topic(name, value_deserializer="bytes", key_deserializer="bytes")
        sdf = app.dataframe(topic)
        sdf = sdf.apply(screener(kind, ofac), stateful=True, expand=True, metadata=True)  # type: ignore[arg-type]
        sdf.to_topic(alerts)
    app.run()


if __name__ == "__main__":
    main()
