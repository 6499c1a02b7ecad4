"""Builders of valid events for tests; each test changes only what it is about."""

from __future__ import annotations

from typing import Any

import orjson

RONIN_EXPLOITER = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96"
SDN_TRON = "TWBAPzpPiZarfVsY2BLXeaLhNHurn4wkWG"
CLEAN_EVM = "0x1111111111111111111111111111111111111111"
EXCHANGE_EVM = "0x2222222222222222222222222222222222222222"


def deposit(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "deposit",
        "event_id": "dep-1",
        "account_id": "acct-1",
        "chain": "ethereum",
        "asset": "ETH",
        "amount": "1.5",
        "usd_value": "4500.00",
        "timestamp": "2026-11-27T06:00:00Z",
        "tx_hash": "0xabc",
        "from_addresses": [CLEAN_EVM],
        "to_address": EXCHANGE_EVM,
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


def withdrawal(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "withdrawal",
        "event_id": "wd-1",
        "account_id": "acct-1",
        "chain": "tron",
        "asset": "USDT",
        "amount": "100",
        "usd_value": "100",
        "timestamp": "2026-11-27T06:00:00Z",
        "to_address": "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf",
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


def raw(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def alert(**changes: Any) -> dict[str, Any]:
    """A freeze alert as a worker writes it (docs/alerts.md)."""
    value: dict[str, Any] = {
        "alert_id": "a" * 32,
        "rule_id": "ofac-sanctioned-sender",
        "rule_version": "1.0.0",
        "ruleset_version": "rs-test",
        "typology": "sanctions",
        "severity": "critical",
        "action": "freeze",
        "mode": "enforce",
        "account_id": "acct-1",
        "event_ids": ["dep-1"],
        "event_time": "2026-11-27T06:00:00Z",
        "detected_at": "2026-11-27T06:00:01Z",
        "summary": "Deposit from a sanctioned address: freeze.",
        "evidence": {"event": {"type": "deposit", "from_addresses": [RONIN_EXPLOITER]}, "matches": []},
        "retroactive": False,
        "schema_version": 1,
    }
    value.update(changes)
    return value
