"""Where stateful rules keep their windows and pending sequences.

The engine sees a tiny key-value interface. Offline (``backtest``, ``rules test``) it is
a dict; in the worker it is a Faust table backed by a changelog topic, so a restarted or
moved worker resumes with the same state. Values are plain JSON-able data (lists, str,
int, bool, None): decimals travel as strings, times as epoch milliseconds.
"""

from __future__ import annotations

from typing import Any, Protocol


class StateStore(Protocol):
    """Per-key state of stateful rules."""

    def get(self, key: str) -> Any | None:
        """The value stored under ``key``, or ``None``."""

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``."""

    def delete(self, key: str) -> None:
        """Forget ``key`` (no error if absent)."""


class DictStore:
    """State in a dict: for backtests, rule tests and unit tests."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any | None:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def __len__(self) -> int:
        return len(self.data)


def state_key(rule_id: str, group: str) -> str:
    """The key of one rule's state for one group (normally an account)."""
    return f"{rule_id}\x1f{group}"
