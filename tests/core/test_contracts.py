"""The JSON Schemas in docs/schemas agree with the code that parses events and writes alerts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from streams.core.backtest import backtest_file
from streams.core.events import EventError, wall_clock
from streams.core.inputs import parse_input
from streams.core.rules.loader import load_ruleset
from tests.data import REPO
from tests.factories import deposit, raw, withdrawal

SCHEMAS = REPO / "docs" / "schemas"
DEMO = REPO / "deploy" / "demo" / "demo-feed.jsonl"


def validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)  # type: ignore[no-any-return]


def schema_accepts(event: dict[str, Any]) -> bool:
    return validator(event.get("type", "deposit")).is_valid(event)


def parser_accepts(event: dict[str, Any]) -> bool:
    try:
        parse_input(raw(event))
    except EventError:
        return False
    return True


def transfer(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "transfer", "event_id": "0xabc:3", "chain": "ethereum", "tx_hash": "0xabc", "log_index": 3,
        "from_address": "0x098B716B8Aaf21512996dC57EB0615e2383E2f96",
        "to_address": "0x1111111111111111111111111111111111111111", "asset": "USDT",
        "token_contract": "0xdac17f958d2ee523a2206206994597c13d831ec7", "amount": "12.5",
        "timestamp": "2022-03-29T12:00:00Z", "block": 14480000,
    }  # fmt: skip
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


@pytest.mark.parametrize(
    "event",
    [
        transfer(),
        transfer(amount="0"),
        transfer(token_contract=..., log_index=..., block=..., asset="ETH", usd_value="3400.10"),
        transfer(amount="-1"),
        transfer(amount=1),
        transfer(tx_hash=...),
        transfer(from_address=...),
        transfer(log_index=-1),
        transfer(block="1"),
        transfer(to_address="has space"),
        transfer(chain="dogechain"),
        transfer(event_id="t\n1"),
    ],
)
def test_transfer_schema_and_parser_agree(event: dict[str, Any]) -> None:
    assert schema_accepts(event) == parser_accepts(event)


@pytest.mark.parametrize(
    "event",
    [
        deposit(),
        deposit(usd_value=..., timestamp="2026-11-27T06:00:00.123456789Z"),
        deposit(from_addresses=["a", "b", "c"], chain="bitcoin"),
        withdrawal(),
        withdrawal(tx_hash="0xdef", usd_value="0"),
        # schema-expressible bad input: both refuse it
        deposit(amount="-1"),
        deposit(amount="1" * 40),
        deposit(amount=1.5),
        deposit(amount="1e5"),
        deposit(chain="dogechain"),
        deposit(from_addresses=[]),
        deposit(event_id=...),
        deposit(timestamp="2026-11-27T06:00:00+02:00"),
        deposit(to_address="has space"),
        deposit(account_id="a\u0000b"),
        deposit(from_addresses=["0xab\u001b"]),
        withdrawal(event_id="w\n1"),
        withdrawal(to_address=...),
    ],
)
def test_schema_and_parser_agree(event: dict[str, Any]) -> None:
    assert schema_accepts(event) == parser_accepts(event)


def test_demo_feed_matches_the_schemas() -> None:
    for line in DEMO.read_bytes().splitlines():
        event = orjson.loads(line)
        assert schema_accepts(event) == parser_accepts(event), line


def test_alerts_match_the_alert_schema(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    report = backtest_file(DEMO, load_ruleset([REPO / "rules"]), out, clock=wall_clock)
    alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(alerts) == report.alert_count
    shown = {"ofac-sanctioned-sender", "ofac-sanctioned-destination", "pass-through", "ofac-indirect-exposure"}
    assert shown <= {a["rule_id"] for a in alerts}
    check = validator("freeze-alert")
    for alert in alerts:
        check.validate(alert)
