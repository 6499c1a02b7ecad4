"""Fault injection on the real broker, scored against the offline oracle (``backtest``).

Each scenario produces a fixed input (synthetic deposits and withdrawals with sanctioned
hits and layering bursts, each topic in event-time order), injects its fault while
workers screen it, waits until the worker group has committed every input offset, then
reads the alert topic and compares it with what ``backtest`` raises on the same input:

- ``lost``: expected alert ids that never appeared;
- ``duplicates``: alert ids that appeared more than once (at-least-once allows them);
- ``spurious``: alert ids the oracle does not raise.

``recovery`` is the longest time from a fault being removed (worker restarted, broker
back, topic fixed) until the group had caught up with everything produced so far.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import ConsumerRecord

from streams.backtest import backtest_lines
from streams.events import wall_clock
from streams.rules.loader import load_ruleset
from streams.settings import Settings
from streams.synthetic import synthetic_events
from tests.integration.helpers import (
    REPO,
    WorkerProcess,
    isolated_settings,
    prepare_topics,
    produce,
    start_worker,
)

RULESET = load_ruleset([REPO / "rules"])


@dataclass
class ScenarioResult:
    """One row of the chaos table."""

    name: str
    events: int
    expected: int
    lost: int
    duplicates: int
    spurious: int
    recovery: float
    notes: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing spurious, and no other guarantee broken."""
        return self.lost == 0 and self.spurious == 0 and not self.problems

    def row(self) -> str:
        return (
            f"| {self.name} | {self.events} | {self.expected} | {self.lost} | {self.duplicates} | "
            f"{self.spurious} | {self.recovery:.1f} | {self.notes} |"
        )


HEADER = (
    "| scenario | events | expected alerts | lost | duplicates | spurious | recovery s | notes |\n"
    "|---|---|---|---|---|---|---|---|"
)


def chaos_input(count: int, seed: int) -> list[bytes]:
    """Synthetic events on few accounts, so windows and sequences fill up and alert."""
    return list(synthetic_events(count, seed=seed, accounts=300, events_per_second=2.0, sanctioned_share=0.02))


@dataclass
class Run:
    """One scenario's topics, workers and bookkeeping."""

    bootstrap: str
    workdir: Path
    broker_env: dict[str, str] | None
    settings: Settings = field(init=False)
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    produced: int = 0
    recoveries: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings = isolated_settings(self.bootstrap, uuid.uuid4().hex[:8])
        asyncio.run(prepare_topics(self.settings))

    # -- workers -------------------------------------------------------------
    def start(self, name: str = "w1") -> WorkerProcess:
        settings = self.settings.model_copy(update={"metrics_port": 0})
        worker = start_worker(settings, self.workdir, name)
        self.workers[name] = worker
        return worker

    def kill(self, name: str = "w1") -> None:
        self.workers.pop(name).stop(signal.SIGKILL)

    def stop(self, name: str = "w1") -> None:
        code = self.workers.pop(name).stop(signal.SIGTERM)
        if code != 0:
            self.notes.append(f"{name} exited {code} on SIGTERM")

    def stop_all(self) -> None:
        for name in list(self.workers):
            self.stop(name)

    def supervise(self) -> None:
        """Restart any worker that died by itself (as a process supervisor would)."""
        for name, worker in list(self.workers.items()):
            if worker.process.poll() is not None:
                self.notes.append(f"{name} exited {worker.process.returncode}; restarted")
                self.workers.pop(name)
                self.start(name)

    # -- input ---------------------------------------------------------------
    def produce(self, lines: list[bytes]) -> None:
        records = []
        for line in lines:
            try:
                data = orjson.loads(line)
                topic = (
                    self.settings.withdrawals_topic
                    if data.get("type") == "withdrawal"
                    else self.settings.deposits_topic
                )
                key = str(data.get("account_id", "poison")).encode()
            except (orjson.JSONDecodeError, AttributeError):
                topic, key = self.settings.deposits_topic, b"poison"
            records.append((topic, key, line))
        asyncio.run(produce(self.bootstrap, records))
        self.produced += len(records)

    # -- progress ------------------------------------------------------------
    def lag(self) -> int:
        """Input records not yet committed by the group (-1 if the broker does not answer)."""
        try:
            return asyncio.run(asyncio.wait_for(self._lag(), 15))
        except Exception:
            return -1

    async def _lag(self) -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        await admin.start()
        await consumer.start()
        try:
            tps = [
                TopicPartition(topic, p)
                for topic in (self.settings.deposits_topic, self.settings.withdrawals_topic)
                for p in range(self.settings.topic_partitions)
            ]
            ends = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(self.settings.app_id, partitions=tps)
            return sum(
                ends[tp] - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0) for tp in tps
            )
        finally:
            await consumer.stop()
            await admin.close()

    def wait_caught_up(self, since: float | None = None, timeout: float = 180.0) -> float:
        """Wait until every produced record is committed; return seconds since ``since``."""
        start = since if since is not None else time.monotonic()
        deadline = time.monotonic() + timeout
        while True:
            self.supervise()
            if self.lag() == 0:
                return time.monotonic() - start
            if time.monotonic() > deadline:
                logs = "\n".join(w.log()[-3000:] for w in self.workers.values())
                raise AssertionError(f"not caught up after {timeout}s (lag {self.lag()})\n{logs}")
            time.sleep(0.5)

    # -- output --------------------------------------------------------------
    def read_topic(self, topic: str) -> list[ConsumerRecord]:
        """Every record of ``topic`` up to its current end."""

        async def read() -> list[ConsumerRecord]:
            consumer = AIOKafkaConsumer(
                topic,
                bootstrap_servers=self.bootstrap,
                group_id=None,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await consumer.start()
            records: list[ConsumerRecord] = []
            try:
                while not consumer.assignment():
                    await asyncio.sleep(0.05)
                ends = await consumer.end_offsets(list(consumer.assignment()))
                while True:
                    positions = {tp: await consumer.position(tp) for tp in ends}
                    if all(positions[tp] >= end for tp, end in ends.items()):
                        return records
                    batches = await consumer.getmany(timeout_ms=500)
                    for batch in batches.values():
                        records.extend(batch)
            finally:
                await consumer.stop()

        return asyncio.run(read())

    def alert_ids(self) -> list[str]:
        return [orjson.loads(r.value)["alert_id"] for r in self.read_topic(self.settings.alerts_topic)]

    def dead_letters(self) -> Counter[str]:
        records = self.read_topic(self.settings.dead_letter_topic)
        return Counter(dict(r.headers)["sentinel.error.reason"].decode() for r in records)

    def score(self, name: str, lines: list[bytes]) -> ScenarioResult:
        expected = {a.alert_id for a in backtest_lines(lines, RULESET, clock=wall_clock).alerts}
        seen = Counter(self.alert_ids())
        return ScenarioResult(
            name=name,
            events=len(lines),
            expected=len(expected),
            lost=len(expected - set(seen)),
            duplicates=sum(1 for n in seen.values() if n > 1),
            spurious=len(set(seen) - expected),
            recovery=max(self.recoveries, default=0.0),
            notes="; ".join(self.notes + self.problems),
            problems=list(self.problems),
        )

    # -- topic faults --------------------------------------------------------
    def set_alert_topic_limit(self, max_bytes: int | None) -> None:
        async def alter() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await admin.start()
            try:
                value = str(max_bytes) if max_bytes is not None else "1048588"
                await admin.alter_configs(
                    [
                        ConfigResource(
                            ConfigResourceType.TOPIC,
                            self.settings.alerts_topic,
                            configs={"max.message.bytes": value},
                        )
                    ]
                )
            finally:
                await admin.close()

        asyncio.run(alter())

    def committed_offsets(self) -> dict[TopicPartition, int]:
        async def read() -> dict[TopicPartition, int]:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await admin.start()
            try:
                found = await admin.list_consumer_group_offsets(self.settings.app_id)
                return {tp: meta.offset for tp, meta in found.items()}
            finally:
                await admin.close()

        return asyncio.run(read())


def broker(action: str, env: dict[str, str] | None) -> None:
    """start, stop (SIGTERM) or kill (SIGKILL) the test broker."""
    if env is None:
        raise RuntimeError("broker faults need the project's own broker (KAFKA_BOOTSTRAP_SERVERS is set)")
    subprocess.run(
        [str(REPO / "deploy" / "kafka" / "broker.sh"), action],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=180,
    )


@contextmanager
def scenario(bootstrap: str, workdir: Path, broker_env: dict[str, str] | None) -> Iterator[Run]:
    run = Run(bootstrap, workdir, broker_env)
    try:
        yield run
    finally:
        for worker in run.workers.values():
            worker.stop(signal.SIGKILL)


# -- the scenarios ---------------------------------------------------------------------


def kill_nine(
    bootstrap: str,
    workdir: Path,
    env: dict[str, str] | None,
    kills: int = 10,
    events: int = 3000,
    seed: int = 1,
) -> ScenarioResult:
    """kill -9 the worker at random points while input arrives, and restart it."""
    rng = random.Random(seed)
    lines = chaos_input(events, seed)
    chunks = [lines[len(lines) * i // (kills + 1) : len(lines) * (i + 1) // (kills + 1)] for i in range(kills + 1)]
    with scenario(bootstrap, workdir, env) as run:
        run.start()
        for chunk in chunks[:-1]:
            run.produce(chunk)
            time.sleep(rng.uniform(0.0, 1.5))
            run.kill()
            restarted = time.monotonic()
            run.start()
            run.recoveries.append(run.wait_caught_up(since=restarted))
        run.produce(chunks[-1])
        run.wait_caught_up()
        run.stop_all()
        return run.score(f"worker kill -9 x{kills}", lines)


def graceful_restart(
    bootstrap: str, workdir: Path, env: dict[str, str] | None, events: int = 2000, seed: int = 2
) -> ScenarioResult:
    lines = chaos_input(events, seed)
    half = len(lines) // 2
    with scenario(bootstrap, workdir, env) as run:
        run.start()
        run.produce(lines[:half])
        time.sleep(1.0)
        run.stop()
        restarted = time.monotonic()
        run.start()
        run.produce(lines[half:])
        run.recoveries.append(run.wait_caught_up(since=restarted))
        run.stop_all()
        return run.score("graceful stop and restart", lines)


def rebalance(
    bootstrap: str, workdir: Path, env: dict[str, str] | None, events: int = 3000, seed: int = 3
) -> ScenarioResult:
    """A second worker joins mid-stream (partitions and their state move), then leaves."""
    lines = chaos_input(events, seed)
    thirds = [
        lines[: len(lines) // 3],
        lines[len(lines) // 3 : 2 * len(lines) // 3],
        lines[2 * len(lines) // 3 :],
    ]
    with scenario(bootstrap, workdir, env) as run:
        run.start("w1")
        run.produce(thirds[0])
        joined = time.monotonic()
        run.start("w2")
        run.produce(thirds[1])
        run.recoveries.append(run.wait_caught_up(since=joined))
        run.stop("w2")
        left = time.monotonic()
        run.produce(thirds[2])
        run.recoveries.append(run.wait_caught_up(since=left))
        run.stop_all()
        return run.score("second worker joins and leaves", lines)


def broker_outage(
    bootstrap: str, workdir: Path, env: dict[str, str] | None, action: str, events: int = 2000, seed: int = 4
) -> ScenarioResult:
    lines = chaos_input(events, seed)
    half = len(lines) // 2
    with scenario(bootstrap, workdir, env) as run:
        run.start()
        run.produce(lines[:half])
        time.sleep(0.5)
        broker(action, env)
        time.sleep(5)
        broker("start", env)
        back = time.monotonic()
        run.produce(lines[half:])
        run.recoveries.append(run.wait_caught_up(since=back, timeout=240))
        run.stop_all()
        name = "broker SIGTERM and restart" if action == "stop" else "broker SIGKILL and restart"
        return run.score(name, lines)


def produce_failing(
    bootstrap: str, workdir: Path, env: dict[str, str] | None, events: int = 1000, seed: int = 5
) -> ScenarioResult:
    """The alert topic refuses every alert: input offsets must not move past the first alerting record."""
    lines = chaos_input(events, seed)
    with scenario(bootstrap, workdir, env) as run:
        run.start()
        run.set_alert_topic_limit(200)  # smaller than any alert
        run.produce(lines)
        time.sleep(8)
        stuck_lag = run.lag()
        committed = run.committed_offsets()
        broken = _alerts_committed_past(run, lines, committed)
        if broken:
            run.problems.append(f"input committed past {len(broken)} unacknowledged alert(s), e.g. {broken[0]}")
        if stuck_lag <= 0:
            run.problems.append("the fault held nothing back: the scenario did not test anything")
        run.notes.append(f"{stuck_lag} records held back while the topic refused alerts")
        run.set_alert_topic_limit(None)
        fixed = time.monotonic()
        run.recoveries.append(run.wait_caught_up(since=fixed))
        run.stop_all()
        return run.score("alert topic refuses produces", lines)


def _alerts_committed_past(run: Run, lines: list[bytes], committed: dict[TopicPartition, int]) -> list[str]:
    """Oracle alerts none of whose events is still uncommitted.

    While no alert can be acknowledged, the record whose processing raised an alert must
    stay uncommitted, and that record is one of the alert's events (whichever of them the
    worker happened to process last). An alert all of whose events are committed was
    given up on.
    """
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    partitions = list(range(run.settings.topic_partitions))
    where: dict[str, tuple[TopicPartition, int]] = {}
    counters: Counter[TopicPartition] = Counter()
    for line in lines:
        data = orjson.loads(line)
        topic = run.settings.withdrawals_topic if data["type"] == "withdrawal" else run.settings.deposits_topic
        tp = TopicPartition(topic, partitioner(data["account_id"].encode(), partitions, partitions))
        where[data["event_id"]] = (tp, counters[tp])
        counters[tp] += 1
    return [
        alert.alert_id
        for alert in backtest_lines(lines, RULESET, clock=wall_clock).alerts
        if all(committed.get(where[e][0], 0) > where[e][1] for e in alert.event_ids)
    ]


def poison_lines() -> list[tuple[bytes | None, bytes | None, str]]:
    """(key, value, expected reason) for every class of bad input."""
    good = next(e for e in map(orjson.loads, chaos_input(50, 99)) if e["type"] == "deposit")

    def with_(**changes: object) -> bytes:
        return orjson.dumps({**good, "event_id": f"poison-{uuid.uuid4().hex[:6]}", **changes})

    account = good["account_id"].encode()
    return [
        (account, b'{"type": "deposit", "event_id": ', "invalid_json"),
        (account, b"\xc3\x28\xa0\xa1", "invalid_utf8"),
        (account, with_(amount=12.5), "invalid_field"),
        (account, with_(account_id=None), "invalid_field"),
        (account, orjson.dumps({k: v for k, v in good.items() if k != "tx_hash"}), "missing_field"),
        (account, with_(amount="1" + "0" * 30), "invalid_field"),
        (account, with_(amount="-5"), "invalid_field"),
        (account, with_(amount="0"), "invalid_field"),
        (account, with_(amount="NaN"), "invalid_field"),
        (account, with_(amount="1e3"), "invalid_field"),
        (account, with_(amount="9" * 80), "invalid_field"),
        (account, with_(memo="x" * 1_000_000), "too_large"),
        (account, b"[" * 5_000 + b"]" * 5_000, "invalid_json"),
        (account, with_()[:-1] + b', "amount": "999999"}', "invalid_json"),
        (None, with_(), "missing_key"),
        (account, None, "empty_value"),
        (account, with_(chain="dogechain"), "invalid_field"),
        (account, with_(timestamp="2999-01-01T00:00:00Z"), "invalid_field"),
        (account, with_(timestamp="1999-01-01T00:00:00Z"), "invalid_field"),
    ]


def poison(
    bootstrap: str, workdir: Path, env: dict[str, str] | None, events: int = 2000, seed: int = 6
) -> ScenarioResult:
    """Every class of bad input, interleaved with good input; throughput compared with none."""
    lines = chaos_input(events, seed)
    bad = poison_lines()
    with scenario(bootstrap, workdir, env) as run:
        run.start()
        t0 = time.monotonic()
        run.produce(lines[: events // 2])
        run.wait_caught_up()
        clean_rate = (events // 2) / (time.monotonic() - t0)
        records = []
        second_half = lines[events // 2 :]
        every = max(1, len(second_half) // (len(bad) + 1))
        for i, line in enumerate(second_half):
            data = orjson.loads(line)
            topic = run.settings.withdrawals_topic if data["type"] == "withdrawal" else run.settings.deposits_topic
            records.append((topic, data["account_id"].encode(), line))
            if i % every == 0 and i // every < len(bad):
                key, value, _ = bad[i // every]
                records.append((run.settings.deposits_topic, key, value))
        # the same event twice: deduplicated, not dead-lettered
        records.append(records[0])
        t1 = time.monotonic()
        asyncio.run(produce(bootstrap, records))
        run.produced += len(records)
        run.wait_caught_up()
        poisoned_rate = len(records) / (time.monotonic() - t1)
        reasons = run.dead_letters()
        expected_reasons = Counter(reason for *_, reason in bad)
        if reasons != expected_reasons:
            run.problems.append(f"dead letters {dict(reasons)} != expected {dict(expected_reasons)}")
        run.notes.append(
            f"{sum(reasons.values())} dead letters in {len(reasons)} reasons; "
            f"{clean_rate:.0f} ev/s clean vs {poisoned_rate:.0f} ev/s with poison"
        )
        if any("restarted" in note for note in run.notes):
            run.problems.append("a worker crashed on poison input")
        run.stop_all()
        return run.score("poison input, every class", lines)


SCENARIOS: dict[str, Callable[..., ScenarioResult]] = {
    "kill9": kill_nine,
    "graceful": graceful_restart,
    "rebalance": rebalance,
    "broker-term": lambda b, w, e: broker_outage(b, w, e, "stop"),
    "broker-kill": lambda b, w, e: broker_outage(b, w, e, "kill"),
    "produce-failing": produce_failing,
    "poison": poison,
}
