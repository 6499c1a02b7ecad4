"""The compact index of very large EVM lists answers exactly as the dict index does."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from streams.core import compact_lists
from streams.core.compact_lists import read_compact
from streams.core.events import wall_clock
from streams.core.lists import AddressList, ListInfo, read_entries
from streams.core.rules.loader import load_ruleset

INFO = ListInfo("big", "Big", "custom", "test", "1")


def addresses(count: int, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        digits = f"{rng.getrandbits(160):040x}"
        # Mixed case, as checksummed lists spell them; matching ignores case.
        out.append("0x" + "".join(c.upper() if rng.random() < 0.5 else c for c in digits))
    return out


def write(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.write_text("\n".join(lines) + end)
    return path


def test_compact_and_dict_indexes_agree(tmp_path: Path) -> None:
    spelled = addresses(3000)
    spelled += [spelled[10].lower(), spelled[20]]  # two duplicates, one spelled differently
    path = write(tmp_path / "big.txt", spelled)
    compact = read_compact(path, "Cluster X", minimum=1)
    assert compact is not None
    plain = AddressList.from_entries(INFO, (e.__class__(e.address, "Cluster X") for e in read_entries(path)))
    assert len(compact) == len(plain) == 3000
    assert compact.duplicates == plain.duplicates == 2
    assert set(compact) == set(plain.entries)
    for key in list(plain.entries)[:500]:
        assert compact.get(key) == plain.get(key)  # the first spelling wins in both
    assert compact.get(spelled[10].lower()).address == spelled[10]  # type: ignore[union-attr]
    absent = "0x" + "0" * 40
    assert compact.get(absent) is None and absent not in compact
    assert compact.get("not-an-address") is None
    with pytest.raises(KeyError):
        compact[absent]


def test_a_hash_collision_does_not_make_a_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compact = read_compact(write(tmp_path / "big.txt", addresses(50)), None, minimum=1)
    assert compact is not None
    other = "0x" + "1" * 40
    # Pretend the absent address hashes like a listed one: the row comparison must still refuse it.
    listed = next(iter(compact))
    monkeypatch.setattr(compact_lists, "hash", lambda value: hash(listed.encode()), raising=False)
    assert compact.get(listed) is not None
    assert compact.get(other) is None


@pytest.mark.parametrize(
    "lines",
    [
        ["0x" + "a" * 40, "# a comment"],
        ["0x" + "a" * 40, "0x" + "g" * 40],
        ["0x" + "a" * 40, "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"],
        ["0x" + "a" * 40, " 0x" + "b" * 39],
        ["0x" + "a" * 40, "0X" + "b" * 40],
    ],
)
def test_anything_but_plain_evm_lines_keeps_the_dict_index(tmp_path: Path, lines: list[str]) -> None:
    assert read_compact(write(tmp_path / "l.txt", lines), None, minimum=1) is None


def test_the_last_line_needs_no_newline(tmp_path: Path) -> None:
    compact = read_compact(write(tmp_path / "l.txt", addresses(5), end=""), None, minimum=1)
    assert compact is not None and len(compact) == 5


def test_a_ruleset_screens_with_a_compact_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.core.events import parse_event
    from tests.bench.memory import RULE_FILE
    from tests.factories import deposit, raw

    monkeypatch.setattr(compact_lists, "COMPACT_FROM", 10)
    listed = addresses(100)
    write(tmp_path / "generated.txt", listed)
    (tmp_path / "generated.yaml").write_text(RULE_FILE)
    ruleset = load_ruleset([tmp_path])
    assert isinstance(ruleset.lists["generated"].entries, compact_lists.CompactEntries)
    hit = parse_event(raw(deposit(from_addresses=[listed[7].lower()])))
    miss = parse_event(raw(deposit()))
    [alert] = ruleset.evaluate([hit], now=wall_clock)
    assert alert.evidence["matches"][0]["entry"]["address"] == listed[7]
    assert ruleset.evaluate([miss], now=wall_clock) == []


def test_changes_between_versions_are_counted_alike(tmp_path: Path) -> None:
    from streams.core.compact_lists import changed_counts

    first, second = addresses(400), addresses(400, seed=4)
    old_lines, new_lines = first[:300], first[100:] + second[:50]
    old = read_compact(write(tmp_path / "old.txt", old_lines), None, minimum=1)
    new = read_compact(write(tmp_path / "new.txt", new_lines), None, minimum=1)
    assert old is not None and new is not None
    plain_old = AddressList.from_entries(INFO, read_entries(tmp_path / "old.txt"))
    plain_new = AddressList.from_entries(INFO, read_entries(tmp_path / "new.txt"))
    expected = (150, 100)  # first[300:400] and 50 new ones added; first[:100] removed
    assert changed_counts(old, new) == expected
    assert changed_counts(plain_old.entries, plain_new.entries) == expected
