"""Screening before the funds leave: decisions are the stream's findings, on a copy of the state."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from streams.core.decisions import PROBE_ACCOUNT, screen_address, screen_withdrawal, state_copy, verdict_of
from streams.core.events import Withdrawal, parse_event
from streams.core.rules.engine import Ruleset
from streams.core.rules.loader import load_ruleset
from streams.core.rules.state import AccountState
from streams.core.rules.state_format import to_json
from streams.core.screening import Record, Screening
from tests.data import REPO
from tests.factories import CLEAN_EVM, RONIN_EXPLOITER, SDN_TRON, deposit, raw, withdrawal

NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset([REPO / "rules"])


def as_withdrawal(**changes: object) -> Withdrawal:
    event = parse_event(raw(withdrawal(**changes)), "withdrawal")
    assert isinstance(event, Withdrawal)
    return event


def test_a_withdrawal_to_an_ofac_address_is_blocked_with_the_alert_id_the_stream_gives(ruleset: Ruleset) -> None:
    result = screen_withdrawal(ruleset, as_withdrawal(to_address=SDN_TRON), AccountState(), clock)
    assert result.decision == "block"
    [finding] = [f for f in result.findings if f.rule_id == "ofac-sanctioned-destination"]
    streamed = Screening(ruleset, {"withdrawals": "withdrawal"}, clock=clock).screen_one(
        Record("withdrawals", 0, 0, b"acct-1", raw(withdrawal(to_address=SDN_TRON, tx_hash="0xfeed")))
    )
    assert [a.alert_id for a in streamed.alerts] == [a.alert_id for a in result.findings]
    assert result.as_json()["findings"][0]["alert_id"] == finding.alert_id


def test_a_withdrawal_draining_a_recent_deposit_is_blocked_and_the_live_state_is_untouched(ruleset: Ruleset) -> None:
    screening = Screening(ruleset, {"deposits": "deposit"}, clock=clock)
    screening.screen_one(Record("deposits", 0, 0, b"acct-1", raw(deposit(usd_value="10000.00"))))
    live = screening.state.account("acct-1", 0)
    before = orjson.dumps(to_json(live))
    drain = as_withdrawal(usd_value="8000.00", timestamp="2026-11-27T06:10:00Z", to_address=CLEAN_EVM)
    result = screen_withdrawal(ruleset, drain, state_copy(live), clock)
    assert result.decision == "block"
    assert [f.rule_id for f in result.findings] == ["pass-through"]
    assert orjson.dumps(to_json(live)) == before
    assert to_json(live)["rules"], "the deposit left state for the screen to see"


def test_a_clean_withdrawal_is_allowed(ruleset: Ruleset) -> None:
    result = screen_withdrawal(ruleset, as_withdrawal(), AccountState(), clock)
    assert result.decision == "allow"
    assert result.findings == ()
    assert result.as_json()["ruleset_version"] == ruleset.version


def test_shadow_findings_are_reported_and_decide_nothing(ruleset: Ruleset) -> None:
    result = screen_withdrawal(ruleset, as_withdrawal(to_address=SDN_TRON), AccountState(), clock)
    shadowed = [f.model_copy(update={"mode": "shadow"}) for f in result.findings]
    assert verdict_of(shadowed) == "allow"
    held = [f.model_copy(update={"action": "review"}) for f in result.findings]
    assert verdict_of(held) == "hold"


def test_an_address_screen_names_its_list_and_blocks(ruleset: Ruleset) -> None:
    result = screen_address(ruleset, "ethereum", RONIN_EXPLOITER.lower(), clock)
    assert result.decision == "block"
    assert [item["list"]["id"] for item in result.listed] == ["ofac_sdn"]
    assert all(f.account_id == PROBE_ACCOUNT for f in result.findings)
    clean = screen_address(ruleset, "ethereum", CLEAN_EVM, clock)
    assert (clean.decision, clean.listed, clean.findings) == ("allow", (), ())
