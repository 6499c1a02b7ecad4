"""Where stateful rules keep their windows and pending sequences.

The engine sees a tiny key-value interface. Offline (``backtest``, ``rules test``) it is
a dict; in the worker it is a Faust table backed by a changelog topic, so a restarted or
moved worker resumes with the same state. Values are plain JSON-able data (lists, str,
int, bool, None): decimals travel as strings, times as epoch milliseconds.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson


class StateStore(Protocol):
    """Per-key state of stateful rules."""

    def get(self, key: str) -> Any | None:
        """The value stored under ``key``, or ``None``."""

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``."""

    def delete(self, key: str) -> None:
        """Forget ``key`` (no error if absent)."""


class DictStore:
    """State in a dict: for backtests, rule tests and unit tests.

    Values are kept encoded, exactly as the worker's table keeps them, so a reader can
    never change stored state by mutating what it was given.
    """

    def __init__(self) -> None:
        self.raw: dict[str, bytes] = {}

    def get(self, key: str) -> Any | None:
        value = self.raw.get(key)
        return None if value is None else orjson.loads(value)

    def set(self, key: str, value: Any) -> None:
        self.raw[key] = orjson.dumps(value)

    def delete(self, key: str) -> None:
        self.raw.pop(key, None)

    @property
    def data(self) -> dict[str, Any]:
        """A decoded copy of everything stored (for tests and debugging)."""
        return {key: orjson.loads(value) for key, value in self.raw.items()}

    def __len__(self) -> int:
        return len(self.raw)


def state_key(rule_id: str, group: str) -> str:
    """The key of one rule's state for one group (normally an account)."""
    return f"{rule_id}\x1f{group}"


class OverlayStore:
    """Buffers writes over a base store until :meth:`commit`.

    The worker evaluates a record against an overlay and applies it to the changelog-
    backed table only after the record's alerts are acknowledged: if the worker dies in
    between, the replayed record meets the state it first met, and raises the same alert.
    """

    _DELETED = object()

    def __init__(self, base: StateStore) -> None:
        self.base = base
        self.changes: dict[str, Any] = {}

    def get(self, key: str) -> Any | None:
        if key in self.changes:
            value = self.changes[key]
            return None if value is self._DELETED else value
        return self.base.get(key)

    def set(self, key: str, value: Any) -> None:
        self.changes[key] = value

    def delete(self, key: str) -> None:
        self.changes[key] = self._DELETED

    def commit(self) -> None:
        """Apply the buffered writes to the base store."""
        for key, value in self.changes.items():
            if value is self._DELETED:
                self.base.delete(key)
            else:
                self.base.set(key, value)
        self.changes.clear()
