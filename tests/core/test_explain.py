"""`sentinel explain`: each shipped rule's verdict and its reason, from the engine's own evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from streams.core.allowlist import Allowlist, AllowlistChange
from streams.core.backtest import backtest_lines
from streams.core.events import wall_clock
from streams.core.explain import Explanation, explain_lines
from streams.core.rules.engine import Ruleset
from streams.core.rules.loader import load_ruleset
from streams.core.synthetic import synthetic_events
from tests.data import REPO
from tests.factories import CLEAN_EVM, RONIN_EXPLOITER, deposit, withdrawal

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
PHISHING = "0x80d7bb18521acbef32d7906502ebe94928690e93"


@pytest.fixture(scope="module")
def shipped() -> Ruleset:
    return load_ruleset([REPO / "rules"])


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def explain(ruleset: Ruleset, events: list[dict[str, Any]], event_id: str, **options: Any) -> Explanation:
    lines = [orjson.dumps(e) for e in events]
    [found] = explain_lines(lines, ruleset, clock=wall_clock, event_id=event_id, **options)
    return found


def test_a_clean_deposit_names_the_failing_condition_of_each_rule(shipped: Ruleset) -> None:
    found = explain(shipped, [deposit(event_id="d", usd_value="4500.00", timestamp=at(0))], "d")
    sanctions = found.verdict("ofac-sanctioned-sender")
    assert sanctions.outcome == "no_alert"
    assert sanctions.reason == f"not any address of from_addresses on list ofac_sdn (from_addresses: {CLEAN_EVM})"
    assert found.verdict("ofac-sanctioned-destination").reason == "looks at withdrawal events only"
    assert found.verdict("structuring").reason == "not counted: usd_value is 4500.00, so not usd_value gte 9000"
    assert found.verdict("velocity").reason.startswith("sum of usd_value in the 1h window: 4500.00 (1 event")
    assert found.verdict("high-risk-sender").reason == (
        f"not any address of from_addresses on list labelled_malicious_eth (from_addresses: {CLEAN_EVM})"
    )
    assert "ALERT" not in found.text()
    out = explain(shipped, [withdrawal(event_id="w", to_address="TXYZ", timestamp=at(0))], "w")
    assert out.verdict("ofac-sanctioned-destination").reason == (
        "not any address of to_address on list ofac_sdn (to_address: TXYZ)"
    )
    assert out.verdict("ofac-sanctioned-sender").outcome == "not_applicable"


def test_an_alert_is_the_engines_alert(shipped: Ruleset) -> None:
    events = [deposit(event_id="s", from_addresses=[RONIN_EXPLOITER], timestamp=at(0))]
    found = explain(shipped, events, "s")
    verdict = found.verdict("ofac-sanctioned-sender")
    [alert] = [a for a in backtest_lines([orjson.dumps(e) for e in events], shipped, clock=wall_clock).alerts]
    assert (verdict.outcome, verdict.alert_ids, verdict.reason) == ("alert", [alert.alert_id], alert.summary)
    assert "Lazarus Group" in verdict.reason
    # The labelled-malicious rule's own exception, named with its reason.
    both = [deposit(event_id="b", from_addresses=[PHISHING, RONIN_EXPLOITER], timestamp=at(0))]
    excepted = explain(shipped, both, "b").verdict("high-risk-sender")
    assert excepted.outcome == "excepted" and "already-sanctioned" in excepted.reason


@pytest.mark.parametrize(
    ("rule_id", "events", "expected"),
    [
        (
            "structuring",
            [deposit(event_id=f"d{n}", usd_value="9500", timestamp=at(60 * n)) for n in range(2)],
            "events in the 24h window: 2 (2 events since 2026-11-27T06:00:00Z), needs gte 3",
        ),
        (
            "velocity",
            [deposit(event_id=f"d{n}", usd_value="450000", timestamp=at(10 * n)) for n in range(2)],
            "sum of usd_value in the 1h window: 900000 (2 events since 2026-11-27T06:00:00Z), needs gte 1000000",
        ),
        (
            "fan-in",
            [deposit(event_id=f"d{n}", from_addresses=[f"0x{n + 1:040x}"], timestamp=at(n)) for n in range(9)],
            "distinct from_addresses in the 1h window: 9 (9 events since 2026-11-27T06:00:00Z), needs gte 10",
        ),
        (
            "fan-out",
            [withdrawal(event_id=f"d{n}", to_address=f"dest-{n}", timestamp=at(n)) for n in range(9)],
            "distinct to_address in the 1h window: 9 (9 events since 2026-11-27T06:00:00Z), needs gte 10",
        ),
        (
            "pass-through",
            [
                deposit(event_id="dep", usd_value="10000", timestamp=at(0)),
                withdrawal(event_id="d1", usd_value="7999.99", timestamp=at(5)),
            ],
            "a then step; start dep at 2026-11-27T06:00:00Z (usd_value 10000): usd_value 7999.99 so far"
            " of the 8000 needed (0.8 x) by 2026-11-27T06:30:00Z",
        ),
    ],
)
def test_a_near_miss_of_each_stateful_rule_names_the_value_and_the_threshold(
    shipped: Ruleset, rule_id: str, events: list[dict[str, Any]], expected: str
) -> None:
    last = events[-1]["event_id"]
    verdict = explain(shipped, events, last).verdict(rule_id)
    assert (verdict.outcome, verdict.reason) == ("no_alert", expected)


def test_suppression_lateness_and_sequence_steps_are_named(shipped: Ruleset) -> None:
    band = [deposit(event_id=f"d{n}", usd_value="9500", timestamp=at(60 * n)) for n in range(4)]
    suppressed = explain(shipped, band, "d3").verdict("structuring")
    assert suppressed.outcome == "suppressed"
    assert (
        suppressed.reason
        == "a finding, but within the 24h suppression period begun by the alert at 2026-11-27T08:00:00Z"
    )
    late = [*band[:3], deposit(event_id="old", usd_value="9500", timestamp=at(-60))]
    assert explain(shipped, late, "old").verdict("structuring").outcome == "no_alert"  # in file order it is not late
    small = [deposit(event_id="dep", usd_value="500", timestamp=at(0))]
    reason = explain(shipped, small, "dep").verdict("pass-through").reason
    assert reason == "not a step of the sequence (start: usd_value is 500, so not usd_value gte 1000)"


def test_an_allowlisted_finding_names_the_entry(shipped: Ruleset) -> None:
    entry = AllowlistChange(
        action="add", entry_id="al-abc123", by="ana", reason="own cold wallet", at=T0,
        until=T0 + timedelta(days=1), rule_id="high-risk-sender", address=PHISHING,
    )  # fmt: skip
    book = Allowlist()
    book.apply(entry)
    events = [deposit(event_id="p", from_addresses=[PHISHING], timestamp=at(1))]
    verdict = explain(shipped, events, "p", allowlist=book).verdict("high-risk-sender")
    assert verdict.outcome == "allowlisted"
    assert "al-abc123" in verdict.reason and "by ana: own cold wallet" in verdict.reason


def test_explain_raises_exactly_the_alerts_of_a_backtest(shipped: Ruleset) -> None:
    lines = list(synthetic_events(4000, seed=3, accounts=40))
    alerts = backtest_lines(lines, shipped, clock=wall_clock).alerts
    assert {"pass-through", "fan-in", "fan-out", "ofac-sanctioned-sender"} <= {a.rule_id for a in alerts}
    for account in sorted({a.account_id for a in alerts})[:6]:
        explained = explain_lines(lines, shipped, clock=wall_clock, account_id=account)
        from_explain = sorted(i for e in explained for v in e.verdicts for i in v.alert_ids)
        assert from_explain == sorted(a.alert_id for a in alerts if a.account_id == account)


def test_unknown_events_are_a_clear_error(shipped: Ruleset) -> None:
    with pytest.raises(ValueError, match="no event 'nope'"):
        explain_lines([orjson.dumps(deposit())], shipped, clock=wall_clock, event_id="nope")


def test_exposure_verdicts_name_the_hops_or_why_not(shipped: Ruleset) -> None:
    hop = "0x00000000000000000000000000000000000a0001"
    transfer = {
        "type": "transfer", "event_id": "t1", "chain": "ethereum", "tx_hash": "0x1", "asset": "ETH", "amount": "5",
        "from_address": RONIN_EXPLOITER, "to_address": hop, "timestamp": at(0),
    }  # fmt: skip
    events = [transfer, deposit(event_id="exposed", from_addresses=[hop], timestamp=at(10))]
    events.append(deposit(event_id="clean", timestamp=at(11)))
    events.append(deposit(event_id="early", account_id="acct-2", from_addresses=[hop], timestamp=at(-5)))
    alert = explain(shipped, events, "exposed").verdict("ofac-indirect-exposure")
    assert alert.outcome == "alert" and "1 hop(s) from Lazarus Group" in alert.reason
    clean = explain(shipped, events, "clean").verdict("ofac-indirect-exposure")
    assert clean.reason == f"{CLEAN_EVM} is not exposed within 3 hops of ofac_sdn at this time"
    # Paid from that address before the funds reached it: in time order, not yet exposed.
    early = explain(shipped, events, "early").verdict("ofac-indirect-exposure")
    assert (early.outcome, early.reason) == ("no_alert", f"{hop} is not exposed within 3 hops of ofac_sdn at this time")
