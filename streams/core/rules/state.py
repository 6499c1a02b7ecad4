"""Where stateful rules keep their windows and pending sequences.

All the state of one account (every rule's window or sequences, suppression periods,
the event ids already seen) is one *document*: a dict of plain JSON-able data (lists,
str, int, bool, None; decimals as strings, times as epoch milliseconds), keyed by rule.
The engine asks the store for the live document of an account and changes it in place,
which costs nothing per event; how and when documents are made durable is the store's
business. Offline (``backtest``, ``rules test``) documents live in a dict and are never
encoded. In the worker they are cached over a Faust table and written to its changelog
once a batch's alerts are acknowledged (see :mod:`streams.shell.state_table` and
:mod:`streams.shell.commit`).
"""

from __future__ import annotations

from typing import Any, Protocol

#: The document of one account: rule id (or "#seen", "#latest", "<rule>#suppress") -> that part's state.
AccountState = dict[str, Any]

#: The part of a document that holds the time of the account's latest event (epoch ms).
LATEST = "#latest"


def latest_event_ms(doc: AccountState) -> int | None:
    """The event time of the latest event the document has seen (epoch ms), if any.

    Documents written before ``#latest`` existed have it from their resend-dedupe ids.
    """
    latest: int | None = doc.get(LATEST)
    if latest is None and doc.get("#seen"):
        latest = max(doc["#seen"].values())
    return latest


class StateStore(Protocol):
    """Per-account state of stateful rules."""

    def account(self, account_id: str, partition: int) -> AccountState:
        """The live state document of ``account_id`` (empty if it has none yet).

        ``partition`` is the input partition of the record being screened: a durable
        store keeps the account's state on the same partition of its changelog. The
        caller changes the document in place; the store sees the change without another call.
        """


class DictStore:
    """State in a dict of live documents: for backtests, rule tests and unit tests."""

    def __init__(self) -> None:
        self.docs: dict[str, AccountState] = {}

    def account(self, account_id: str, partition: int = 0) -> AccountState:
        """The live document of ``account_id`` (the partition does not matter in memory)."""
        doc = self.docs.get(account_id)
        if doc is None:
            doc = self.docs[account_id] = {}
        return doc

    @property
    def data(self) -> dict[str, Any]:
        """Every non-empty part as ``"<account>/<part>" -> state`` (for tests and debugging)."""
        return {f"{account}/{part}": value for account, doc in self.docs.items() for part, value in doc.items()}

    def __len__(self) -> int:
        return sum(1 for doc in self.docs.values() if doc)
