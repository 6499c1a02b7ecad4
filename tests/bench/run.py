"""``make bench``: the worker (A) side by side with the ideal aiokafka loop (B) and the engine
alone (C) on the same broker and input, plus latency under load, scale-out, memory,
backtest and rescreen speed (tests/bench/rescreen.py), chain transfers through the
exposure rules, in one process and on a worker
(tests/bench/exposure.py), and the screening API under an open-loop HTTP load
(tests/bench/screening.py; needs ``go`` to build its load generator), and the alert console
with 10,000 alerts in Chromium (tests/bench/console.py).
Not part of ``make test``.

    python -m tests.bench.run [--events N] [--latency-seconds S] [--list-addresses N] [--transfers N]

The alert set of every run is compared with the offline oracle (``sentinel backtest``
over the same input); a run that disagrees is reported as FAILED, not as a number.
Tables are printed and results written to bench-results/<time>.json (ignored by git).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import orjson

from streams.core.events import wall_clock
from streams.core.rules.engine import Ruleset
from streams.core.rules.loader import load_ruleset
from streams.core.screening import Record, Screening
from streams.core.synthetic import synthetic_events
from streams.shell import clients
from streams.shell.memory import settle_long_lived
from tests.bench import console, exposure, latency, peer, rescreen, screening, soak
from tests.bench.common import HEADER, Result, cpu_of, fresh_group, rss_mb
from tests.chaos.cluster import Run
from tests.data import REPO
from tests.integration.helpers import project_broker

OUT = REPO / "bench-results"
SEED = 11
ACCOUNTS = 200_000


def backtest_cli(path: Path, alerts: Path) -> tuple[Result, set[str]]:
    """5: ``sentinel backtest`` on the file, as a user runs it; its alerts are the oracle."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "streams.commands.cli", "backtest", "--input", str(path), "--output", str(alerts)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    ids = {orjson.loads(line)["alert_id"] for line in alerts.read_bytes().splitlines()}
    summary = next(line for line in done.stdout.splitlines() if "events/s" in line)
    events = int(summary.split(" lines, ")[1].split(" events")[0])
    note = f"its own figure: {summary.split(', ')[-1]} (sort + screen; wall includes start-up and reading)"
    return Result("backtest (sentinel backtest, file)", events, seconds, seconds, len(ids), True, note), ids


def engine_alone(lines: list[bytes], ruleset: Ruleset, oracle: set[str]) -> Result:
    """C: decode, validate and evaluate from memory, in input order (the CPU ceiling)."""
    screening = Screening(ruleset, clock=wall_clock)
    records = [Record("file", 0, i, None, line) for i, line in enumerate(lines)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    ids = {a.alert_id for r in records for a in screening.screen_one(r).alerts}
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return Result("C engine alone (memory)", len(lines), seconds, cpu, len(ids), ids == oracle)


async def ideal_loop(run: Run, ruleset: Ruleset, total: int, oracle: set[str]) -> Result:
    """B: aiokafka getmany batches + orjson + the same engine, committing after alert acks."""
    s = run.settings
    consumer = clients.consumer(
        s,
        s.deposits_topic,
        s.withdrawals_topic,
        group_id=f"ideal-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        max_poll_records=2000,
    )
    producer = clients.producer(s, linger_ms=5)
    await consumer.start()
    await producer.start()
    screening = Screening(ruleset, s.topic_event_types, clock=wall_clock)
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
        "B ideal aiokafka loop",
        seen,
        time.perf_counter() - t0,
        time.process_time() - cpu0,
        len(ids),
        ids == oracle,
        "no durable state",
    )


def drain(run: Run, total: int, oracle: set[str], workers: int) -> tuple[Result, dict[str, float]]:
    """Start ``workers`` worker processes on the preloaded topics and time them until all is committed."""
    names = [f"w{i + 1}" for i in range(workers)]
    spawned = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        procs = list(pool.map(run.start, names))
    ready = time.perf_counter()
    pids = [p.process.pid for p in procs]
    cpu0 = sum(cpu_of(pid) for pid in pids)
    rss_ready = max(rss_mb(pid) for pid in pids)
    while run.lag() != 0:
        time.sleep(0.25)
    done = time.perf_counter()
    cpu = sum(cpu_of(pid) for pid in pids) - cpu0
    memory = {"rss_ready_mb": rss_ready, "peak_rss_mb": max(rss_mb(pid, "VmHWM") for pid in pids)}
    ids = set(run.alert_ids())
    run.stop_all()
    name = "A worker (1 process)" if workers == 1 else f"A worker ({workers} processes)"
    note = f"from ready; {done - spawned:.1f}s from start-up"
    return Result(name, total, done - ready, cpu, len(ids), ids == oracle, note), memory | {
        "from_start_s": done - spawned
    }


def list_memory(addresses: int, workdir: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.memory", str(addresses), str(workdir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"addresses": addresses, "error": 1.0, "stderr": done.stderr[-500:]}  # type: ignore[dict-item]
    return dict(orjson.loads(done.stdout))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--list-addresses", type=int, default=10_000_000)
    parser.add_argument("--soak-events", type=int, default=2_000_000)
    parser.add_argument("--soak-accounts", type=int, default=1_000_000)
    parser.add_argument("--transfers", type=int, default=300_000)
    parser.add_argument("--transfer-addresses", type=int, default=100_000)
    parser.add_argument("--screening-rate", type=float, default=1000.0)
    parser.add_argument("--screening-seconds", type=float, default=60.0)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    work = OUT / "work"
    work.mkdir(exist_ok=True)
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"machine: {machine}; {args.events} events, seed {SEED}", flush=True)

    lines = list(synthetic_events(args.events, seed=SEED, accounts=ACCOUNTS, poison_share=0.001))
    events_file = work / f"events-{args.events}.jsonl"
    events_file.write_bytes(b"\n".join(lines) + b"\n")
    backtest, oracle = backtest_cli(events_file, work / "oracle-alerts.jsonl")
    print(backtest.row(), flush=True)
    ruleset = load_ruleset([REPO / "rules"])
    settle_long_lived()  # as the CLI and the worker do once their rules are loaded
    results = [backtest, rescreen.rescreen_cli(events_file, work)]
    print(results[-1].row(), flush=True)
    results.append(engine_alone(lines, ruleset, oracle))
    print(results[-1].row(), flush=True)
    memory: dict[str, object] = {}
    latencies: list[latency.LatencyResult] = []
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        # Each run's topics are its own: start from an empty broker, or runs pile up gigabytes.
        subprocess.run(
            [str(REPO / "deploy" / "kafka" / "broker.sh"), "reset"],
            env={**os.environ, "SENTINEL_KAFKA_HOME": str(REPO / ".local" / "kafka-bench")},
            capture_output=True,
            check=False,
        )
    with project_broker("kafka-bench") as (bootstrap, env), tempfile.TemporaryDirectory() as workdir:
        run = Run(bootstrap, Path(workdir), env)
        t1 = time.perf_counter()
        run.produce(lines)
        print(f"preloaded {len(lines)} events in {time.perf_counter() - t1:.1f}s", flush=True)
        results.append(asyncio.run(ideal_loop(run, ruleset, len(lines), oracle)))
        print(results[-1].row(), flush=True)
        one, memory["worker_1"] = drain(run, len(lines), oracle, 1)
        results.append(one)
        print(one.row(), flush=True)
        fresh_group(run, "x2")
        two, memory["workers_2"] = drain(run, len(lines), oracle, 2)
        results.append(two)
        print(two.row(), flush=True)
        print("row D: the worker and a Quix Streams app on the same 4 rules...", flush=True)
        four = peer.peer_rows(run, events_file, work, len(lines))
        results.extend(four)
        for result in four:
            print(result.row(), flush=True)
        drain_rate = one.rate
        for index, load in enumerate((0.1, 0.5, 0.8)):
            rate = load * drain_rate
            count = int(rate * args.latency_seconds)
            offered = list(synthetic_events(count, seed=100 + index, accounts=ACCOUNTS, poison_share=0.001))
            expected = {
                orjson.loads(line)["alert_id"]
                for line in _oracle_alerts(offered, work / f"latency-{index}").read_bytes().splitlines()
            }
            level = Run(bootstrap, Path(workdir), env)
            latencies.append(latency.measure(level, offered, load, rate, expected))
            print(latencies[-1].row(), flush=True)
        exposure_worker = exposure.worker_report(
            Run(bootstrap, Path(workdir), env), args.transfers, args.transfer_addresses
        )
    memory["list"] = list_memory(args.list_addresses, work)

    a, b = one, next(r for r in results if r.name.startswith("B"))
    print(f"\nmachine: {machine}\n\n## Drain throughput ({args.events} events, 4 partitions)\n")
    print(HEADER)
    for result in results:
        print(result.row())
    print(f"\nA/B = {a.rate / b.rate:.1%}; 2 workers / 1 worker = {two.rate / one.rate:.2f}x")
    print(f"worker / Quix Streams on the same 4 rules (from process start) = {four[0].rate / four[1].rate:.2f}x")
    print(f"\n## Latency under load ({args.latency_seconds:.0f} s per level, open loop)\n")
    print(latency.HEADER)
    for level in latencies:
        print(level.row())
    w1 = memory["worker_1"]
    print("\n## Memory\n")
    print(
        f"- worker with the shipped lists: {w1['rss_ready_mb']:.0f} MB RSS when ready, "  # type: ignore[index]
        f"{w1['peak_rss_mb']:.0f} MB peak after {args.events} events"
    )  # type: ignore[index]
    print(f"- generated list: {memory['list']}")
    exposed = exposure.report(args.transfers, args.transfer_addresses)
    screened = screening.run(args.screening_rate, args.screening_seconds, 2000)
    console_figures = console.run(10_000)
    with tempfile.TemporaryDirectory() as workdir:
        soaked = soak.soak(args.soak_events, args.soak_accounts, 3.0, Path(workdir))
    soak.report(soaked, args.soak_accounts, 3.0)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (OUT / f"{stamp}.json").write_bytes(
        orjson.dumps(
            {
                "machine": machine,
                "events": args.events,
                "drain": [asdict(r) | {"rate": r.rate} for r in results],
                "latency": [asdict(level) for level in latencies],
                "memory": memory,
                "soak": [asdict(r) | {"growth": r.growth} for r in soaked],
                "exposure": exposed,
                "exposure_worker": exposure_worker,
                "console": console_figures,
                "screening": [
                    asdict(load) | {"p50_ms": load.pct(0.5), "p99_ms": load.pct(0.99), "p999_ms": load.pct(0.999)}
                    for load in screened
                ],
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    ok = all(r.matches_oracle for r in results + soaked) and all(level.matches_oracle for level in latencies)
    ok = ok and bool(exposed["matches_oracle"]) and bool(exposure_worker["matches_oracle"])
    ok = ok and all(load.errors == 0 for load in screened)
    return 0 if ok else 1


def _oracle_alerts(lines: list[bytes], stem: Path) -> Path:
    path, alerts = stem.with_suffix(".jsonl"), stem.with_suffix(".alerts.jsonl")
    path.write_bytes(b"\n".join(lines) + b"\n")
    backtest_cli(path, alerts)
    return alerts


if __name__ == "__main__":
    sys.exit(main())
