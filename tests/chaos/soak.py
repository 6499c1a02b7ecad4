"""``make soak``: a long fault soak on the real broker, scored against ``backtest``.

    python -m tests.chaos.soak [--minutes 20] [--seed 11] [--accounts 5000]

1. Calibrate: preload a batch of input, time one worker draining it: the drain rate.
2. For ``--minutes``, produce input open-loop at half that rate (a thread keeps the
   schedule whatever the cluster does; a batch the broker refuses is sent again), while a
   nemesis, at random times drawn from ``--seed``, mixes worker ``kill -9``, graceful
   restarts, a second worker joining and leaving, broker SIGKILL and restart, and the alert
   topic refusing produces. A worker that dies by itself (the stall watchdog exits 75) is
   restarted and reported with the last lines of its log that say why.
3. Stop the input, wait for the group to commit every record (lag zero), and compare the
   alert topic with what ``backtest`` raises on the same input: every expected alert id
   present, none spurious. Worker RSS is sampled throughout.

Prints one table (and writes it to .local/soak-results.md) and exits non-zero if an alert
was lost or spurious, the lag did not return to zero, or RSS passed ``--rss-limit-mb``.
Starts its own broker (data in .local/kafka-soak): broker faults need it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.core.synthetic import synthetic_events
from tests.chaos.cluster import Run, broker, scenario
from tests.chaos.scoring import score
from tests.data import REPO
from tests.integration.helpers import project_broker

FAULTS = ("kill9", "graceful", "join-leave", "broker-kill", "produce-refusal")


def nemesis_schedule(seed: int, seconds: float) -> list[tuple[float, str]]:
    """(seconds from the start, fault) pairs: one fault every 45-90 s, none in the last minute.

    The faults come in rounds, each round every kind once in a random order, so a run of a
    few rounds has every kind however the seed falls.
    """
    rng = random.Random(seed)
    at, schedule, round_ = rng.uniform(20, 40), [], []
    while at < seconds - 60:
        if not round_:
            round_ = rng.sample(FAULTS, len(FAULTS))
        schedule.append((at, round_.pop()))
        at += rng.uniform(45, 90)
    return schedule


class OpenLoopProducer(threading.Thread):
    """Produces ``records`` at ``rate`` per second from its start, whatever the cluster does."""

    def __init__(self, bootstrap: str, records: list[tuple[str, bytes, bytes]], rate: float) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.records, self.rate = bootstrap, records, rate
        self.sent = 0
        self.resends = 0
        self.most_behind = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._produce())
        except BaseException as exc:  # reported by the soak, never lost in a thread
            self.error = exc

    async def _produce(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
        while True:
            try:
                await producer.start()
                break
            except KafkaError:
                await asyncio.sleep(1)
        try:
            began = time.monotonic()
            while self.sent < len(self.records):
                due = min(len(self.records), int((time.monotonic() - began) * self.rate))
                if due <= self.sent:
                    await asyncio.sleep(0.05)
                    continue
                self.most_behind = max(self.most_behind, (due - self.sent) / self.rate)
                await self._send(producer, self.records[self.sent : due])
                self.sent = due
        finally:
            await producer.stop()

    async def _send(self, producer: AIOKafkaProducer, chunk: list[tuple[str, bytes, bytes]]) -> None:
        # A chunk refused (broker down) is sent again whole: records that did land are then
        # duplicated, which the worker drops by event id, as it must for any resending producer.
        while True:
            try:
                futures = [await producer.send(topic, value=value, key=key) for topic, key, value in chunk]
                await asyncio.gather(*futures)
                return
            except KafkaError:
                self.resends += 1
                await asyncio.sleep(1)


@dataclass
class Soak:
    """The nemesis's bookkeeping: faults done, samples taken, workers that died by themselves."""

    run: Run
    broker_env: dict[str, str]
    rng: random.Random
    logs: Path
    faults: Counter[str] = field(default_factory=Counter)
    deaths: list[str] = field(default_factory=list)
    lags: list[int] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)
    began: float = field(default_factory=time.monotonic)

    def sample(self) -> None:
        """Restart any worker that died by itself; record lag and RSS."""
        for name, worker in list(self.run.workers.items()):
            code = worker.process.poll()
            if code is not None:
                kept = self.logs / f"{name}-died-{len(self.deaths) + 1}.log"
                shutil.copy(worker.log_path, kept)
                why = [line for line in worker.log().splitlines() if "stall" in line.lower() or "Error" in line][-3:]
                self.deaths.append(f"{name} exited {code} at {self.elapsed():.0f}s ({kept.name}): {' | '.join(why)}")
                self.run.workers.pop(name)
                self.start(name)
            else:
                self.rss_mb[name] = max(self.rss_mb.get(name, 0.0), _rss_mb(worker.process.pid))
        lag = self.run.lag(known_only=True)
        if lag >= 0:
            self.lags.append(lag)

    def start(self, name: str) -> None:
        """Start a worker; a start that does not get ready in time is noted and tried again."""
        for attempt in range(1, 4):
            try:
                self.run.start(name)
                return
            except AssertionError as exc:
                kept = self.logs / f"{name}-start-failed-{len(self.deaths) + 1}.log"
                shutil.copy(self.run.workdir / f"{name}.log", kept)
                first_line = str(exc).splitlines()[0]
                self.deaths.append(
                    f"{name} start attempt {attempt} failed at {self.elapsed():.0f}s ({kept.name}): {first_line}"
                )
        raise RuntimeError(f"{name} did not start in 3 attempts")

    def idle(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sample()
            time.sleep(min(3.0, max(0.0, end - time.monotonic())))

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def inject(self, fault: str) -> None:
        run = self.run
        self.faults[fault] += 1
        if fault == "kill9":
            run.kill("w1")
            time.sleep(self.rng.uniform(0.0, 3.0))
            self.start("w1")
        elif fault == "graceful":
            run.stop("w1")
            self.start("w1")
        elif fault == "join-leave":
            self.start("w2")
            self.idle(self.rng.uniform(20, 40))
            run.stop("w2")
        elif fault == "broker-kill":
            broker("kill", self.broker_env)
            time.sleep(self.rng.uniform(5, 10))
            broker("start", self.broker_env)
        elif fault == "produce-refusal":
            run.set_alert_topic_limit(200)  # smaller than any alert
            self.idle(self.rng.uniform(10, 20))
            run.set_alert_topic_limit(None)


def changelog_mb(broker_env: dict[str, str], app_id: str) -> float:
    """Bytes on the broker's disk of the rule-state changelog (every partition), in MB."""
    data = Path(broker_env["SENTINEL_KAFKA_HOME"]) / "data"
    return sum(f.stat().st_size for f in data.glob(f"{app_id}-rule-state-changelog-*/*") if f.is_file()) / 1e6


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="make soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--calibration-events", type=int, default=20_000)
    parser.add_argument("--rss-limit-mb", type=float, default=1500.0)
    args = parser.parse_args(argv)
    # The input producer's retries while the broker is down are expected; the table says how many.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    stream = synthetic_events(
        100_000_000, seed=args.seed, accounts=args.accounts, events_per_second=20.0, sanctioned_share=0.02
    )
    logs = REPO / ".local" / "soak-logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    with project_broker("kafka-soak", allow_external=False) as (bootstrap, env):
        assert env is not None
        with tempfile.TemporaryDirectory() as workdir, scenario(bootstrap, Path(workdir), env) as run:
            soak = Soak(run, env, random.Random(args.seed), logs)
            run.start("w1")
            lines = list(itertools.islice(stream, args.calibration_events))
            produced_at = time.monotonic()
            run.produce(lines)
            drain = len(lines) / run.wait_caught_up(since=produced_at)
            rate = drain / 2
            seconds = args.minutes * 60
            more = list(itertools.islice(stream, int(rate * seconds)))
            lines += more
            producer = OpenLoopProducer(bootstrap, run.records_for(more), rate)
            print(f"drain rate {drain:.0f} ev/s; producing {len(more)} events at {rate:.0f} ev/s for {seconds:.0f}s")
            soak.began = time.monotonic()
            producer.start()
            try:
                for at, fault in nemesis_schedule(args.seed, seconds):
                    soak.idle(at - soak.elapsed())
                    print(f"{soak.elapsed():6.0f}s  {fault}", flush=True)
                    soak.inject(fault)
            except RuntimeError as exc:
                print(f"soak aborted: {exc}; changelog {changelog_mb(env, run.settings.app_id):.0f} MB")
                print("\n".join(soak.deaths) + f"\nlogs in {logs}")
                return 1
            producer.join()
            if producer.error is not None:
                raise producer.error
            run.produced += producer.sent
            input_done = soak.elapsed()
            drained = time.monotonic()
            soak.sample()
            run.recoveries.append(run.wait_caught_up(since=drained, timeout=900))
            final_lag = run.lag()
            changelog = changelog_mb(env, run.settings.app_id)
            run.stop_all()
            result = score(run, f"fault soak {args.minutes:g} min", lines)
    problems = list(result.problems)
    peak = max(soak.rss_mb.values(), default=0.0)
    if peak > args.rss_limit_mb:
        problems.append(f"worker RSS {peak:.0f} MB over {args.rss_limit_mb:.0f} MB")
    if final_lag != 0:
        problems.append(f"lag {final_lag} at the end")
    ok = result.lost == 0 and result.spurious == 0 and not problems
    table = "\n".join(
        [
            "| | |",
            "|---|---|",
            f"| input | {len(lines)} events: {args.calibration_events} preloaded, then {len(more)} at {rate:.0f} ev/s "
            f"(half the measured drain rate of {drain:.0f} ev/s) for {input_done:.0f} s, seed {args.seed} |",
            f"| faults | {', '.join(f'{k} x{v}' for k, v in sorted(soak.faults.items()))} |",
            f"| producer | {producer.resends} chunk(s) sent again; "
            f"at most {producer.most_behind:.1f} s behind schedule |",
            f"| expected alerts | {result.expected} (backtest on the same input) |",
            f"| lost / spurious / duplicated ids | {result.lost} / {result.spurious} / {result.duplicates} |",
            f"| lag | median {statistics.median(soak.lags or [0]):.0f}, max {max(soak.lags, default=0)} in "
            f"{len(soak.lags)} samples during the run; {final_lag} at the end, "
            f"{run.recoveries[-1]:.0f} s after the input stopped |",
            f"| state changelog on disk at the end | {changelog:.0f} MB |",
            f"| worker peak RSS | {', '.join(f'{k} {v:.0f} MB' for k, v in sorted(soak.rss_mb.items()))} |",
            f"| workers that died by themselves | {len(soak.deaths)}{': ' if soak.deaths else ''}"
            f"{'; '.join(soak.deaths)} |",
            f"| notes | {result.notes or 'none'} |",
            f"| verdict | {'PASS' if ok else 'FAIL: ' + '; '.join(problems or ['alerts lost or spurious'])} |",
        ]
    )
    print("\n" + table)
    (REPO / ".local" / "soak-results.md").write_text(table + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main(sys.argv[1:]))
