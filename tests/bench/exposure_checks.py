"""The deposit path's exposure checks in one process: what each costs where, without a broker.

    python -m tests.bench.exposure_checks [--events N]

The bench's synthetic events (seed 11, 200,000 accounts) in batches of 2,000, as a worker
with the default pack takes them: the main screening, each deposit an exposure rule looks
at passed on as its check, the exposure side's screening of the checks, then the touched
exposure entries encoded for the changelog (CPU time of each step).
"""

from __future__ import annotations

import argparse
import time

import orjson

from streams.core.events import wall_clock
from streams.core.exposure_screening import ExposureScreening
from streams.core.rules.loader import load_ruleset
from streams.core.screening import Record, Screening
from streams.core.synthetic import synthetic_events
from streams.shell.exposure_side import ExposureTableStore, pass_on_checks
from streams.shell.memory import settle_long_lived
from tests.data import REPO


def _records(count: int) -> list[Record]:
    """The bench's events as the input topics hold them (keyed by account; poison lines too)."""
    records = []
    for offset, line in enumerate(synthetic_events(count, seed=11, accounts=200_000, poison_share=0.001)):
        try:
            data = orjson.loads(line)
            topic = "withdrawals" if data.get("type") == "withdrawal" else "deposits"
            key = str(data.get("account_id")).encode()
        except (orjson.JSONDecodeError, AttributeError):
            topic, key = "deposits", None
        records.append(Record(topic, offset % 4, offset, key, line))
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    count = parser.parse_args().events
    records = _records(count)
    ruleset = load_ruleset([REPO / "rules"])
    screening = Screening(ruleset, {"deposits": "deposit", "withdrawals": "withdrawal"}, clock=wall_clock)
    side = ExposureScreening(ruleset, {"transfers": "transfer"}, clock=wall_clock)
    store = ExposureTableStore({}, side)
    store.rebuild(set(range(4)))
    settle_long_lived()
    spent = {"main": 0.0, "checks": 0.0, "entries": 0.0}
    checks = written = 0
    for start in range(0, count, 2_000):
        t0 = time.process_time()
        outcomes = [screening.screen_one(record) for record in records[start : start + 2_000]]
        pass_on_checks(outcomes, ruleset, "checks")
        passed = [Record("checks", 0, o.record.offset, key, value) for o in outcomes for _, key, value in o.forwards]
        t1 = time.process_time()
        for record in passed:
            side.screen_one(record)
        t2 = time.process_time()
        changes = store.encode()
        t3 = time.process_time()
        spent["main"] += t1 - t0
        spent["checks"] += t2 - t1
        spent["entries"] += t3 - t2
        checks += len(passed)
        written += sum(len(value or b"") for _, _, value in changes)
    print(f"{count} events, {checks} checks, {written / max(checks, 1):.0f} entry bytes written a check")
    print(f"main screening and passing on: {1e6 * spent['main'] / count:.1f} µs an event")
    print(f"exposure side, screening a check: {1e6 * spent['checks'] / max(checks, 1):.1f} µs")
    print(f"exposure side, encoding touched entries: {1e6 * spent['entries'] / max(checks, 1):.1f} µs a check")


if __name__ == "__main__":
    main()
