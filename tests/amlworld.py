"""AMLworld (IBM, HI-Small) fan-in and fan-out laundering patterns as deposits and withdrawals.

Mapping (documented in docs/rules.md):
- each bank account becomes an address ``"<bank>:<account>"``;
- a FAN-IN pattern's transactions become **deposits** into the receiving account (the
  exchange customer, ``account_id``), sent from the paying account (``from_addresses``);
- a FAN-OUT pattern's transactions become **withdrawals** from the paying account to the
  receiving account (``to_address``);
- ``account_id`` is prefixed with the pattern's index, so patterns never share state;
- amounts are kept as decimal strings; ``usd_value`` only where the currency is US Dollar;
- timestamps ("2022/09/01 09:14") are read as UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.data import AMLWORLD_PATTERNS

PATTERNS = AMLWORLD_PATTERNS


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%Y/%m/%d %H:%M").replace(tzinfo=UTC)


def fan_patterns() -> list[tuple[int, str, list[dict[str, Any]]]]:
    """(index, kind, events) for every FAN-IN and FAN-OUT pattern, events in time order."""
    data = json.loads(PATTERNS.read_text())
    out = []
    for index, pattern in enumerate(data["patterns"]):
        kind = pattern["pattern_type"].split(":")[0]
        if kind not in ("FAN-IN", "FAN-OUT"):
            continue
        events = []
        for number, tx in enumerate(pattern["transactions"]):
            payer = f"{tx['from_bank']}:{tx['from_account']}"
            payee = f"{tx['to_bank']}:{tx['to_account']}"
            amount = str(Decimal(str(tx["amount_received"] if kind == "FAN-IN" else tx["amount_paid"])))
            currency = tx["receiving_currency"] if kind == "FAN-IN" else tx["payment_currency"]
            event: dict[str, Any] = {
                "event_id": f"aml-{index}-{number}",
                "chain": "ethereum",
                "asset": currency.replace(" ", "_").upper()[:12],
                "amount": amount,
                "timestamp": _time(tx["timestamp"]).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            if currency == "US Dollar":
                event["usd_value"] = amount
            if kind == "FAN-IN":
                event.update(
                    type="deposit",
                    account_id=f"p{index}:{payee}",
                    tx_hash=f"aml-{index}-{number}",
                    from_addresses=[payer],
                    to_address=payee,
                )
            else:
                event.update(type="withdrawal", account_id=f"p{index}:{payer}", to_address=payee)
            events.append(event)
        events.sort(key=lambda e: (e["timestamp"], e["event_id"]))
        out.append((index, kind, events))
    return out


def max_distinct_in_window(events: list[dict[str, Any]], field: str, seconds: int) -> int:
    """Brute force: the most distinct counterparties of one account in any window (t - span, t]."""
    best = 0
    by_account: dict[str, list[tuple[datetime, str]]] = {}
    for event in events:
        values = event[field] if isinstance(event[field], list) else [event[field]]
        for value in values:
            by_account.setdefault(event["account_id"], []).append((_time_rfc(event["timestamp"]), value))
    for items in by_account.values():
        for end, _ in items:
            inside = {value for when, value in items if 0 <= (end - when).total_seconds() < seconds}
            best = max(best, len(inside))
    return best


def _time_rfc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def write_labelled_set(directory: Path) -> tuple[Path, Path]:
    """The fan patterns as ``events.jsonl`` and account labels ``labels.csv`` (every pattern account
    is laundering, typology fan_in or fan_out): the labelled set of docs/rules.md.

    ``python -m tests.amlworld DIR`` writes them, for ``sentinel backtest --labels``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    events_path, labels_path = directory / "events.jsonl", directory / "labels.csv"
    rows = ["account_id,label,typology"]
    with events_path.open("w") as out:
        for _, kind, events in fan_patterns():
            for event in events:
                out.write(json.dumps(event) + "\n")
            typology = "fan_in" if kind == "FAN-IN" else "fan_out"
            rows.append(f"{events[0]['account_id']},1,{typology}")
    labels_path.write_text("\n".join(rows) + "\n")
    return events_path, labels_path


if __name__ == "__main__":
    import sys

    written = write_labelled_set(Path(sys.argv[1] if len(sys.argv) > 1 else ".local/amlworld"))
    print("wrote", *written)
