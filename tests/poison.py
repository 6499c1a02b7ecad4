"""One catalogue of bad input, every class of it: the chaos suite and the unit tests share it.

Each entry is a record as a careless or hostile producer might write it to an input topic,
built around a valid deposit, with the dead-letter reason the worker must give it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

_numbers = itertools.count(1)


@dataclass(frozen=True)
class Poison:
    """A bad record for the deposits topic and the dead-letter reason it must get."""

    name: str
    key: bytes | None
    value: bytes | None
    reason: str


def poison_records(good: Mapping[str, Any]) -> list[Poison]:
    """Every class of bad input, built around ``good`` (a valid deposit as a dict)."""

    def with_(**changes: object) -> bytes:
        return orjson.dumps({**good, "event_id": f"poison-{next(_numbers)}", **changes})

    account = str(good["account_id"]).encode()
    return [
        Poison("truncated JSON", account, b'{"type": "deposit", "event_id": ', "invalid_json"),
        Poison("not UTF-8", account, b"\xc3\x28\xa0\xa1", "invalid_utf8"),
        Poison("amount as a JSON number", account, with_(amount=12.5), "invalid_field"),
        Poison("account id null", account, with_(account_id=None), "invalid_field"),
        Poison(
            "required field missing",
            account,
            orjson.dumps({k: v for k, v in good.items() if k != "tx_hash"}),
            "missing_field",
        ),
        Poison("amount of 31 digits", account, with_(amount="1" + "0" * 30), "invalid_field"),
        Poison("negative amount", account, with_(amount="-5"), "invalid_field"),
        Poison("zero amount", account, with_(amount="0"), "invalid_field"),
        Poison("NaN amount", account, with_(amount="NaN"), "invalid_field"),
        Poison("amount in exponent form", account, with_(amount="1e3"), "invalid_field"),
        Poison("amount of 80 digits", account, with_(amount="9" * 80), "invalid_field"),
        Poison("a megabyte of memo", account, with_(memo="x" * 1_000_000), "too_large"),
        Poison("deeply nested JSON", account, b"[" * 5_000 + b"]" * 5_000, "invalid_json"),
        Poison("the same key twice", account, with_()[:-1] + b', "amount": "999999"}', "invalid_json"),
        Poison("no record key", None, with_(), "missing_key"),
        Poison("tombstone", account, None, "empty_value"),
        Poison("unknown chain", account, with_(chain="dogechain"), "invalid_field"),
        Poison("far in the future", account, with_(timestamp="2999-01-01T00:00:00Z"), "invalid_field"),
        Poison("before the first block", account, with_(timestamp="1999-01-01T00:00:00Z"), "invalid_field"),
        Poison("a NUL in the event id", account, with_(event_id="dep\u0000x"), "invalid_field"),
    ]
