from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.core.alerts import alert_id_for
from streams.core.events import event_from_dict, wall_clock
from streams.core.rules.loader import load_ruleset
from tests.data import REPO
from tests.factories import CLEAN_EVM, RONIN_EXPLOITER, SDN_TRON, deposit, withdrawal

FIXED = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def shipped():  # type: ignore[no-untyped-def]
    return load_ruleset([REPO / "rules"])


def test_ronin_exploiter_deposit_is_a_critical_freeze(shipped) -> None:  # type: ignore[no-untyped-def]
    event = event_from_dict(deposit(from_addresses=[CLEAN_EVM, RONIN_EXPLOITER.lower()]))
    [alert] = shipped.evaluate([event], now=lambda: FIXED)
    assert (alert.rule_id, alert.typology, alert.severity, alert.action, alert.mode) == (
        "ofac-sanctioned-sender",
        "sanctions",
        "critical",
        "freeze",
        "enforce",
    )
    assert alert.event_ids == ["dep-1"] and alert.account_id == "acct-1"
    assert alert.alert_id == alert_id_for("ofac-sanctioned-sender", "1.0.0", ["dep-1"])
    assert alert.detected_at == FIXED and alert.event_time == event.timestamp
    [match] = alert.evidence["matches"]
    assert match["address"] == RONIN_EXPLOITER.lower()
    assert match["entry"] == {
        "address": RONIN_EXPLOITER,
        "label": "Lazarus Group",
        "sdn_profile_id": "27307",
        "programs": "DPRK3",
        "entry_event_date": "2019-09-13",
        "asset": "ETH",
    }
    assert match["list"]["version"] == "2025-11-19"
    assert "Lazarus Group" in alert.summary and "acct-1" in alert.summary and "2025-11-19" in alert.summary


def test_clean_deposit_raises_nothing(shipped) -> None:  # type: ignore[no-untyped-def]
    assert shipped.evaluate([event_from_dict(deposit())], now=wall_clock) == []


def test_sanctioned_destination_only_for_withdrawals(shipped) -> None:  # type: ignore[no-untyped-def]
    [alert] = shipped.evaluate([event_from_dict(withdrawal(to_address=SDN_TRON))], now=wall_clock)
    assert alert.rule_id == "ofac-sanctioned-destination"
    # A deposit *to* that address is the exchange's own address; the rule looks at senders only.
    assert shipped.evaluate([event_from_dict(deposit(to_address=SDN_TRON))], now=wall_clock) == []


def test_tron_base58_is_case_sensitive(shipped) -> None:  # type: ignore[no-untyped-def]
    assert shipped.evaluate([event_from_dict(withdrawal(to_address=SDN_TRON.lower()))], now=wall_clock) == []


def test_batch_gives_one_alert_per_sanctioned_event(shipped) -> None:  # type: ignore[no-untyped-def]
    events = [event_from_dict(deposit(event_id=f"d{i}", from_addresses=[RONIN_EXPLOITER])) for i in range(3)]
    alerts = shipped.evaluate([*events, event_from_dict(deposit(event_id="clean"))], now=wall_clock)
    assert [a.event_ids for a in alerts] == [["d0"], ["d1"], ["d2"]]
    assert len({a.alert_id for a in alerts}) == 3


def test_alert_ids_do_not_depend_on_the_clock_or_ruleset(shipped, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    event = event_from_dict(deposit(from_addresses=[RONIN_EXPLOITER]))
    first = shipped.evaluate([event], now=lambda: FIXED)[0]
    later = shipped.evaluate([event], now=wall_clock)[0]
    assert first.alert_id == later.alert_id


def write_pack(tmp_path: Path, condition: str, summary: str = "{amount} {asset}") -> None:
    (tmp_path / "pack.yaml").write_text(
        textwrap.dedent(f"""\
        required_engine_version: 1
        lists:
          - {{id: bad, name: Bad, category: custom, source: tests, version: "1",
              addresses: ["{RONIN_EXPLOITER}", "{SDN_TRON}"]}}
        rules:
          - id: r
            version: 2.1.0
            name: R
            description: test rule
            typology: velocity
            severity: low
            action: review
            mode: shadow
            events: [deposit, withdrawal]
            condition: {condition}
            summary: "{summary}"
        """)
    )


@pytest.mark.parametrize(
    ("condition", "event", "fires"),
    [
        ("{field: amount, gte: 1.5}", deposit(amount="1.5"), True),
        ("{field: amount, gt: 1.5}", deposit(amount="1.5"), False),
        ("{field: amount, lte: 1.5}", deposit(amount="1.5"), True),
        ("{field: amount, lt: 1.5}", deposit(amount="1.5"), False),
        ("{field: amount, eq: 1.50}", deposit(amount="1.5"), True),
        ("{field: amount, ne: 1.50}", deposit(amount="1.5"), False),
        ("{field: amount, ne: 2}", deposit(amount="1.5"), True),
        ("{field: amount, in: [1.50, 3]}", deposit(amount="1.5"), True),
        ("{field: amount, in: [0.1]}", deposit(amount="0.1"), True),  # as written, not as the float 0.1
        ("{field: amount, gte: 0.1}", deposit(amount="0.1"), True),
        ("{field: amount, not_in: [1.50, 3]}", deposit(amount="1.5"), False),
        ("{field: usd_value, lt: 10000}", deposit(usd_value=...), False),
        ("{field: usd_value, lt: 10000}", deposit(usd_value="9999.99"), True),
        ("{field: asset, in: [ETH, BTC]}", deposit(), True),
        ("{field: asset, not_in: [ETH, BTC]}", deposit(), False),
        ("{field: chain, eq: ethereum}", deposit(), True),
        ("{field: chain, ne: ethereum}", deposit(), False),
        ("{field: account_id, matches: '^acct-[0-9]+$'}", deposit(), True),
        ("{field: asset, matches: '(?i)^eth$'}", deposit(), True),
        # A pattern that takes CPython's backtracking re exponential time (26.8 s at 31
        # characters; this text would never finish): RE2 answers at once.
        ("{field: account_id, matches: '^(a+)+$'}", deposit(account_id="a" * 200 + "!"), False),
        ("{field: account_id, matches: '^(a+)+$'}", deposit(account_id="a" * 200), True),
        ("{field: to_address, eq: '0X2222222222222222222222222222222222222222'}", deposit(), False),
        # EVM addresses compare in their normalised (lower-case) form, in a list of values too.
        (
            "{field: to_address, in: ['0xabcdef0000000000000000000000000000000000']}",
            deposit(to_address="0xABCDEF0000000000000000000000000000000000"),
            True,
        ),
        (
            "{field: to_address, not_in: ['0xabcdef0000000000000000000000000000000000']}",
            deposit(to_address="0xABCDEF0000000000000000000000000000000000"),
            False,
        ),
        (
            "{field: to_address, eq: '0x2222222222222222222222222222222222222222'}",
            deposit(to_address="0x2222222222222222222222222222222222222222".upper().replace("0X", "0x")),
            True,
        ),
        (
            "{field: from_addresses, all_in_list: bad}",
            deposit(from_addresses=[RONIN_EXPLOITER, CLEAN_EVM]),
            False,
        ),
        ("{field: from_addresses, all_in_list: bad}", deposit(from_addresses=[RONIN_EXPLOITER]), True),
        ("{field: from_addresses, in_list: bad}", withdrawal(), False),
        ("{not: {field: amount, gte: 100}}", deposit(), True),
        ("{all: [{field: amount, gte: 1}, {field: asset, eq: BTC}]}", deposit(), False),
        ("{any: [{field: amount, gte: 1000}, {field: asset, eq: ETH}]}", deposit(), True),
        ("{any: [{field: amount, gte: 1000}, {field: asset, eq: BTC}]}", deposit(), False),
    ],
)
def test_condition_operators(tmp_path: Path, condition: str, event: dict, fires: bool) -> None:  # type: ignore[type-arg]
    write_pack(tmp_path, condition)
    alerts = load_ruleset([tmp_path]).evaluate([event_from_dict(event)], now=wall_clock)
    assert bool(alerts) is fires
    if alerts:
        assert alerts[0].mode == "shadow" and alerts[0].rule_version == "2.1.0"


def test_any_gathers_the_evidence_of_every_branch_that_holds(tmp_path: Path) -> None:
    write_pack(tmp_path, "{any: [{field: from_addresses, in_list: bad}, {field: to_address, in_list: bad}]}")
    event = deposit(from_addresses=[RONIN_EXPLOITER], to_address=RONIN_EXPLOITER)
    [alert] = load_ruleset([tmp_path]).evaluate([event_from_dict(event)], now=wall_clock)
    assert [match["field"] for match in alert.evidence["matches"]] == ["from_addresses", "to_address"]


def test_summary_is_substitution_not_code(tmp_path: Path) -> None:
    write_pack(tmp_path, "{field: amount, gte: 0}", summary="{amount.__class__} {amount} {asset!r} {account_id}")
    [alert] = load_ruleset([tmp_path]).evaluate([event_from_dict(deposit())], now=wall_clock)
    assert alert.summary == "{amount.__class__} 1.5 {asset!r} acct-1"


def test_disabled_rules_do_not_run(tmp_path: Path) -> None:
    write_pack(tmp_path, "{field: amount, gte: 0}")
    path = tmp_path / "pack.yaml"
    path.write_text(path.read_text().replace("    mode: shadow\n", "    mode: shadow\n    enabled: false\n"))
    assert load_ruleset([tmp_path]).evaluate([event_from_dict(deposit())], now=wall_clock) == []


def test_later_directories_add_rules_and_can_use_earlier_lists(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "local.yaml").write_text(
        textwrap.dedent("""\
        required_engine_version: 1
        rules:
          - id: site-ofac-review
            version: 1.0.0
            name: Site copy
            description: a site rule using the shipped OFAC list
            typology: sanctions
            severity: high
            action: review
            events: [deposit]
            condition: {field: from_addresses, in_list: ofac_sdn}
            summary: "{matched_label}"
        """)
    )
    ruleset = load_ruleset([REPO / "rules", site])
    alerts = ruleset.evaluate([event_from_dict(deposit(from_addresses=[RONIN_EXPLOITER]))], now=wall_clock)
    assert sorted(a.rule_id for a in alerts) == ["ofac-sanctioned-sender", "site-ofac-review"]


def test_a_cluster_list_names_its_entity(tmp_path: Path) -> None:
    (tmp_path / "lazarus.txt").write_text(f"# Lazarus Group cluster\n{RONIN_EXPLOITER}\n")
    (tmp_path / "pack.yaml").write_text(
        textwrap.dedent("""\
        required_engine_version: 1
        lists:
          - {id: lazarus, name: Lazarus cluster, category: sanctioned, source: tests, version: "1",
             file: lazarus.txt, entity: Lazarus Group}
        rules:
          - {id: r, version: 1.0.0, name: R, description: d, typology: sanctions, severity: critical,
             action: freeze, events: [deposit], condition: {field: from_addresses, in_list: lazarus},
             summary: "from {matched_label}"}
        """)
    )
    [alert] = load_ruleset([tmp_path]).evaluate(
        [event_from_dict(deposit(from_addresses=[RONIN_EXPLOITER]))], now=wall_clock
    )
    assert alert.summary == "from Lazarus Group"
    assert alert.evidence["matches"][0]["entry"]["label"] == "Lazarus Group"
