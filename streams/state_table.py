"""Rule state in a Faust table: changelog-backed, so it survives restarts and rebalances.

The table is co-partitioned with the input topics (same partition count, keyed by
account), and every write happens while an input record is being processed, so Faust
sends the change to the changelog partition of that record. A worker that takes over a
partition recovers exactly the state of the accounts on it.
"""

from __future__ import annotations

from typing import Any

import orjson
from faust.types import TableT

from streams.rules.state import group_of


class TableStore:
    """The engine's :class:`~streams.rules.state.StateStore` on a Faust table of bytes.

    All the state of one account (every rule's window or sequences, suppression periods,
    the event ids already seen) is one table entry, so the changes a record makes reach
    the changelog as one Kafka record: a crash can lose them all, never half of them.
    """

    def __init__(self, table: TableT[bytes, bytes]) -> None:
        self.table = table

    def _account(self, account: str) -> dict[str, Any]:
        raw = self.table.get(account.encode())
        return {} if raw is None else dict(orjson.loads(raw))

    def get(self, key: str) -> Any | None:
        account, part = group_of(key)
        return self._account(account).get(part)

    def set(self, key: str, value: Any) -> None:
        self.write_many({key: value})

    def delete(self, key: str) -> None:
        self.write_many({key: None})

    def write_many(self, changes: dict[str, Any | None]) -> None:
        by_account: dict[str, dict[str, Any | None]] = {}
        for key, value in changes.items():
            account, part = group_of(key)
            by_account.setdefault(account, {})[part] = value
        for account, parts in by_account.items():
            document = self._account(account)
            for part, value in parts.items():
                if value is None:
                    document.pop(part, None)
                else:
                    document[part] = value
            if document:
                self.table[account.encode()] = orjson.dumps(document)
            elif account.encode() in self.table:
                del self.table[account.encode()]
