from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from streams.core.allowlist import Allowlist, AllowlistChange, AllowlistError, changes_from_lines, parse_change
from streams.core.events import wall_clock
from streams.core.rules.engine import Ruleset
from streams.core.rules.loader import load_ruleset
from streams.core.rules.observer import CountingObserver
from streams.core.screening import Record, Screening
from tests.data import REPO
from tests.factories import CLEAN_EVM, RONIN_EXPLOITER, deposit, raw

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
OTHER_EVM = "0x3333333333333333333333333333333333333333"


@pytest.fixture(scope="module")
def shipped() -> Ruleset:
    return load_ruleset([REPO / "rules"])


def add(entry_id: str = "al-000001", *, at: datetime = T0, hours: float = 2, **scope: Any) -> AllowlistChange:
    scope = scope or {"rule_id": "structuring", "account_id": "acct-1"}
    return AllowlistChange(
        action="add", entry_id=entry_id, by="ana", reason="payroll", at=at, until=at + timedelta(hours=hours), **scope
    )


def revoke(entry_id: str, at: datetime) -> AllowlistChange:
    return AllowlistChange(action="revoke", entry_id=entry_id, by="bob", reason="case reopened", at=at)


def band(event_id: str, minutes: float, **changes: Any) -> bytes:
    """A deposit in the structuring band (9,000 to 10,000 USD), ``minutes`` after T0."""
    moment = (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    return raw(deposit(**{"event_id": event_id, "usd_value": "9500", "timestamp": moment, **changes}))


def screen(ruleset: Ruleset, allowlist: Allowlist, *values: bytes) -> tuple[list[list[str]], CountingObserver]:
    observer = CountingObserver()
    screening = Screening(ruleset, clock=wall_clock, observer=observer, allowlist=allowlist)
    fired = []
    for offset, value in enumerate(values):
        outcome = screening.screen_one(Record("file", 0, offset, None, value))
        assert outcome.dead_letter is None, outcome.dead_letter
        fired.append([f"{a.rule_id}:{'+'.join(a.event_ids)}" for a in outcome.alerts])
    return fired, observer


def allowlist(*changes: AllowlistChange) -> Allowlist:
    book = Allowlist()
    assert book.apply_all(changes) == []
    return book


def test_an_entry_suppresses_the_finding_but_the_window_keeps_counting(shipped: Ruleset) -> None:
    fired, observer = screen(
        shipped, allowlist(add(hours=2)), band("a", 0), band("b", 60), band("c", 90), band("d", 180)
    )
    # c completes the window while the entry applies; d, after its expiry, finds all four
    # deposits counted (the entry did not stop the state) and no suppression period running.
    assert fired == [[], [], [], ["structuring:a+b+c+d"]]
    assert observer.allowlisted_findings == {("structuring", "al-000001"): 1}


def test_without_the_entry_the_same_input_alerts(shipped: Ruleset) -> None:
    fired, _ = screen(shipped, Allowlist(), band("a", 0), band("b", 60), band("c", 90))
    assert fired == [[], [], ["structuring:a+b+c"]]


def test_an_entry_covers_neither_events_before_it_was_added_nor_other_accounts(shipped: Ruleset) -> None:
    later = add(at=T0 + timedelta(minutes=100))
    assert screen(shipped, allowlist(later), band("a", 0), band("b", 60), band("c", 90))[0][2] == ["structuring:a+b+c"]
    other = add(rule_id="structuring", account_id="acct-2")
    assert screen(shipped, allowlist(other), band("a", 0), band("b", 60), band("c", 90))[0][2] == ["structuring:a+b+c"]


def test_an_entry_ends_at_its_expiry_exactly(shipped: Ruleset) -> None:
    """``until`` is the first moment the entry no longer covers, as its status says."""
    book = allowlist(add(hours=1.5))
    assert screen(shipped, book, band("a", 0), band("b", 60), band("c", 90))[0][2] == ["structuring:a+b+c"]
    assert book.status("al-000001", T0 + timedelta(minutes=90)) == "expired"
    book = allowlist(add(hours=1.5, at=T0 + timedelta(milliseconds=1)))  # until 90 minutes and 1 ms
    assert screen(shipped, book, band("a", 0), band("b", 60), band("c", 90))[0][2] == []


def test_a_typology_entry_covers_the_rules_of_that_typology(shipped: Ruleset) -> None:
    entry = add(typology="structuring", account_id="acct-1")
    assert screen(shipped, allowlist(entry), band("a", 0), band("b", 60), band("c", 90))[0] == [[], [], []]


def test_a_revoke_ends_the_entry_from_its_time_on(shipped: Ruleset) -> None:
    book = allowlist(add(hours=24), revoke("al-000001", T0 + timedelta(minutes=120)))
    fired, _ = screen(shipped, book, band("a", 0), band("b", 60), band("c", 90), band("d", 150))
    assert fired == [[], [], [], ["structuring:a+b+c+d"]]


def test_an_address_entry_needs_every_sender_covered(shipped: Ruleset) -> None:
    book = allowlist(add(rule_id="structuring", address=CLEAN_EVM.upper().replace("0X", "0x")))
    same = [band(i, n) for i, n in (("a", 0), ("b", 60), ("c", 90))]
    assert screen(shipped, book, *same)[0] == [[], [], []]
    mixed = [band(i, n, from_addresses=[CLEAN_EVM, OTHER_EVM]) for i, n in (("a", 0), ("b", 60), ("c", 90))]
    assert screen(shipped, book, *mixed)[0][2] == ["structuring:a+b+c"]


def test_a_non_overridable_rule_alerts_whatever_the_allowlist(shipped: Ruleset) -> None:
    book = allowlist(
        add(rule_id="ofac-sanctioned-sender", account_id="acct-1"),
        add("al-000002", typology="sanctions", account_id="acct-1"),
    )
    fired, observer = screen(shipped, book, band("x", 0, from_addresses=[RONIN_EXPLOITER], usd_value="5"))
    assert fired == [["ofac-sanctioned-sender:x"]]
    assert observer.allowlisted_findings == {}


def test_changes_apply_in_any_order_and_ids_are_not_reused() -> None:
    book = allowlist(revoke("al-000001", T0 + timedelta(minutes=30)), add(), add())  # replayed add after its revoke
    assert book.status("al-000001", T0 + timedelta(minutes=10)) == "active"
    assert book.status("al-000001", T0 + timedelta(minutes=40)) == "revoked"
    assert allowlist(add()).status("al-000001", T0 + timedelta(hours=3)) == "expired"
    with pytest.raises(AllowlistError, match="ids are not reused"):
        book.apply(add(hours=48))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (
            b'{"action": "add", "entry_id": "al-000001", "by": "a", "reason": "r", "at": "2026-11-27T06:00:00Z",'
            b' "rule_id": "x", "account_id": "a"}',
            "expiry",
        ),
        (
            b'{"action": "add", "entry_id": "al-000001", "by": "a", "reason": "r", "at": "2026-11-27T06:00:00Z",'
            b' "until": "2026-11-28T06:00:00Z", "rule_id": "x", "typology": "velocity", "account_id": "a"}',
            "exactly one",
        ),
        (
            b'{"action": "add", "entry_id": "../etc", "by": "a", "reason": "r", "at": "2026-11-27T06:00:00Z"}',
            "entry_id",
        ),
        (b'{"action": "revoke", "entry_id": "al-000001", "by": "a", "reason": "r", "at": "yesterday"}', "RFC 3339"),
        (
            b'{"action": "revoke", "entry_id": "al-000001", "by": "a", "reason": "", "at": "2026-11-27T06:00:00Z"}',
            "reason",
        ),
    ],
)
def test_malformed_changes_are_refused_with_the_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(AllowlistError, match=reason):
        parse_change(payload)


def test_a_change_survives_its_record_format() -> None:
    change = add(address=CLEAN_EVM, typology="velocity")
    assert parse_change(change.to_json()) == change
    assert change.record_key() == b"al-000001/add"
    assert changes_from_lines([change.to_json(), b"", revoke("al-000001", T0).to_json()])[1].action == "revoke"


def test_the_history_listing_reads_back_as_changes() -> None:
    listed = [
        orjson.dumps({"offset": 0, "key": "al-000001/add", "signed_by": "abc", **orjson.loads(add().to_json())}),
        orjson.dumps({"offset": 1, "key": "junk", "rejected": "not JSON"}),
        orjson.dumps({"offset": 2, "key": "al-000001/revoke", **orjson.loads(revoke("al-000001", T0).to_json())}),
    ]
    assert [c.action for c in changes_from_lines(listed)] == ["add", "revoke"]
    with pytest.raises(AllowlistError, match="line 2: not JSON"):
        changes_from_lines([add().to_json(), b"{"])
