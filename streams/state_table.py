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


class TableStore:
    """The engine's :class:`~streams.rules.state.StateStore` on a Faust table of bytes."""

    def __init__(self, table: TableT[bytes, bytes]) -> None:
        self.table = table

    def get(self, key: str) -> Any | None:
        raw = self.table.get(key.encode())
        return None if raw is None else orjson.loads(raw)

    def set(self, key: str, value: Any) -> None:
        self.table[key.encode()] = orjson.dumps(value)

    def delete(self, key: str) -> None:
        encoded = key.encode()
        if encoded in self.table:
            del self.table[encoded]
