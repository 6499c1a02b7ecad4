"""A compact index for very large address lists (millions of EVM addresses).

A dict of address strings costs about 300 bytes an entry with its entry objects, so a
10-million-address list would need 3 GB. Here the list file's bytes are kept as they
are (43 bytes an address, in the list's own spelling) next to a sorted array of 64-bit
hashes of the normalised addresses and the row each hash came from: about 55 bytes an
entry. A lookup finds the hash by binary search and then compares the row itself, so a
hash collision can never make a false match.

Only plain-text lists whose every line is one EVM address (``0x`` + 40 hex digits) take
this form: their normalised key is their lower-case spelling, which can be computed for
the whole file at once. Any other list is indexed in a dict (see :mod:`streams.core.lists`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from streams.core.lists import ListEntry

#: Lists with fewer lines than this stay in a dict: it is faster, and small anyway.
COMPACT_FROM = 200_000
_ROW = 43  # "0x" + 40 hex digits + "\n"
_CHUNK = 1_000_000


class CompactEntries(Mapping[str, ListEntry]):
    """The entries of an all-EVM list file: normalised address -> :class:`ListEntry`."""

    def __init__(self, rows: bytes, label: str | None) -> None:
        self._rows = rows
        self._label = label
        count = len(rows) // _ROW
        hashes = np.empty(count, dtype=np.int64)
        for start in range(0, count, _CHUNK):
            stop = min(count, start + _CHUNK)
            keys = rows[start * _ROW : stop * _ROW].lower().split(b"\n")[:-1]
            hashes[start:stop] = np.fromiter(map(hash, keys), dtype=np.int64, count=stop - start)
        # Stable, so that among equal hashes the earlier row comes first: the first spelling
        # of a duplicated address is the one kept, as for dict-indexed lists.
        order = np.argsort(hashes, kind="stable")
        self._hashes = hashes[order]
        self._order = order.astype(np.uint32 if count < 2**32 else np.int64)
        del hashes, order
        self.duplicates = self._count_duplicates()

    def _key_at(self, row: int) -> bytes:
        start = int(row) * _ROW
        return self._rows[start : start + _ROW - 1].lower()

    def _count_duplicates(self) -> int:
        same = np.flatnonzero(self._hashes[1:] == self._hashes[:-1])
        # Equal hashes are almost always the same address; compare to be sure.
        return sum(1 for i in same if self._key_at(self._order[i]) == self._key_at(self._order[i + 1]))

    def _find(self, key: str) -> int | None:
        encoded = key.encode()
        wanted = hash(encoded)
        hashes = self._hashes
        i = int(np.searchsorted(hashes, wanted))
        while i < len(hashes) and hashes[i] == wanted:
            row = int(self._order[i])
            if self._key_at(row) == encoded:
                return row
            i += 1
        return None

    def get(self, key: str, default: ListEntry | None = None) -> ListEntry | None:  # type: ignore[override]
        """The entry of a normalised address, or ``default``."""
        if len(key) != _ROW - 1:
            return default
        row = self._find(key)
        if row is None:
            return default
        start = row * _ROW
        return ListEntry(self._rows[start : start + _ROW - 1].decode(), self._label)

    def __getitem__(self, key: str) -> ListEntry:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        seen_duplicates = self.duplicates > 0
        emitted: set[str] = set()
        for start in range(0, len(self._rows), _CHUNK * _ROW):
            for key in self._rows[start : start + _CHUNK * _ROW].lower().decode().split("\n")[:-1]:
                if seen_duplicates:
                    if key in emitted:
                        continue
                    emitted.add(key)
                yield key

    def __len__(self) -> int:
        return len(self._rows) // _ROW - self.duplicates

    def digest(self) -> str:
        """Digest of the content (normalised addresses in file order, and the label)."""
        digest = hashlib.sha256()
        for start in range(0, len(self._rows), _CHUNK * _ROW):
            digest.update(self._rows[start : start + _CHUNK * _ROW].lower())
        digest.update((self._label or "").encode())
        return digest.hexdigest()[:16]


def changed_counts(old: Mapping[str, ListEntry], new: Mapping[str, ListEntry]) -> tuple[int, int]:
    """(added, removed) addresses between two versions of a list's entries.

    Two compact indexes are compared by their sorted hashes, without building sets of
    millions of strings (which would need gigabytes for a 10-million-address reload);
    a 64-bit hash collision between an added and a removed address could hide one of
    each, which only affects the count reported.
    """
    if isinstance(old, CompactEntries) and isinstance(new, CompactEntries):
        old_hashes, new_hashes = np.unique(old._hashes), np.unique(new._hashes)
        added = np.setdiff1d(new_hashes, old_hashes, assume_unique=True).size
        removed = np.setdiff1d(old_hashes, new_hashes, assume_unique=True).size
        return int(added), int(removed)
    return len(new.keys() - old.keys()), len(old.keys() - new.keys())


def read_compact(path: Path, label: str | None, *, minimum: int | None = None) -> CompactEntries | None:
    """The compact index of ``path`` if it is a plain list of at least ``minimum`` (default
    :data:`COMPACT_FROM`) EVM addresses, else ``None``."""
    try:
        if path.stat().st_size < (COMPACT_FROM if minimum is None else minimum) * _ROW:
            return None
        rows = path.read_bytes()
    except OSError:
        return None  # the ordinary reader reports it
    if rows and not rows.endswith(b"\n"):
        rows += b"\n"
    if len(rows) % _ROW or not _all_evm_lines(rows):
        return None
    return CompactEntries(rows, label)


def _all_evm_lines(rows: bytes) -> bool:
    """Whether every 43-byte row is ``0x``, 40 hex digits and a newline (checked at C speed)."""
    count = len(rows) // _ROW
    return (
        rows[0::_ROW] == b"0" * count
        and rows[1::_ROW] == b"x" * count
        and rows[_ROW - 1 :: _ROW] == b"\n" * count
        and rows.count(b"\n") == count
        # With the above, only hex digits may be left once the x of every row is removed.
        and rows.translate(None, b"0123456789abcdefABCDEF\n") == b"x" * count
    )
