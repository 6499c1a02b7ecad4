"""Rule state in a Faust table: changelog-backed, so it survives restarts and rebalances.

The table is co-partitioned with the input topics (same partition count, keyed by
account). Each entry is one account's whole rule state (a versioned header, then the state as
JSON: see :data:`HEADER` and :mod:`streams.core.rules.state_format`), so the changes a
record makes reach the changelog
as one Kafka record: a crash can lose them all, never half of them. A worker that takes
over a partition recovers exactly the state of the accounts on it. Accounts idle for
longer than the ruleset's horizon are deleted by :meth:`TableStore.expired`, whose
tombstones go to the changelog like any other change.

The engine works on decoded states held in a cache (:class:`TableStore`); a batch
changes them in place, and :class:`streams.shell.commit.CommitPipeline` writes the touched
ones to the changelog only after the batch's alerts are acknowledged (state after
output), and acknowledges the batch's input records only after that. Until then the durable state is the one the
batch first met, so a worker that dies replays the batch against it and raises the
same alerts.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Collection, Mapping, MutableMapping, Sequence

import orjson

from streams.core.rules.state import AccountState
from streams.core.rules.state_format import VERSION, from_json, to_json
from streams.shell.commit import Change

#: The header of a state value (versions 1 and 2): version byte, input partition (u16),
#: the account's latest event time (epoch ms, i64; -1 if none), all big-endian, then the
#: state as JSON in the form of that version (see :mod:`streams.core.rules.state_format`).
#: The header lets expiry find idle accounts without decoding any state. A value that
#: starts with ``{`` is version 0, the bare JSON document written before the header existed.
HEADER = struct.Struct(">BHq")
_HEADED = frozenset({1, VERSION})


def encode_value(partition: int, state: AccountState) -> bytes:
    """An account's state as a changelog value of the current version."""
    latest = -1 if state.latest is None else state.latest
    # The concatenation is a new bytes object of its exact size: orjson's own result keeps
    # a 4 KiB buffer, which every value held in the table would cost.
    return HEADER.pack(VERSION, partition, latest) + orjson.dumps(to_json(state))


def decode_value(raw: bytes) -> AccountState:
    """The state inside a changelog value of any known version; ValueError otherwise."""
    if raw[:1] == b"{":
        return from_json(orjson.loads(raw), 0)
    if raw[0] not in _HEADED:
        raise ValueError(f"state value of unknown version {raw[0]}: written by a newer worker?")
    try:
        data = orjson.loads(raw[HEADER.size :])
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"state value of version {raw[0]} is not JSON: {exc}") from None
    return from_json(data, raw[0])


class TableStore:
    """The engine's :class:`~streams.core.rules.state.StateStore`: decoded account states over a table of bytes.

    ``table`` maps account ids (bytes) to encoded states: in the worker, the raw dict
    inside the Faust table's in-memory store, which Faust fills from the changelog on
    recovery. :meth:`encode` turns the states a batch touched into changelog
    records; once they are durable, :meth:`apply` puts them in ``table``.

    At most ``max_cached`` decoded states are kept (``SENTINEL_STATE_CACHE_ACCOUNTS``),
    in two generations (see :meth:`apply`); a state released is decoded again from the
    table when its account comes back.
    """

    def __init__(self, table: MutableMapping[bytes, bytes], *, max_cached: int = 250_000) -> None:
        self.table = table
        self._max_cached = max_cached
        #: Decoded states used since the last turnover (see :meth:`apply`), by account.
        self._docs: dict[str, AccountState] = {}
        #: The generation before: states not used since, released as the bound requires.
        self._older: dict[str, AccountState] = {}
        #: Accounts whose state a screened record may have changed, with the input
        #: partition they came from (their changelog record goes to the same partition).
        self._touched: dict[str, int] = {}
        #: The keys a sweep for idle accounts looks at, and how many it has looked at.
        self._sweep: list[bytes] = []
        self._swept = 0
        #: States decoded from the table so far by :meth:`account` and :meth:`peek`: the
        #: accounts asked for that were not in the cache (a metric, to size the cache by).
        self.decoded = 0

    def account(self, account_id: str, partition: int) -> AccountState:
        """The live state of ``account_id``, decoded from the table on first use."""
        self._touched[account_id] = partition
        docs = self._docs
        doc = docs.get(account_id)
        if doc is None:
            doc = self._older.pop(account_id, None)
            if doc is None:
                raw = self.table.get(account_id.encode())
                if raw is None:
                    doc = AccountState()
                else:
                    doc = decode_value(raw)
                    self.decoded += 1
            docs[account_id] = doc
        return doc

    @property
    def cached(self) -> int:
        """How many accounts' states are held decoded (both generations)."""
        return len(self._docs) + len(self._older)

    def peek(self, account_id: str) -> AccountState | None:
        """The current state of ``account_id`` (None: it has none), read without marking it changed."""
        doc = self._docs.get(account_id)
        if doc is None:
            doc = self._older.get(account_id)
        if doc is not None:
            return doc
        raw = self.table.get(account_id.encode())
        if raw is None:
            return None
        self.decoded += 1
        return decode_value(raw)

    def encode(self) -> list[Change]:
        """The touched accounts' states, encoded as they are now, as changelog records.

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
            if not doc.is_empty():
                out.append((partition, key, encode_value(partition, doc)))
            elif key in table:
                out.append((partition, key, None))
        self._touched.clear()
        return out

    def apply(self, changes: Sequence[Change], in_flight: Sequence[Change] = ()) -> None:
        """Put durable ``changes`` in the table; keep the cache within its bound.

        The cache holds two generations: the states used since the last turnover, and
        the older ones, not used since. Over the bound, states of the older generation are
        released, as many as the bound is exceeded by (at most about a batch's new
        accounts); a state asked for before its release moves back to the new generation,
        so an active account is not decoded again. Once the older generation is gone, the
        new one becomes the older and a new one begins, keeping only the states of a batch
        still ``in_flight`` or being screened (they are newer than the table). So no call
        frees a large part of the cache at once: measured on the bench's 1,000,000 events
        over 200,000 accounts with a bound of 100,000, dropping the older half of the
        cache at once held one call for 160-210 ms.
        """
        put_changes(self.table, changes)
        older = self._older
        for _ in range(min(len(self._docs) + len(older) - self._max_cached, len(older))):
            older.popitem()
        if not older and len(self._docs) > self._max_cached // 2:
            retired, self._docs = self._docs, {}
            for account_id in itertools.chain((key.decode() for _, key, _ in in_flight), self._touched):
                doc = retired.pop(account_id, None)
                if doc is not None:
                    self._docs[account_id] = doc
            self._older = retired

    def expired(
        self,
        clocks: Mapping[int, int],
        horizon_ms: int,
        owned: Collection[int],
        busy: Collection[bytes] = (),
        *,
        limit: int | None = None,
    ) -> list[Change]:
        """Tombstones for the accounts whose state can no longer change a result.

        An account expires when the event-time clock of its partition (``clocks``: the
        latest event time screened per input partition) is more than ``horizon_ms`` past
        its latest event. Only partitions this worker owns (``owned``) are swept, and no
        account in ``busy`` (changed by a batch whose changes are not applied yet). The
        tombstone rides with the next batch through the commit protocol like any other
        change; the account's decoded state is dropped now. Version-0 values (no
        header) are left until their account is written again.

        A sweep looks at the accounts the table held when it began; with ``limit``, each
        call looks at that many and the next call goes on from there (:attr:`sweeping`
        says a sweep is under way), so no call holds the event loop for long.
        """
        if not self._sweep:
            self._sweep, self._swept = list(self.table), 0
        start, end = self._swept, len(self._sweep) if limit is None else min(len(self._sweep), self._swept + limit)
        out: list[Change] = []
        table, unpack = self.table, HEADER.unpack_from
        for key in self._sweep[start:end]:
            raw = table.get(key)
            if raw is None or raw[0] not in _HEADED:
                continue  # gone since the sweep began, or version 0
            _, partition, latest = unpack(raw)
            clock = clocks.get(partition)
            if clock is None or partition not in owned or clock - latest <= horizon_ms or key in busy:
                continue
            out.append((partition, key, None))
        self._swept = end
        if end >= len(self._sweep):
            self._sweep = []
        for _, key, _ in out:
            account_id = key.decode()
            self._docs.pop(account_id, None)
            self._older.pop(account_id, None)
        return out

    @property
    def sweeping(self) -> bool:
        """Whether a sweep begun by :meth:`expired` has accounts left to look at."""
        return bool(self._sweep)

    def forget(self) -> None:
        """Drop every decoded state and unwritten change (a rebalance, or an abandoned batch).

        The next read decodes from the table again, which holds what was made durable.
        """
        self._docs.clear()
        self._older.clear()
        self._touched.clear()

    def __len__(self) -> int:
        return len(self.table)


def put_changes(table: MutableMapping[bytes, bytes], changes: Sequence[Change]) -> None:
    """Write durable changes into a table's bytes (``None`` deletes the key)."""
    for _, key, value in changes:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
