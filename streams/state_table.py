"""Rule state in a Faust table: changelog-backed, so it survives restarts and rebalances.

The table is co-partitioned with the input topics (same partition count, keyed by
account). Each entry is one account's whole state document, encoded as JSON, so the
changes a record makes reach the changelog as one Kafka record: a crash can lose them
all, never half of them. A worker that takes over a partition recovers exactly the
state of the accounts on it.

The engine works on decoded documents held in a cache (:class:`TableStore`); a batch
changes them in place, and the worker writes the touched ones to the changelog only
after the batch's alerts are acknowledged (state after output), and acknowledges the
batch's input records only after that. Until then the durable state is the one the
batch first met, so a worker that dies replays the batch against it and raises the
same alerts.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import orjson

from streams.rules.state import AccountState

#: One durable change: (input partition, account id, encoded document or ``None`` to delete).
Change = tuple[int, bytes, bytes | None]


class TableStore:
    """The engine's :class:`~streams.rules.state.StateStore`: decoded documents over a table of bytes.

    ``table`` maps account ids (bytes) to encoded documents: in the worker, the raw dict
    inside the Faust table's in-memory store, which Faust fills from the changelog on
    recovery. :meth:`changes` encodes the documents a batch touched, updates ``table``
    and returns the records the caller must write to the changelog.
    """

    def __init__(self, table: MutableMapping[bytes, bytes], *, max_cached: int = 100_000) -> None:
        self.table = table
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

    def changes(self) -> list[Change]:
        """Encode every touched document into ``table``; return them as changelog records."""
        out: list[Change] = []
        table = self.table
        for account_id, partition in self._touched.items():
            doc = self._docs.get(account_id)
            if doc is None:
                continue
            key = account_id.encode()
            if doc:
                value = table[key] = orjson.dumps(doc)
                out.append((partition, key, value))
            elif key in table:
                del table[key]
                out.append((partition, key, None))
        self._touched.clear()
        if len(self._docs) > self._max_cached:
            # Everything is encoded: the cache can go; hot accounts are decoded again on use.
            self._docs.clear()
        return out

    def forget(self) -> None:
        """Drop every decoded document and unwritten change (a rebalance, or an abandoned batch).

        The next read decodes from the table again, which holds what was made durable.
        """
        self._docs.clear()
        self._touched.clear()

    def __len__(self) -> int:
        return len(self.table)
