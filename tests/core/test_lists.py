from __future__ import annotations

from pathlib import Path

import pytest

from streams.core.chains import normalise_address
from streams.core.lists import AddressList, ListEntry, ListFileError, ListInfo, read_entries
from tests.data import OFAC_PUBLISHED, REPO

INFO = ListInfo("t", "Test list", "custom", "tests", "2026-11-27")
SHIPPED_OFAC = REPO / "rules" / "lists" / "ofac-sdn.csv"


def test_text_list_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text(
        "# header\n0xAbC0000000000000000000000000000000000001  # note\n\n1BoatSLRHtKNngkdXEeobR76b53LETtpyT\n"
    )
    entries = list(read_entries(path))
    assert [e.address for e in entries] == [
        "0xAbC0000000000000000000000000000000000001",
        "1BoatSLRHtKNngkdXEeobR76b53LETtpyT",
    ]


def test_json_list_of_strings_and_objects(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('["x1", {"address": "x2", "name": "Entity"}]')
    entries = list(read_entries(tmp_path / "a.json", label_column="name"))
    assert entries == [ListEntry("x1"), ListEntry("x2", "Entity")]


def test_csv_list_with_label_and_attributes(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(
        'address,entity,program\n0xAA00000000000000000000000000000000000000,"Lazarus, Group",DPRK3\n'
    )
    [entry] = read_entries(tmp_path / "a.csv", label_column="entity", attribute_columns=("program",))
    assert entry.label == "Lazarus, Group"
    assert entry.attributes == (("program", "DPRK3"),)


def test_csv_missing_column_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("addr\nx\n")
    with pytest.raises(ListFileError, match=r"a\.csv:1: column 'address' not in header \(addr\)"):
        list(read_entries(tmp_path / "a.csv"))


def test_csv_empty_address_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text('address\nx\n""\n')
    with pytest.raises(ListFileError, match=r"a\.csv:3: empty 'address'"):
        list(read_entries(tmp_path / "a.csv"))


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("a.json", "{", "not valid JSON"),
        ("a.json", '{"a": 1}', "JSON array"),
        ("a.json", "[1]", "item 0"),
        ("a.xml", "<x/>", "unknown list format"),
        ("a.txt", b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_list_files(tmp_path: Path, name: str, content: str | bytes, words: str) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ListFileError, match=words):
        list(read_entries(path))


def test_missing_file_is_a_list_error(tmp_path: Path) -> None:
    with pytest.raises(ListFileError, match="cannot read"):
        list(read_entries(tmp_path / "nope.txt"))


def test_duplicates_by_normalised_address_keep_the_first() -> None:
    entries = [
        ListEntry("0xAAAA000000000000000000000000000000000000", "first"),
        ListEntry("0xaaaa000000000000000000000000000000000000", "second"),
    ]
    address_list = AddressList.from_entries(INFO, entries)
    assert len(address_list) == 1 and address_list.duplicates == 1
    entry = address_list.get("0xaaaa000000000000000000000000000000000000")
    assert entry is not None and entry.label == "first"


def test_digest_changes_with_content() -> None:
    a = AddressList.from_entries(INFO, [ListEntry("x1")])
    b = AddressList.from_entries(INFO, [ListEntry("x1"), ListEntry("x2")])
    assert a.digest != b.digest
    assert a.digest == AddressList.from_entries(INFO, [ListEntry("x1")]).digest


def test_shipped_ofac_list_has_every_published_address() -> None:
    """The shipped CSV covers every address of the per-asset lists it was derived with."""
    shipped = AddressList.from_entries(INFO, read_entries(SHIPPED_OFAC, label_column="sdn_primary_name"))
    published = set()
    for path in sorted(OFAC_PUBLISHED.glob("sanctioned_addresses_*.txt")):
        published |= {normalise_address(e.address) for e in read_entries(path)}
    assert len(published) > 700
    assert published == set(shipped.entries)
    ronin = shipped.get(normalise_address("0x098B716B8Aaf21512996dC57EB0615e2383E2f96"))
    assert ronin is not None and ronin.label == "Lazarus Group"
