"""The persisted form of exposure state: one record per rule and address, named fields, a version.

A worker keeps its exposure rules' state (:class:`~streams.core.rules.exposure_rule.ExposureStore`)
in a changelog-backed table, one entry per rule and normalised address: the key is
``<rule id> NUL <address>`` and the value, version 2, a JSON object::

    {"version": 2, "partition": 0, "rule": "ofac-indirect-exposure", "address": "0xab...",
     "exposure": {"seed_list": "ofac_sdn", "seed_key": "0x098b...", "hops": 2,
                  "since_ms": 1648000000000, "last_ms": 1648000600000,
                  "path": [["0x098B...", "0xab...", "0x1f...", 1648000000000, "3003.3", "ETH"], ...],
                  "received": {"USD": "1500.00"}, "tainted": {"USD": "1500.00"},
                  "taken": ["t-1", "t-2"], "shares": [[1648000000000, "1"]]},
     "waiting": [[1648000900000, {deposit as in docs/events.md}], ...]}

``exposure`` is null for an address that is not exposed but has deposits ``waiting``
(screened before any exposure of it was known: a later transfer may make them
retroactive alerts). Amounts are decimal strings, times epoch milliseconds. Version 1 is
version 2 without each hop's amount and asset (the last two items of a path step); it is
still read, and its hops show no amount. The seed is
stored by list and address, not copied: when the state is read back, it is looked up in
the running ruleset's list, and an exposure whose seed is no longer on it is dropped
(delisted addresses expose nobody). Pure Python, no I/O.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from streams.core.events import Event, event_from_dict, stand_alone_json
from streams.core.exposure import Exposure, ExposureConfig, Hop, Seed
from streams.core.rules.exposure_rule import RuleExposureState
from streams.core.stored_json import dumps_to_keep

#: The version :func:`encode_entry` writes.
VERSION = 2
#: Versions this code reads (1: hops without amounts).
READABLE = (1, 2)
SEPARATOR = b"\x00"


def entry_key(rule_id: str, address: str) -> bytes:
    """The table key of one rule's state for one normalised address."""
    return rule_id.encode() + SEPARATOR + address.encode()


def encode_entry(state: RuleExposureState, rule_id: str, address: str, partition: int) -> bytes | None:
    """The table value for ``address`` in one rule's state; ``None`` if the rule holds nothing of it."""
    found = state.graph.exposed.get(address)
    waiting = state.seen.get(address)
    if found is None and not waiting:
        return None
    data: dict[str, Any] = {
        "version": VERSION,
        "partition": partition,
        "rule": rule_id,
        "address": address,
        "exposure": None if found is None else _exposure_json(found),
        "waiting": [orjson.Fragment(_waiting_json(t, event)) for t, event in waiting or ()],
    }
    return dumps_to_keep(data)  # held in the exposure table


def _waiting_json(t: int, event: Event) -> bytes:
    # The deposit's JSON is made at most once (an entry is written again whenever a deposit
    # joins it), and not at all when it came declaring its type: its input is used as it is.
    return b"[%d,%b]" % (t, stand_alone_json(event))


def entry_partition(raw: bytes) -> int:
    """The input partition an encoded entry belongs to (to rebuild only the owned ones)."""
    data = _load(raw)
    return int(data["partition"])


def decode_entry(raw: bytes, configs: dict[str, ExposureConfig], into: dict[str, RuleExposureState]) -> None:
    """Put one encoded entry into the states of ``into`` (by rule id); rules no longer loaded are skipped.

    Raises ValueError for a value this version cannot read.
    """
    data = _load(raw)
    rule_id, address = str(data["rule"]), str(data["address"])
    config = configs.get(rule_id)
    state = into.get(rule_id)
    if config is None or state is None:
        return  # the rule was removed or is disabled: its state is left to expire
    exposure = data.get("exposure")
    if exposure is not None:
        decoded = _exposure(exposure, config)
        if decoded is not None:
            state.graph.exposed[address] = decoded
    waiting = data.get("waiting") or []
    if waiting:
        state.seen[address] = [(int(t), event_from_dict(event)) for t, event in waiting]


def _load(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"exposure state value is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("version") not in READABLE:
        version = data.get("version") if isinstance(data, dict) else None
        raise ValueError(f"exposure state value of unknown version {version!r}: written by a newer worker?")
    return data


def _exposure_json(found: Exposure) -> dict[str, Any]:
    seed = found.seed
    return {
        "seed_list": seed.list_id,
        "seed_key": seed.entry_key,
        "hops": found.hops,
        "since_ms": found.since_ms,
        "last_ms": found.last_ms,
        "path": [
            [hop.from_address, hop.to_address, hop.tx_hash, hop.at_ms, hop.amount, hop.asset] for hop in found.path
        ],
        "received": {measure: str(value) for measure, value in found.received.items()},
        "tainted": {measure: str(value) for measure, value in found.tainted.items()},
        "taken": list(found.taken),
        "shares": [[at, str(share)] for at, share in found.shares],
    }


def _exposure(data: dict[str, Any], config: ExposureConfig) -> Exposure | None:
    seed = _seed(config, str(data["seed_list"]), str(data["seed_key"]))
    if seed is None:
        return None
    return Exposure(
        seed=seed,
        hops=int(data["hops"]),
        since_ms=int(data["since_ms"]),
        path=tuple(_hop(step) for step in data["path"]),
        received={str(m): Decimal(v) for m, v in data["received"].items()},
        tainted={str(m): Decimal(v) for m, v in data["tainted"].items()},
        last_ms=int(data["last_ms"]),
        taken=dict.fromkeys(str(i) for i in data["taken"]),
        shares=[(int(at), Decimal(share)) for at, share in data.get("shares", [])],
    )


def _seed(config: ExposureConfig, list_id: str, key: str) -> Seed | None:
    for address_list in config.seeds:
        if address_list.info.id == list_id:
            entry = address_list.entries.get(key)
            if entry is not None:
                return Seed(entry.address, list_id, entry, address_list, key)
    return None


def _hop(step: list[Any]) -> Hop:
    """One path step: from, to, tx hash, time, and (version 2) amount and asset."""
    amount, asset = (str(step[4]), str(step[5])) if len(step) >= 6 else ("", "")
    return Hop(str(step[0]), str(step[1]), str(step[2]), int(step[3]), amount, asset)
