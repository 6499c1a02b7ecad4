"""Rule state in a Faust table: changelog-backed, so it survives restarts and rebalances.

The table is co-partitioned with the input topics (same partition count, keyed by
account). Each entry is one account's whole state document, encoded as JSON, so the
changes a record makes reach the changelog as one Kafka record: a crash can lose them
all, never half of them. A worker that takes over a partition recovers exactly the
state of the accounts on it.

The engine works on decoded documents held in a cache (:class:`TableStore`); a batch
changes them in place, and :class:`streams.shell.commit.CommitPipeline` writes the touched
ones to the changelog only after the batch's alerts are acknowledged (state after
output), and acknowledges the batch's input records only after that. Until then the durable state is the one the
batch first met, so a worker that dies replays the batch against it and raises the
same alerts.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence

import orjson

from streams.core.rules.state import AccountState
from streams.shell.commit import Change


class TableStore:
    """The engine's :class:`~streams.core.rules.state.StateStore`: decoded documents over a table of bytes.

    ``table`` maps account ids (bytes) to encoded documents: in the worker, the raw dict
    inside the Faust table's in-memory store, which Faust fills from the changelog on
    recovery. :meth:`encode` turns the documents a batch touched into changelog
    records; once they are durable, :meth:`apply` puts them in ``table``.
    """

    def __init__(self, table: MutableMapping[bytes, bytes], *, max_cached: int = 100_000) -> None:
        self.table = table
        self._max_cached = max_cached
        self._docs: dict[str, AccountState] = {}
        #: Accounts whose document a screened record may have changed, with the input
        #: partition they came from (their changelog record goes to the same partition).
        self._touched: dict[str, int] = {}

    def account(self, account_id: str, partition: int) -> AccountState:
        """The live document of ``account_id``, decoded from the table on first use."""
        self._touched[account_id] = partition
        doc = self._docs.get(account_id)
        if doc is None:
            raw = self.table.get(account_id.encode())
            doc = self._docs[account_id] = {} if raw is None else orjson.loads(raw)
        return doc

    def encode(self) -> list[Change]:
        """The touched documents, encoded as they are now, as changelog records.

        Nothing is written: the worker writes them to the changelog once the batch's
        alerts are acknowledged, then :meth:`apply` puts them in the table.
        """
        out: list[Change] = []
        table = self.table
        for account_id, partition in self._touched.items():
            doc = self._docs.get(account_id)
            if doc is None:
                continue
            key = account_id.encode()
            if doc:
                # orjson's result keeps its whole write buffer (4 KiB at least) allocated;
                # a table of 10^5 accounts would hold 8 times the memory it needs. Copy it tight.
                out.append((partition, key, memoryview(orjson.dumps(doc)).tobytes()))
            elif key in table:
                out.append((partition, key, None))
        self._touched.clear()
        return out

    def apply(self, changes: Sequence[Change], in_flight: Sequence[Change] = ()) -> None:
        """Put durable ``changes`` in the table; bound the cache.

        Documents touched by a batch still ``in_flight`` are newer than the table, so
        they stay cached whatever the bound; every other one can be decoded again.
        """
        table = self.table
        for _, key, value in changes:
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
        if len(self._docs) > self._max_cached:
            docs = self._docs
            self._docs = {a: docs[a] for a in (key.decode() for _, key, _ in in_flight) if a in docs}
            self._docs.update((a, docs[a]) for a in self._touched if a in docs)

    def forget(self) -> None:
        """Drop every decoded document and unwritten change (a rebalance, or an abandoned batch).

        The next read decodes from the table again, which holds what was made durable.
        """
        self._docs.clear()
        self._touched.clear()

    def __len__(self) -> int:
        return len(self.table)
