"""Import of the official OFAC SDN Advanced XML into the project's list files.

``sentinel lists import-ofac SDN_ADVANCED.xml[.bz2]`` reads the file as a stream (one
party at a time, elements cleared as soon as they are read, so memory stays flat
however large the file), keeps every ``Digital Currency Address - <ASSET>`` feature
with its SDN profile id, the entity's primary name, party sub-type, programs and
listing date, and writes a CSV the rule engine loads as a cluster list (entity name as
label) plus a ``.meta.json`` sidecar with the issue date, which becomes the list version.

The asset label is not the chain (OFAC's USDT label holds Tron, EVM and Omni addresses;
one XBT row is a Tron address): every address is classified by its format, keyed by its
normalised form, and an address listed under several labels for one entity is one row
with the labels joined. Addresses whose format is not recognised are kept (OFAC listed
them) and reported.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import re
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, cast

import orjson

from streams.core.chains import normalise_address
from streams.core.lists import meta_path

FEATURE_PREFIX = "Digital Currency Address - "
CSV_COLUMNS = (
    "asset",
    "address",
    "sdn_profile_id",
    "sdn_primary_name",
    "party_subtype",
    "programs",
    "entry_event_date",
    "format",
)

#: Address formats by shape. The first match wins; order matters (bech32 before base58).
FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("evm", re.compile(r"0x[0-9a-fA-F]{40}\Z")),
    ("bech32", re.compile(r"(?:bc|ltc|tb|bcrt)1[02-9ac-hj-np-z]{6,87}\Z", re.IGNORECASE)),
    ("cashaddr", re.compile(r"(?:bitcoincash:)?[qp][02-9ac-hj-np-z]{41}\Z")),
    ("tron", re.compile(r"T[1-9A-HJ-NP-Za-km-z]{33}\Z")),
    ("monero", re.compile(r"[48][1-9A-HJ-NP-Za-km-z]{94}(?:[1-9A-HJ-NP-Za-km-z]{11})?\Z")),
    ("zcash-shielded", re.compile(r"zs1[02-9ac-hj-np-z]{60,}\Z")),
    ("zcash", re.compile(r"t[13][1-9A-HJ-NP-Za-km-z]{33}\Z")),
    ("ripple", re.compile(r"r[1-9A-HJ-NP-Za-km-z]{24,34}\Z")),
    ("base58", re.compile(r"[1-9A-HJ-NP-Za-km-z]{25,44}\Z")),  # Bitcoin legacy, Litecoin, Dash, Solana, ...
)


def address_format(address: str) -> str | None:
    """The format an address is written in, or ``None`` if no known one fits."""
    for name, pattern in FORMATS:
        if pattern.match(address):
            return name
    return None


@dataclass
class SdnAddress:
    """One digital-currency address of one SDN entry."""

    address: str
    assets: set[str]
    profile_id: str
    name: str
    party_subtype: str
    programs: list[str] = field(default_factory=list)
    entry_date: str = ""

    @property
    def key(self) -> str:
        return normalise_address(self.address)


@dataclass
class ImportReport:
    """What an import found."""

    issue_date: str
    addresses: list[SdnAddress]
    unclassified: list[SdnAddress]
    duplicates: int
    seconds: float

    @property
    def entities(self) -> int:
        return len({a.profile_id for a in self.addresses})

    def summary(self) -> str:
        by_format: dict[str, int] = defaultdict(int)
        for entry in self.addresses:
            by_format[address_format(entry.address) or "unclassified"] += 1
        lines = [
            f"SDN list issued {self.issue_date}: {len(self.addresses)} addresses of {self.entities} entities "
            f"({self.duplicates} duplicate listings merged), read in {self.seconds:.1f}s",
            "by format: " + ", ".join(f"{k} {v}" for k, v in sorted(by_format.items())),
        ]
        lines += [f"  unclassified: {a.address} ({', '.join(sorted(a.assets))}, {a.name})" for a in self.unclassified]
        return "\n".join(lines)


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".bz2":
        return bz2.open(path, "rb")
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _date(element: ET.Element | None) -> str:
    if element is None:
        return ""
    parts = {_local(child.tag): (child.text or "").strip() for child in element}
    try:
        return date(int(parts["Year"]), int(parts["Month"]), int(parts["Day"])).isoformat()
    except (KeyError, ValueError):
        return ""


def _iter_sdn(stream: IO[bytes]) -> Iterator[tuple[str, ET.Element]]:
    """(kind, element) for the reference values, parties and sanctions entries, one at a time.

    Every element is detached from its parent as soon as it ends (after being yielded, if
    it is one we want), so the tree never grows: memory stays that of one party.
    """
    wanted = {"DateOfIssue", "FeatureType", "PartySubType", "DistinctParty", "SanctionsEntry"}
    open_elements: list[ET.Element] = []
    inside_wanted = 0
    for event, element in ET.iterparse(stream, events=("start", "end")):  # noqa: S314 - see the import note
        name = _local(element.tag)
        if event == "start":
            open_elements.append(element)
            inside_wanted += name in wanted
            continue
        open_elements.pop()
        if name in wanted:
            inside_wanted -= 1
            yield name, element
        if inside_wanted == 0 and open_elements:
            open_elements[-1].remove(element)


def _party(element: ET.Element, features: dict[str, str], subtypes: dict[str, str]) -> list[SdnAddress]:
    profile = next((e for e in element.iter() if _local(e.tag) == "Profile"), None)
    if profile is None:
        return []
    found: list[tuple[str, str]] = []
    for feature in profile.iter():
        if _local(feature.tag) != "Feature":
            continue
        label = features.get(feature.get("FeatureTypeID", ""))
        if label is None:
            continue
        detail = next((e for e in feature.iter() if _local(e.tag) == "VersionDetail"), None)
        if detail is not None and detail.text and detail.text.strip():
            found.append((label, detail.text.strip()))
    if not found:
        return []
    name = ""
    for alias in profile.iter():
        if _local(alias.tag) == "Alias" and alias.get("Primary") == "true":
            name = " ".join((part.text or "").strip() for part in alias.iter() if _local(part.tag) == "NamePartValue")
            break
    profile_id = profile.get("ID", "")
    subtype = subtypes.get(profile.get("PartySubTypeID", ""), "")
    return [SdnAddress(address, {asset}, profile_id, name, subtype) for asset, address in found]


def read_sdn_advanced(path: Path) -> ImportReport:
    """Stream the SDN Advanced XML at ``path`` (plain, .bz2 or .gz) into an :class:`ImportReport`."""
    started = time.perf_counter()
    features: dict[str, str] = {}
    subtypes: dict[str, str] = {}
    issue_date = ""
    by_key: dict[tuple[str, str], SdnAddress] = {}
    duplicates = 0
    programs: dict[str, list[str]] = {}
    entry_dates: dict[str, str] = {}
    with _open(path) as stream:
        for kind, element in _iter_sdn(stream):
            if kind == "DateOfIssue":
                issue_date = _date(element)
            elif kind == "FeatureType":
                text = (element.text or "").strip()
                if text.startswith(FEATURE_PREFIX):
                    features[element.get("ID", "")] = text.removeprefix(FEATURE_PREFIX)
            elif kind == "PartySubType":
                subtypes[element.get("ID", "")] = (element.text or "").strip()
            elif kind == "DistinctParty":
                for entry in _party(element, features, subtypes):
                    key = (entry.profile_id, entry.key)
                    if key in by_key:
                        duplicates += 1
                        by_key[key].assets |= entry.assets
                    else:
                        by_key[key] = entry
            elif kind == "SanctionsEntry":
                profile_id = element.get("ProfileID", "")
                names = []
                for measure in element.iter():
                    if _local(measure.tag) == "SanctionsMeasure" and measure.get("SanctionsTypeID") == "1":
                        comment = next((c for c in measure if _local(c.tag) == "Comment"), None)
                        if comment is not None and comment.text:
                            names.append(comment.text.strip())
                programs[profile_id] = sorted(set(names))
                event = next((e for e in element if _local(e.tag) == "EntryEvent"), None)
                if event is not None:
                    entry_dates[profile_id] = _date(next((d for d in event if _local(d.tag) == "Date"), None))
    addresses = sorted(by_key.values(), key=lambda a: (a.name.lower(), a.profile_id, a.key))
    for entry in addresses:
        entry.programs = programs.get(entry.profile_id, [])
        entry.entry_date = entry_dates.get(entry.profile_id, "")
    unclassified = [a for a in addresses if address_format(a.address) is None]
    return ImportReport(issue_date, addresses, unclassified, duplicates, time.perf_counter() - started)


def write_list(report: ImportReport, output: Path, source: str, *, imported_at: float) -> None:
    """Write the list CSV and its ``.meta.json`` sidecar (issue date = list version).

    ``imported_at`` (Unix seconds) is when the list went live here: ``rescreen`` looks back to it.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for a in report.addresses:
        writer.writerow(
            [
                ";".join(sorted(a.assets)),
                a.address,
                a.profile_id,
                a.name,
                a.party_subtype,
                ";".join(a.programs),
                a.entry_date,
                address_format(a.address) or "unclassified",
            ]
        )
    # Write both files next to their final names and rename, so a watching worker never
    # loads half a list (it would refuse it, but need not see it at all).
    temporary = output.with_name(output.name + ".tmp")
    temporary.write_text(buffer.getvalue(), encoding="utf-8")
    meta = meta_path(output)
    meta_tmp = meta.with_name(meta.name + ".tmp")
    meta_tmp.write_bytes(
        orjson.dumps(
            {
                "version": report.issue_date,
                "source": source,
                "issued": report.issue_date,
                "imported_at": imported_at,
                "addresses": len(report.addresses),
                "entities": report.entities,
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    meta_tmp.replace(meta)
    temporary.replace(output)


@dataclass
class EntityChange:
    """Addresses added to and removed from one entity between two lists."""

    entity: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def diff_lists(old: dict[str, tuple[str, str]], new: dict[str, tuple[str, str]]) -> list[EntityChange]:
    """Per entity, the addresses only in ``new`` (added) and only in ``old`` (removed).

    Both maps go from normalised address to (address as listed, entity name).
    """
    changes: dict[str, EntityChange] = {}
    for key in new.keys() - old.keys():
        address, entity = new[key]
        changes.setdefault(entity, EntityChange(entity)).added.append(address)
    for key in old.keys() - new.keys():
        address, entity = old[key]
        changes.setdefault(entity, EntityChange(entity)).removed.append(address)
    for change in changes.values():
        change.added.sort()
        change.removed.sort()
    return sorted(changes.values(), key=lambda c: c.entity.lower())
