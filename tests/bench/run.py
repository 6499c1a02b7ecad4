"""``make bench``: drain throughput of the Faust worker (A), the ideal aiokafka loop (B) and the
engine alone (C), plus backtest speed, on the real local broker. Not part of ``make test``.

    python -m tests.bench.run [--events N]

Every run's alert set is compared with the offline oracle (``backtest`` over the same
input); a run that disagrees is reported as FAILED, not as a number. Results are printed
as a table and written to bench-results/<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.backtest import backtest_lines
from streams.rules.engine import load_ruleset
from streams.screening import Record, Screening
from streams.synthetic import synthetic_events
from tests.chaos.harness import Run
from tests.integration.helpers import project_broker

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    cpu_seconds: float
    alerts: int
    matches_oracle: bool

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def row(self) -> str:
        cpu_per_million = self.cpu_seconds / self.events * 1_000_000 if self.events else 0.0
        verdict = "ok" if self.matches_oracle else "FAILED (alerts differ from the oracle)"
        return (
            f"| {self.name} | {self.events} | {self.seconds:.1f} | {self.rate:,.0f} | {cpu_per_million:,.0f} | "
            f"{self.alerts} | {verdict} |"
        )


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_alone(lines: list[bytes], ruleset, oracle: set[str]) -> Result:  # type: ignore[no-untyped-def]
    """C: decode, validate and evaluate from memory, in input order (the CPU ceiling)."""
    screening = Screening(ruleset)
    records = [Record("file", 0, i, None, line) for i, line in enumerate(lines)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    ids = {a.alert_id for r in records for a in screening.screen_one(r).alerts}
    return Result(
        "C engine alone (memory)",
        len(lines),
        time.perf_counter() - t0,
        time.process_time() - cpu0,
        len(ids),
        ids == oracle,
    )


async def ideal_loop(run: Run, ruleset, total: int, oracle: set[str]) -> Result:  # type: ignore[no-untyped-def]
    """B: aiokafka getmany batches + orjson + the same engine, committing after alert acks."""
    s = run.settings
    consumer = AIOKafkaConsumer(
        s.deposits_topic,
        s.withdrawals_topic,
        bootstrap_servers=run.bootstrap,
        group_id=f"ideal-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=2000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=run.bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await consumer.start()
    await producer.start()
    screening = Screening(ruleset, s.topic_event_types)
    seen = 0
    ids: set[str] = set()
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        while seen < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            futures = []
            for records in batches.values():
                for r in records:
                    outcome = screening.screen_one(Record(r.topic, r.partition, r.offset, r.key, r.value))
                    for alert in outcome.alerts:
                        ids.add(alert.alert_id)
                        futures.append(await producer.send(f"{s.alerts_topic}-ideal", alert.to_json(), key=alert.key()))
                    seen += 1
            await asyncio.gather(*futures)
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()
    return Result(
        "B ideal aiokafka loop", seen, time.perf_counter() - t0, time.process_time() - cpu0, len(ids), ids == oracle
    )


def faust_worker(run: Run, total: int, oracle: set[str]) -> Result:
    """A: the project's worker draining the preloaded topics."""
    worker = run.start()
    pid = worker.process.pid
    cpu0, t0 = cpu_of(pid), time.perf_counter()
    while run.lag() != 0:
        time.sleep(0.5)
    seconds, cpu = time.perf_counter() - t0, cpu_of(pid) - cpu0
    ids = set(run.alert_ids())
    run.stop()
    return Result("A Faust worker", total, seconds, cpu, len(ids), ids == oracle)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    lines = list(synthetic_events(args.events, seed=11, accounts=200_000, poison_share=0.001))
    ruleset = load_ruleset([REPO / "rules"])
    t0 = time.perf_counter()
    report = backtest_lines(lines, ruleset)
    seconds = time.perf_counter() - t0
    backtest = Result("backtest (file order by time)", report.events, seconds, seconds, report.alert_count, True)
    oracle = {a.alert_id for a in report.alerts}
    results = [backtest, engine_alone(lines, ruleset, oracle)]
    with project_broker("kafka-bench") as (bootstrap, env), tempfile.TemporaryDirectory() as workdir:
        run = Run(bootstrap, Path(workdir), env)
        t1 = time.perf_counter()
        run.produce(lines)
        print(f"preloaded {len(lines)} events in {time.perf_counter() - t1:.1f}s", flush=True)
        results.append(asyncio.run(ideal_loop(run, ruleset, len(lines), oracle)))
        results.append(faust_worker(run, len(lines), oracle))
    header = "| run | events | seconds | events/s | CPU s per 1M | alerts | vs oracle |\n|---|---|---|---|---|---|---|"
    print(header)
    for result in results:
        print(result.row())
    a = next(r for r in results if r.name.startswith("A"))
    b = next(r for r in results if r.name.startswith("B"))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"\nA/B = {a.rate / b.rate:.1%}; max RSS of the bench process {rss} MB")
    out = REPO / "bench-results"
    out.mkdir(exist_ok=True)
    (out / f"{time.strftime('%Y%m%dT%H%M%S')}.json").write_bytes(
        orjson.dumps([asdict(r) | {"rate": r.rate} for r in results], option=orjson.OPT_INDENT_2)
    )
    return 0 if all(r.matches_oracle for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
