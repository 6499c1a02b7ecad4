"""The chaos suite's cluster plumbing: a scenario's topics, worker processes, input and output.

:class:`Run` starts and kills ``sentinel worker`` processes, produces input, reads the
group's lag and the output topics, and injects topic faults; :func:`broker` stops and
starts the project's own broker. Scoring is in :mod:`tests.chaos.scoring`, the scenarios
in :mod:`tests.chaos.scenarios`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import TopicPartition
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import ConsumerRecord

from streams.shell.clients import key_for, started_admin, started_consumer, topic_for
from streams.shell.settings import Settings
from tests.integration.helpers import REPO, WorkerProcess, isolated_settings, prepare_topics, produce, start_worker


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
    def records_for(self, lines: list[bytes]) -> list[tuple[str, bytes, bytes]]:
        """``(topic, key, value)`` for each line: routed by type, keyed by account; poison to deposits."""
        records = []
        for line in lines:
            try:
                data = orjson.loads(line)
                topic, key = topic_for(self.settings, data), key_for(data) or b"poison"
            except (orjson.JSONDecodeError, AttributeError):
                topic, key = self.settings.deposits_topic, b"poison"
            records.append((topic, key, line))
        return records

    def produce(self, lines: list[bytes]) -> None:
        asyncio.run(produce(self.bootstrap, self.records_for(lines)))
        self.produced += len(lines)

    # -- progress ------------------------------------------------------------
    def lag(self, *, known_only: bool = False) -> int:
        """Input records not yet committed by the group (-1 if the broker does not answer).

        A partition without a committed offset counts from its start, so "caught up" is never
        claimed too early; ``known_only`` returns -1 instead (a sample, not a verdict).
        """
        try:
            return asyncio.run(asyncio.wait_for(self._lag(known_only), 15))
        except Exception:
            return -1

    @property
    def input_topics(self) -> list[str]:
        """Every topic the group screens: alerts are complete once all of them are committed."""
        s = self.settings
        exposure = [s.transfers_topic, s.exposure_checks_topic] if s.transfers_topic else []
        return [s.deposits_topic, s.withdrawals_topic, *exposure]

    async def _lag(self, known_only: bool = False) -> int:
        async with started_admin(self.settings) as admin, started_consumer(self.settings) as consumer:
            tps = [
                TopicPartition(topic, p) for topic in self.input_topics for p in range(self.settings.topic_partitions)
            ]
            ends = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(self.settings.app_id, partitions=tps)
            if known_only and any(tp not in committed or committed[tp].offset < 0 for tp in tps):
                return -1
            return sum(
                ends[tp] - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0) for tp in tps
            )

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
            records: list[ConsumerRecord] = []
            async with started_consumer(self.settings, topic, auto_offset_reset="earliest") as consumer:
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

        return asyncio.run(read())

    def alert_ids(self) -> list[str]:
        return [orjson.loads(r.value)["alert_id"] for r in self.read_topic(self.settings.alerts_topic)]

    def dead_letters(self) -> Counter[str]:
        records = self.read_topic(self.settings.dead_letter_topic)
        return Counter(dict(r.headers)["sentinel.error.reason"].decode() for r in records)

    # -- topic faults --------------------------------------------------------
    def set_alert_topic_limit(self, max_bytes: int | None) -> None:
        async def alter() -> None:
            async with started_admin(self.settings) as admin:
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

        asyncio.run(alter())

    def committed_offsets(self) -> dict[TopicPartition, int]:
        async def read() -> dict[TopicPartition, int]:
            async with started_admin(self.settings) as admin:
                found = await admin.list_consumer_group_offsets(self.settings.app_id)
            return {tp: meta.offset for tp, meta in found.items()}

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
