"""The OFAC SDN Advanced XML importer, checked against the reference CSVs derived from the same files."""

from __future__ import annotations

import csv
import functools
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.core.chains import normalise_address
from streams.core.lists import read_meta
from streams.core.ofac import ImportReport, address_format, diff_lists, read_sdn_advanced, write_list
from streams.core.rescreen import added_between, load_sdn_list, report_to_list
from streams.core.rules.loader import load_ruleset
from tests.data import OFAC_REFERENCE, OFAC_XML, REPO

XML = {date: OFAC_XML / f"sdn_advanced_{date}.xml.bz2" for date in ("2025-03-04", "2025-11-19")}
REFERENCE = {date: OFAC_REFERENCE / f"sdn_digital_currency_addresses_with_entities_{date}.csv" for date in XML}


@functools.cache
def sdn(date: str) -> ImportReport:
    """Each file is read once per test session (about ten seconds each)."""
    return read_sdn_advanced(XML[date])


@pytest.fixture(params=sorted(XML))
def imported(request):  # type: ignore[no-untyped-def]
    return request.param, sdn(request.param)


def test_import_reproduces_the_reference_per_entity(imported) -> None:  # type: ignore[no-untyped-def]
    date, report = imported
    rows = list(csv.DictReader(REFERENCE[date].open(encoding="utf-8")))
    expected: dict[str, set[str]] = {}
    for row in rows:
        expected.setdefault(row["sdn_profile_id"], set()).add(normalise_address(row["address"]))
    got: dict[str, set[str]] = {}
    for entry in report.addresses:
        got.setdefault(entry.profile_id, set()).add(entry.key)
    assert got == expected
    assert report.issue_date == date
    reference = {r["sdn_profile_id"]: (r["sdn_primary_name"], r["programs"], r["entry_event_date"]) for r in rows}
    for entry in report.addresses:
        assert (entry.name, ";".join(entry.programs), entry.entry_date) == reference[entry.profile_id]


def test_asset_labels_are_merged_and_formats_classified(imported) -> None:  # type: ignore[no-untyped-def]
    _, report = imported
    assert report.duplicates > 0  # an address listed under ETH, USDC and USDT is one row
    multi = [a for a in report.addresses if len(a.assets) > 1]
    assert any(address_format(a.address) == "evm" and {"ETH", "USDT"} <= a.assets for a in multi)
    tron_under_btc = [a for a in report.addresses if "XBT" in a.assets and address_format(a.address) == "tron"]
    assert tron_under_btc, "the XBT row holding a Tron address is classified by its format"
    assert {address_format(a.address) for a in report.unclassified} == {None}


def test_lazarus_group_is_a_cluster_with_the_ronin_exploiter() -> None:
    report = sdn("2025-11-19")
    lazarus = [a for a in report.addresses if a.profile_id == "27307"]
    assert {a.name for a in lazarus} == {"Lazarus Group"} and len(lazarus) >= 8
    assert "0x098B716B8Aaf21512996dC57EB0615e2383E2f96" in {a.address for a in lazarus}
    assert lazarus[0].programs == ["DPRK3"]


def test_diff_shows_the_tornado_cash_delisting() -> None:
    old, new = report_to_list(sdn("2025-03-04"), "old"), report_to_list(sdn("2025-11-19"), "new")

    def by_key(lst):  # type: ignore[no-untyped-def]
        return {k: (e.address, e.label) for k, e in lst.entries.items()}

    changes = {c.entity: c for c in diff_lists(by_key(old), by_key(new))}
    tornado = changes["TORNADO CASH"]
    assert len(tornado.removed) == 90 and tornado.added == []
    assert all(address_format(a) == "evm" for a in tornado.removed)
    assert sum(len(c.added) for c in changes.values()) == len(added_between(old, new)) == 134
    assert sum(len(c.removed) for c in changes.values()) == 90


def test_written_list_loads_with_its_issue_date_as_version(tmp_path: Path) -> None:
    report = sdn("2025-03-04")
    rules = tmp_path / "rules"
    (rules / "lists").mkdir(parents=True)
    write_list(report, rules / "lists" / "ofac-sdn.csv", "test import", imported_at=time.time())
    assert read_meta(rules / "lists" / "ofac-sdn.csv")["version"] == "2025-03-04"  # type: ignore[index]
    (rules / "sanctions.yaml").write_text((REPO / "rules" / "sanctions.yaml").read_text())
    ruleset = load_ruleset([rules])
    assert ruleset.lists["ofac_sdn"].info.version == "2025-03-04"
    assert ruleset.lists["ofac_sdn"].info.source == "test import"


def test_shipped_list_is_the_import_of_the_2025_11_19_file() -> None:
    shipped = load_sdn_list(REPO / "rules" / "lists" / "ofac-sdn.csv")
    fresh = report_to_list(sdn("2025-11-19"), "fresh")
    assert shipped.entries.keys() == fresh.entries.keys() and shipped.info.version == "2025-11-19"


def test_import_refuses_a_file_that_is_not_sdn_xml(tmp_path: Path) -> None:
    bogus = tmp_path / "sdn.xml"
    bogus.write_text("this is not xml")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.commands.cli",
            "lists",
            "import-ofac",
            str(bogus),
            "--output",
            str(tmp_path / "o.csv"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode != 0 and "not a readable SDN Advanced XML file" in result.stderr
    assert not (tmp_path / "o.csv").exists()
