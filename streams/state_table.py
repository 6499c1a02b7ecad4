"""Rule state in a Faust table: changelog-backed, so it survives restarts and rebalances.

The table is co-partitioned with the input topics (same partition count, keyed by
account). Each entry is one account's whole state document, encoded as JSON, so the
changes a record makes reach the changelog as one Kafka record: a crash can lose them
all, never half of them. A worker that takes over a partition recovers exactly the
state of the accounts on it.

The engine works on decoded documents held in a cache (:class:`TableStore`); a batch
changes them in place, and the worker writes the touched ones to the table and its
changelog only after the batch's alerts are acknowledged (state after output). Until
then the durable state is the one the batch first met, so a worker that dies replays
the batch against it and raises the same alerts.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

import orjson

from streams.rules.state import AccountState

#: Writes one encoded document (``None``: delete) for an account on an input partition.
ChangeWriter = Callable[[int, bytes, bytes | None], None]


class TableStore:
    """The engine's :class:`~streams.rules.state.StateStore`: decoded documents over a table of bytes.

    ``table`` maps account ids (bytes) to encoded documents. ``write`` makes a change
    durable; by default it just assigns in ``table`` (tests), in the worker it also sends
    the change to the changelog partition of the input partition the account lives on.
    """

    def __init__(
        self,
        table: MutableMapping[bytes, bytes],
        write: ChangeWriter | None = None,
        *,
        max_cached: int = 100_000,
    ) -> None:
        self.table = table
        self._write = write or self._assign
        self._max_cached = max_cached
        self._docs: dict[str, AccountState] = {}
        #: Accounts whose document a screened record may have changed, with their partition.
        self._touched: dict[str, int] = {}
        self.partition = 0

    def account(self, account_id: str) -> AccountState:
        self._touched[account_id] = self.partition
        doc = self._docs.get(account_id)
        if doc is None:
            raw = self.table.get(account_id.encode())
            doc = self._docs[account_id] = {} if raw is None else orjson.loads(raw)
        return doc

    def persist(self) -> int:
        """Write every touched document to the table (and changelog); return how many."""
        written = 0
        for account_id, partition in self._touched.items():
            doc = self._docs.get(account_id)
            if doc is None:
                continue
            key = account_id.encode()
            if doc:
                self._write(partition, key, orjson.dumps(doc))
                written += 1
            elif key in self.table:
                self._write(partition, key, None)
                written += 1
        self._touched.clear()
        if len(self._docs) > self._max_cached:
            # Everything is written: the cache can go; hot accounts are decoded again on use.
            self._docs.clear()
        return written

    def forget(self) -> None:
        """Drop every decoded document and unwritten change (a rebalance, or an abandoned batch).

        The next read decodes from the table again, which holds what was made durable.
        """
        self._docs.clear()
        self._touched.clear()

    def _assign(self, partition: int, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.table.pop(key, None)
        else:
            self.table[key] = value

    def __len__(self) -> int:
        return len(self.table)


def table_writer(table: Any) -> ChangeWriter:
    """A :data:`ChangeWriter` for a Faust table: its in-memory data, then its changelog.

    The change goes to the changelog partition of the input partition (the table is
    co-partitioned with the inputs), which is what Faust itself does while a record is
    being processed; we write after the batch, outside Faust's stream, so we say which.
    """
    data = table.data

    def write(partition: int, key: bytes, value: bytes | None) -> None:
        if value is None:
            data.pop(key, None)
            table.send_changelog(partition, key, None, value_serializer="raw")
        else:
            data[key] = value
            table.send_changelog(partition, key, value)

    return write
