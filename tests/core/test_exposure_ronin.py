"""The shipped indirect-exposure rule on the real Ronin / Lazarus Group trail (tests/data/ronin)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from streams.core.backtest import backtest_lines
from streams.core.events import format_timestamp, wall_clock
from streams.core.rules.engine import Ruleset
from streams.core.rules.loader import load_ruleset
from tests.data import REPO, RONIN
from tests.factories import deposit

RULE = "ofac-indirect-exposure"


@pytest.fixture(scope="module")
def shipped() -> Ruleset:
    return load_ruleset([REPO / "rules"])


def ronin_rows() -> list[dict[str, str]]:
    with (RONIN / "ronin_lazarus_transfers_normalised.csv").open() as handle:
        return list(csv.DictReader(handle))


def as_transfer(number: int, row: dict[str, str]) -> dict[str, Any]:
    """One row of the export as a chain transfer (the export has no tx hash: the row names it)."""
    moment = datetime.fromisoformat(row["timestamp_utc"]).replace(tzinfo=UTC)
    return {
        "type": "transfer", "event_id": f"ronin-{number}", "chain": "ethereum", "tx_hash": f"dune-1322519-row-{number}",
        "from_address": row["from_address"], "to_address": row["to_address"], "asset": "ETH",
        "amount": format(Decimal(row["value_eth"]), "f"), "timestamp": format_timestamp(moment),
    }  # fmt: skip


AFTER_ALL = datetime(2022, 10, 1, tzinfo=UTC)


def deposit_from(address: str, n: int, when: datetime = AFTER_ALL) -> dict[str, Any]:
    return deposit(
        event_id=f"dep-{n}", account_id=f"acct-{n}", from_addresses=[address], timestamp=format_timestamp(when)
    )


def exposure_alerts(ruleset: Ruleset, items: list[dict[str, Any]]) -> list[Any]:
    lines = [orjson.dumps(item) for item in items]
    report = backtest_lines(lines, ruleset, clock=wall_clock)
    assert not report.invalid, report.invalid_examples
    return [a for a in report.alerts if a.rule_id == RULE]


def test_every_lazarus_address_of_the_export_is_a_seed(shipped: Ruleset) -> None:
    sdn = shipped.lists["ofac_sdn"]
    lazarus = {r["from_address"] for r in ronin_rows() if r["from_is_sdn_lazarus"] == "1"}
    assert len(lazarus) == 8
    assert {sdn.get(a).label for a in lazarus} == {"Lazarus Group"}  # type: ignore[union-attr]


def test_first_hop_recipients_of_value_are_exposed_and_dust_senders_are_not(shipped: Ruleset) -> None:
    rows = ronin_rows()
    transfers = [as_transfer(n, row) for n, row in enumerate(rows)]
    services = shipped.lists["services"]
    # The oracle, from the export's own flags: non-SDN recipients of value from an SDN address.
    recipients = sorted(
        {r["to_address"] for r in rows if r["from_is_sdn_lazarus"] == "1" and r["to_is_sdn_lazarus"] == "0"
         and Decimal(r["value_eth"]) > 0 and services.get(r["to_address"]) is None}
    )  # fmt: skip
    zero_only = sorted(
        {r["to_address"] for r in rows if r["from_is_sdn_lazarus"] == "1" and r["to_is_sdn_lazarus"] == "0"}
        - set(recipients)
    )
    dust_senders = sorted({r["from_address"] for r in rows if r["to_is_sdn_lazarus"] == "1"} - set(recipients))
    assert len(recipients) == 54 and len(dust_senders) > 100
    deposits = [deposit_from(a, n) for n, a in enumerate([*recipients, *zero_only, *dust_senders])]
    found = exposure_alerts(shipped, transfers + deposits)
    alerted = sorted(a.evidence["exposure"]["address"] for a in found)
    assert alerted == recipients
    assert {(a.evidence["exposure"]["hops"], a.evidence["exposure"]["entity"]) for a in found} == {(1, "Lazarus Group")}
    assert all(a.typology == "indirect_exposure" and "Lazarus Group (OFAC SDN list, DPRK3)" in a.summary for a in found)


def peel_tranche_trail() -> tuple[list[dict[str, Any]], list[str], datetime]:
    """The export's transfers, then one of the 3,003.3 ETH peel tranches of May 2022 followed by
    three generated hops: (transfers, the four receiving addresses, the tranche's time)."""
    rows = ronin_rows()
    peel = next(r for r in rows if r["from_is_sdn_lazarus"] == "1" and r["value_eth"].startswith("3003.3"))
    start = datetime.fromisoformat(peel["timestamp_utc"]).replace(tzinfo=UTC)
    hops = [peel["to_address"]] + [f"0x{0xFEED00 + n:040x}" for n in range(1, 4)]
    generated = [
        {**as_transfer(1000 + n, {**peel, "from_address": hops[n - 1], "to_address": hops[n], "value_eth": "1000"}),
         "timestamp": format_timestamp(start + timedelta(hours=n))}
        for n in range(1, 4)
    ]  # fmt: skip
    return [as_transfer(n, row) for n, row in enumerate(rows)] + generated, hops, start


def test_a_peel_tranche_followed_two_more_hops(shipped: Ruleset) -> None:
    transfers, hops, start = peel_tranche_trail()
    deposits = [deposit_from(address, n, start + timedelta(days=1)) for n, address in enumerate(hops)]
    found = exposure_alerts(shipped, transfers + deposits)
    assert [(a.evidence["exposure"]["address"], a.evidence["exposure"]["hops"]) for a in found] == [
        (hops[0], 1), (hops[1], 2), (hops[2], 3)
    ]  # fmt: skip
    path = found[2].evidence["exposure"]["path"]
    assert [hop["to"] for hop in path] == hops[:3] and path[0]["tx_hash"].startswith("dune-1322519-row-")


def test_a_payment_made_before_the_tranche_arrived_is_not_exposed(shipped: Ruleset) -> None:
    rows = ronin_rows()
    first = min(
        (r for r in rows if r["from_is_sdn_lazarus"] == "1" and Decimal(r["value_eth"]) > 0),
        key=lambda r: r["timestamp_utc"],
    )
    when = datetime.fromisoformat(first["timestamp_utc"]).replace(tzinfo=UTC)
    items = [as_transfer(n, r) for n, r in enumerate(rows)] + [
        deposit_from(first["to_address"], 0, when - timedelta(hours=1))
    ]
    assert exposure_alerts(shipped, items) == []
