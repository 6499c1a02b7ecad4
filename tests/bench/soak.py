"""The memory soak: does the worker's RSS level off once idle accounts' state expires?

    python -m tests.bench.soak [--events N] [--accounts M] [--days D]

Events over ``M`` accounts spread evenly across ``D`` days of event time are fed to one
worker in 200 chunks, each once the worker has nearly caught up, twice on topics of their
own: with the state sweep (every 5 s) and without it. RSS is sampled after every chunk
against the number of events committed; the table compares the mean RSS over the middle third of the input with
the last third (the target: the last within 10% of the middle one with the sweep on), and
both runs' alerts are checked against the offline oracle. ``make bench`` runs it at the end;
``make memory-soak`` runs it alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from streams.core.backtest import backtest_lines
from streams.core.events import wall_clock
from streams.core.synthetic import synthetic_events
from tests.chaos.cluster import Run
from tests.chaos.scoring import RULESET
from tests.integration.helpers import project_broker

SEED = 13


@dataclass
class SoakResult:
    sweep: bool
    events: int
    seconds: float
    middle_mb: float
    last_mb: float
    peak_mb: float
    matches_oracle: bool

    @property
    def growth(self) -> float:
        return self.last_mb / self.middle_mb - 1 if self.middle_mb else 0.0

    def row(self) -> str:
        return (
            f"| {'on' if self.sweep else 'off'} | {self.events} | {self.seconds:.0f} | {self.middle_mb:.0f} | "
            f"{self.last_mb:.0f} | {self.growth:+.1%} | {self.peak_mb:.0f} | "
            f"{'yes' if self.matches_oracle else 'FAILED'} |"
        )


HEADER = (
    "| state sweep | events | drain s | RSS middle third MB | RSS last third MB | last vs middle | peak MB "
    "| alerts = oracle |\n"
    "|---|---|---|---|---|---|---|---|"
)


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def soak_drain(
    bootstrap: str, env: dict[str, str] | None, workdir: Path, lines: list[bytes], oracle: set[str], sweep: bool
) -> SoakResult:
    """One worker on topics of its own, fed the input in chunks as it drains; RSS sampled per chunk.

    Fed, not preloaded: from a preloaded backlog the worker's polls can run one topic more
    than 24 h of event time ahead of the other, past the skew sequences allow for
    (docs/rules.md), and the alerts would differ from the oracle for that reason alone.
    """
    run = Run(bootstrap, workdir, env)
    run.settings = run.settings.model_copy(update={"state_sweep_interval": 5.0 if sweep else 0.0})
    worker = run.start("soak")
    pid = worker.process.pid
    total = len(lines)
    chunk = max(1, total // 200)
    started = time.perf_counter()
    samples: list[tuple[int, float]] = []
    for begin in range(0, total, chunk):
        run.produce(lines[begin : begin + chunk])
        while (lag := run.lag()) > chunk or lag < 0:
            time.sleep(0.2)
        samples.append((begin + chunk - lag, _rss_mb(pid)))
    while run.lag() != 0:
        time.sleep(0.5)
    seconds = time.perf_counter() - started
    peak = _rss_mb(pid, "VmHWM")
    ids = set(run.alert_ids())
    run.stop_all()
    if ids != oracle:
        print(
            f"soak (sweep {'on' if sweep else 'off'}): {len(ids)} alerts, oracle {len(oracle)}: "
            f"{len(oracle - ids)} missing, {len(ids - oracle)} not in the oracle",
            flush=True,
        )
    middle = [rss for done, rss in samples if total / 3 <= done < 2 * total / 3]
    last = [rss for done, rss in samples if done >= 2 * total / 3]
    return SoakResult(
        sweep,
        total,
        seconds,
        statistics.fmean(middle) if middle else 0.0,
        statistics.fmean(last) if last else 0.0,
        peak,
        ids == oracle,
    )


def soak(events: int, accounts: int, days: float, workdir: Path) -> list[SoakResult]:
    rate = events / (days * 86_400)
    lines = list(synthetic_events(events, seed=SEED, accounts=accounts, events_per_second=rate))
    oracle = {a.alert_id for a in backtest_lines(lines, RULESET, clock=wall_clock).alerts}
    with project_broker("kafka-bench") as (bootstrap, env):
        return [soak_drain(bootstrap, env, workdir, lines, oracle, sweep) for sweep in (True, False)]


def report(results: list[SoakResult], accounts: int, days: float) -> None:
    print(f"\n## Memory soak ({results[0].events} events, {accounts} accounts, {days:g} days of event time)\n")
    print(HEADER)
    for result in results:
        print(result.row())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        results = soak(args.events, args.accounts, args.days, Path(workdir))
    report(results, args.accounts, args.days)
    return 0 if all(r.matches_oracle for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
