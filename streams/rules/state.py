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


class DurableStore(StateStore, Protocol):
    """A store that can apply a record's changes together (the worker's table, the backtest's dict)."""

    def write_many(self, changes: dict[str, Any | None]) -> None:
        """Apply several writes (``None`` deletes) as one change, where the store can."""


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

    def write_many(self, changes: dict[str, Any | None]) -> None:
        for key, value in changes.items():
            if value is None:
                self.delete(key)
            else:
                self.set(key, value)

    @property
    def data(self) -> dict[str, Any]:
        """A decoded copy of everything stored (for tests and debugging)."""
        return {key: orjson.loads(value) for key, value in self.raw.items()}

    def __len__(self) -> int:
        return len(self.raw)


def state_key(rule_id: str, group: str) -> str:
    """The key of one rule's state for one group (normally an account)."""
    return f"{rule_id}\x1f{group}"


def group_of(key: str) -> tuple[str, str]:
    """(group, rule part) of a key made by :func:`state_key`."""
    rule, _, group = key.rpartition("\x1f")
    return group, rule


class OverlayStore:
    """Buffers writes over a base store until :meth:`commit`.

    The worker evaluates a record against an overlay and applies it to the changelog-
    backed table only after the record's alerts are acknowledged: if the worker dies in
    between, the replayed record meets the state it first met, and raises the same alert.
    """

    _DELETED = object()

    def __init__(self, base: DurableStore) -> None:
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
        """Apply the buffered writes to the base store, as one change where it can."""
        self.base.write_many({k: (None if v is self._DELETED else v) for k, v in self.changes.items()})
        self.changes.clear()
