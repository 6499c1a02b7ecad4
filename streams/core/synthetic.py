"""Synthetic event streams for benchmarks and load tests (fixed seed, realistic mix).

``sentinel generate --events 1000000 --output events.jsonl`` writes typed JSONL in event-time
order: ordinary deposits and withdrawals over many accounts, about 1% from sanctioned
addresses, layering bursts (pass-through, fan-in, fan-out, structuring) and, if asked,
a share of poison lines (bad JSON, bad amounts, unknown chains) that must be dead-lettered.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streams.core.stored_json import dumps_to_keep

START = datetime(2026, 1, 1, tzinfo=UTC)
POISON = (
    b"{not json",
    b'{"type": "deposit", "event_id": "p", "amount": 1e400}',
    b'{"type": "withdrawal", "event_id": "p", "account_id": "a", "chain": "dogechain"}',
    b"\xff\xfe\xfd",
    b"[]",
)


def synthetic_events(
    count: int,
    *,
    seed: int = 7,
    accounts: int = 1_000_000,
    sanctioned: list[str] | None = None,
    sanctioned_share: float = 0.01,
    poison_share: float = 0.0,
    events_per_second: float = 50.0,
) -> Iterator[bytes]:
    """Yield ``count`` JSONL lines (without newlines) in event-time order."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    bad = sanctioned or ["0x098B716B8Aaf21512996dC57EB0615e2383E2f96"]
    clock = START
    step = timedelta(seconds=1 / events_per_second)
    produced = 0
    serial = 0

    def line(kind: str, account: int, **fields: object) -> bytes:
        nonlocal serial
        serial += 1
        event: dict[str, object] = {
            "type": kind,
            "event_id": f"s{seed}-{serial}",
            "account_id": f"acct-{account}",
            "chain": "ethereum",
            "asset": "USDT",
            "amount": fields.pop("amount", f"{rng.randint(1, 5000)}.{rng.randint(0, 99):02d}"),
            "timestamp": clock.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }
        event["usd_value"] = fields.pop("usd_value", event["amount"])
        if kind == "deposit":
            event["tx_hash"] = f"0x{serial:064x}"
            event["from_addresses"] = fields.pop("from_addresses", [f"0x{rng.getrandbits(160):040x}"])
            event["to_address"] = f"0x{account:040x}"
        else:
            event["to_address"] = fields.pop("to_address", f"0x{rng.getrandbits(160):040x}")
        return dumps_to_keep(event)  # benches hold millions of lines: not 4 KiB each

    while produced < count:
        clock += step
        roll = rng.random()
        account = rng.randrange(accounts)
        if roll < poison_share:
            batch = [rng.choice(POISON)]
        elif roll < poison_share + sanctioned_share:
            batch = [line("deposit", account, from_addresses=[rng.choice(bad)])]
        elif roll < poison_share + sanctioned_share + 0.002:
            # a layering burst on one account: pass-through, fan-in, fan-out or structuring
            shape = rng.randrange(4)
            if shape == 0:
                batch = [
                    line("deposit", account, amount="20000", usd_value="20000"),
                    line("withdrawal", account, amount="17000", usd_value="17000"),
                ]
            elif shape == 1:
                batch = [line("deposit", account) for _ in range(11)]
            elif shape == 2:
                batch = [line("withdrawal", account) for _ in range(11)]
            else:
                batch = [line("deposit", account, amount="9500", usd_value="9500") for _ in range(3)]
        elif roll < 0.7:
            batch = [line("deposit", account)]
        else:
            # ordinary withdrawals are small next to deposits: no pass-through by chance
            amount = f"{rng.randint(1, 300)}.{rng.randint(0, 99):02d}"
            batch = [line("withdrawal", account, amount=amount, usd_value=amount)]
        for item in batch[: count - produced]:
            produced += 1
            yield item


def write_synthetic(path: Path, count: int, **options: object) -> int:
    """Write ``count`` synthetic events to ``path`` as JSONL; return the count."""
    with path.open("wb") as handle:
        for item in synthetic_events(count, **options):  # type: ignore[arg-type]
            handle.write(item + b"\n")
    return count
