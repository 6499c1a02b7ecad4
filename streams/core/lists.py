"""Address lists: sanctioned addresses, exploit and phishing labels, clusters of entities.

A list is versioned reference data with a source and a date. Entries are indexed by
their normalised address (see :mod:`streams.core.chains`), keep the original spelling for
display, and may carry a label (the entity, e.g. "Lazarus Group") and attributes
(e.g. SDN profile id, programs, listing date) taken from CSV columns.

Files: plain text (one address a line, ``#`` comments), JSON (an array of strings, or of
objects with an address key) or CSV with a header row.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streams.core.chains import normalise_address
from streams.core.errors import RuleError


class ListFileError(RuleError):
    """A list file that cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One address on a list, as the list spelled it."""

    address: str
    label: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()

    def as_evidence(self) -> dict[str, Any]:
        """What an alert shows of this entry."""
        out: dict[str, Any] = {"address": self.address}
        if self.label:
            out["label"] = self.label
        out.update(self.attributes)
        return out


@dataclass(frozen=True)
class ListInfo:
    """What a list is and where it came from."""

    id: str
    name: str
    category: str
    source: str
    version: str

    def as_evidence(self) -> dict[str, str]:
        """The provenance an alert carries so an analyst can check the finding."""
        return {
            "id": self.id,
            "name": self.name,
            "category": self.category,
            "source": self.source,
            "version": self.version,
        }


@dataclass
class AddressList:
    """A named, versioned set of addresses keyed by normalised address."""

    info: ListInfo
    #: Normalised address -> entry: a dict, or for very large EVM lists a compact index
    #: (see :mod:`streams.core.compact_lists`).
    entries: Mapping[str, ListEntry] = field(default_factory=dict)
    #: Digest of the content, so a ruleset's version changes when a list does.
    digest: str = ""
    #: Entries whose normalised form collided with an earlier one (kept: the first).
    duplicates: int = 0

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> ListEntry | None:
        """The entry for a normalised address, or ``None``."""
        return self.entries.get(key)

    @classmethod
    def from_entries(cls, info: ListInfo, entries: Iterable[ListEntry]) -> AddressList:
        """Index ``entries``; the first spelling of a duplicated address wins."""
        index: dict[str, ListEntry] = {}
        digest = hashlib.sha256()
        duplicates = 0
        for entry in entries:
            key = normalise_address(entry.address)
            if not key:
                continue
            if key in index:
                duplicates += 1
                continue
            index[key] = entry
            digest.update(key.encode())
            digest.update(b"\n")
            if entry.label:
                digest.update(entry.label.encode())
        return cls(info, index, digest.hexdigest()[:16], duplicates)


def read_entries(
    path: Path,
    fmt: str | None = None,
    *,
    address_column: str = "address",
    label_column: str | None = None,
    attribute_columns: tuple[str, ...] = (),
) -> Iterator[ListEntry]:
    """Yield the entries of a list file; the format defaults to the file's extension."""
    fmt = fmt or path.suffix.lstrip(".").lower()
    try:
        if fmt == "txt":
            yield from _text_entries(path)
        elif fmt == "json":
            yield from _json_entries(path, address_column, label_column)
        elif fmt == "csv":
            yield from _csv_entries(path, address_column, label_column, attribute_columns)
        else:
            raise ListFileError(f"{path}: unknown list format {fmt!r} (use txt, csv or json)")
    except OSError as exc:
        raise ListFileError(f"{path}: cannot read list file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ListFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _text_entries(path: Path) -> Iterator[ListEntry]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            address = line.split("#", 1)[0].strip()
            if address:
                yield ListEntry(address)


def _json_entries(path: Path, address_key: str, label_key: str | None) -> Iterator[ListEntry]:
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ListFileError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ListFileError(f"{path}: expected a JSON array of addresses")
    for position, item in enumerate(data):
        if isinstance(item, str):
            yield ListEntry(item)
        elif isinstance(item, Mapping) and isinstance(item.get(address_key), str):
            label = item.get(label_key) if label_key else None
            yield ListEntry(item[address_key], str(label) if label is not None else None)
        else:
            raise ListFileError(
                f"{path}: item {position} is neither an address string nor an object with {address_key!r}"
            )


def _csv_entries(
    path: Path, address_column: str, label_column: str | None, attribute_columns: tuple[str, ...]
) -> Iterator[ListEntry]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        for wanted in (address_column, label_column, *attribute_columns):
            if wanted and wanted not in header:
                raise ListFileError(f"{path}:1: column {wanted!r} not in header ({', '.join(header) or 'empty'})")
        for row in reader:
            address = (row.get(address_column) or "").strip()
            if not address:
                raise ListFileError(f"{path}:{reader.line_num}: empty {address_column!r}")
            label = (row.get(label_column) or "").strip() or None if label_column else None
            attributes = tuple((name, row.get(name) or "") for name in attribute_columns)
            yield ListEntry(address, label, attributes)


def meta_path(list_file: Path) -> Path:
    """Where a list file's metadata sidecar lives."""
    return list_file.with_name(list_file.name + ".meta.json")


def read_meta(list_file: Path) -> dict[str, Any] | None:
    """The sidecar metadata of a list file, if it has one."""
    path = meta_path(list_file)
    if not path.exists():
        return None
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data
