"""sentinel rescreen's core: one ordinary rule over the added addresses, by the one screening path."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.core.alerts import alert_id_for
from streams.core.lists import AddressList, ListEntry, ListInfo
from streams.core.rescreen import RULE_ID, RULE_VERSION, Rescreener, RescreenReport, retroactive_ruleset
from streams.core.screening import Record, Screening
from tests.factories import CLEAN_EVM, deposit, raw, withdrawal

DESIGNATED = "0x1234567890abcdef1234567890abcdef12345678"
NOW = datetime(2026, 11, 30, tzinfo=UTC)
ADDED = AddressList.from_entries(
    ListInfo("ofac_sdn", "OFAC SDN list", "sanctioned", "SDN Advanced XML", "2025-11-19"),
    [ListEntry(DESIGNATED, "Some Entity", (("programs", "DPRK3"), ("entry_event_date", "2025-06-01")))],
)


def rescreen(*events: bytes, jobs: int = 1) -> RescreenReport:
    report = RescreenReport()
    records = [Record("file", 0, n, None, line) for n, line in enumerate(events, start=1)]
    Rescreener(ADDED, clock=lambda: NOW).screen_all(records, report, jobs=jobs)
    return report


def test_a_deposit_from_and_a_withdrawal_to_an_added_address_are_found() -> None:
    report = rescreen(
        raw(deposit(event_id="d1", from_addresses=[DESIGNATED.upper().replace("0X", "0x")])),
        raw(withdrawal(event_id="w1", chain="ethereum", asset="ETH", to_address=DESIGNATED)),
        raw(deposit(event_id="clean", from_addresses=[CLEAN_EVM])),
        raw(deposit(event_id="inbound", to_address=DESIGNATED)),  # the exchange's own address: not a counterparty
    )
    assert [a.event_ids for a in report.alerts] == [["d1"], ["w1"]]
    alert = report.alerts[0]
    assert alert.alert_id == alert_id_for(RULE_ID, RULE_VERSION, ["d1"])  # the ids of earlier releases
    assert alert.retroactive and alert.rule_id == RULE_ID and alert.action == "freeze"
    assert alert.detected_at == NOW
    assert "Some Entity" in alert.summary and "DPRK3" in alert.summary and "designated 2025-06-01" in alert.summary
    # The same evidence shape as every other alert: the event, then the list matches.
    assert alert.evidence["event"]["event_id"] == "d1"
    [match] = alert.evidence["matches"]
    assert match["entry"]["entry_event_date"] == "2025-06-01" and match["list"]["version"] == "2025-11-19"


def test_a_resent_event_is_found_once_and_bad_lines_naming_an_added_address_are_counted() -> None:
    hit = raw(deposit(event_id="d1", from_addresses=[DESIGNATED]))
    cut_short = hit[: hit.index(DESIGNATED.encode()) + 50]
    report = rescreen(hit, hit, b"{not json", cut_short)
    assert [a.event_ids for a in report.alerts] == [["d1"]]
    # The line that names no added address cannot be one the rule matches: it is read, not screened.
    assert (report.events, report.screened, report.invalid) == (4, 3, 1)
    assert "4 events" in report.table() and "3 named an added address" in report.table()


def spellings(address: str) -> list[bytes]:
    """Deposits naming ``address`` in ways the rule must see through."""
    escaped = address[:2] + "".join(f"\\u{ord(c):04x}" for c in address[2:])
    return [
        raw(deposit(event_id="plain", from_addresses=[CLEAN_EVM, address])),
        raw(deposit(event_id="upper", from_addresses=[address.upper().replace("0X", "0x")])),
        raw(deposit(event_id="escaped", from_addresses=[CLEAN_EVM])).replace(CLEAN_EVM.encode(), escaped.encode()),
    ]


def test_the_quick_look_lets_through_every_spelling_the_rule_matches() -> None:
    """Every record the rule matches is screened: skipping the others changes no alert."""
    base58 = "TU4tDFRvcKhAZ1jdihojmBWZqvJhQCnJ4F"  # case-sensitive: matched exactly
    added = AddressList.from_entries(ADDED.info, [*ADDED.entries.values(), ListEntry(base58, "Other Entity")])
    events = [
        *spellings(DESIGNATED),
        raw(withdrawal(event_id="tron", chain="tron", asset="TRX", to_address=base58)),
        raw(withdrawal(event_id="tron-case", chain="tron", asset="TRX", to_address=base58.lower())),  # not it
        raw(deposit(event_id="clean", from_addresses=[CLEAN_EVM])),
    ]
    records = [Record("file", 0, n, None, line) for n, line in enumerate(events, start=1)]
    looked = RescreenReport()
    Rescreener(added, clock=lambda: NOW).screen_all(records, looked)
    every_record = Screening(retroactive_ruleset(added), clock=lambda: NOW)  # the rule alone, no quick look
    everything = [alert for record in records for alert in every_record.screen_one(record).alerts]
    assert [a.event_ids for a in looked.alerts] == [["plain"], ["upper"], ["escaped"], ["tron"]]
    assert [a.to_json() for a in looked.alerts] == [a.to_json() for a in everything]
    assert looked.screened == 5  # the four and tron-case (the look ignores case); not the clean deposit


@pytest.mark.parametrize("jobs", [2, 3])
def test_accounts_shared_over_processes_give_the_one_process_report(jobs: int) -> None:
    """--jobs: each account's records stay in one process, alerts come back in record order."""
    events = []
    for n in range(60):
        hit = n % 3 == 0
        events.append(
            raw(
                deposit(event_id=f"d{n}", account_id=f"acct-{n % 7}", from_addresses=[DESIGNATED if hit else CLEAN_EVM])
            )
        )
    cut_short = events[0][: events[0].index(DESIGNATED.encode()) + 50]  # names the address: screened, invalid
    events += [events[0], events[3], b"{not json", b"[1]", cut_short]  # resends stay duplicates: same process
    one, many = rescreen(*events), rescreen(*events, jobs=jobs)
    assert (many.events, many.screened, many.invalid) == (one.events, one.screened, one.invalid) == (65, 23, 1)
    assert [a.alert_id for a in many.alerts] == [a.alert_id for a in one.alerts]
    assert len(one.alerts) == 20
