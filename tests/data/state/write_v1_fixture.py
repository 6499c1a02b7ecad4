"""Write the version-1 state fixture: run it from a checkout of commit ec4d04a (the last release of v1).

    git worktree add /tmp/v1 ec4d04a && cd /tmp/v1 && PYTHONPATH=. python <this file> <repo>/tests/data/state

It screens 1,600 generated events, keeps the state table after the first 1,000 records
and the alert ids raised before and after that point.
"""

from __future__ import annotations

import base64
import sys
import zlib
from pathlib import Path

import orjson

from streams.core.events import wall_clock
from streams.core.rules.loader import load_ruleset
from streams.core.screening import Record, Screening
from streams.core.synthetic import synthetic_events
from streams.shell.state_table import TableStore

AFTER = 1000


def main(out: Path) -> None:
    lines = list(synthetic_events(1600, seed=5, accounts=20, events_per_second=0.2, sanctioned_share=0.03))
    records = []
    for offset, line in enumerate(lines):
        try:
            account = orjson.loads(line)["account_id"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            continue
        records.append(Record("events", zlib.crc32(account.encode()) % 4, offset, account.encode(), line, [], None))
    table: dict[bytes, bytes] = {}
    store = TableStore(table)
    screening = Screening(load_ruleset([Path("rules")]), clock=wall_clock, state=store)
    first = [a.alert_id for r in records[:AFTER] for a in screening.screen_one(r).alerts]
    store.apply(store.encode())
    rest = [a.alert_id for r in records[AFTER:] for a in screening.screen_one(r).alerts]
    (out / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    changelog = [
        orjson.dumps({"key": k.decode(), "value": base64.b64encode(v).decode()}) for k, v in sorted(table.items())
    ]
    (out / "changelog-v1.jsonl").write_bytes(b"\n".join(changelog) + b"\n")
    summary = {"after_event": AFTER, "first": first, "rest": rest}
    (out / "alerts-v1.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
