"""Helpers for tests on the real broker: topics, producing, collecting output, a worker process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka.structs import ConsumerRecord
from pydantic import SecretStr

from streams.shell import clients
from streams.shell.settings import Settings
from streams.shell.topics import create_topics
from tests.data import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plain_settings(bootstrap: str) -> Settings:
    """Default settings for a plain (PLAINTEXT) cluster at ``bootstrap``, to build clients with."""
    return Settings(kafka_bootstrap_servers=bootstrap)


def isolated_settings(bootstrap: str, suffix: str, **overrides: object) -> Settings:
    """Settings with topics and group of their own, so tests never see each other's records."""
    values: dict[str, object] = {
        "kafka_bootstrap_servers": bootstrap,
        "app_id": f"sentinel-test-{suffix}",
        "deposits_topic": f"deposits-{suffix}",
        "withdrawals_topic": f"withdrawals-{suffix}",
        "alerts_topic": f"freeze-alerts-{suffix}",
        "dead_letter_topic": f"sentinel-dlq-{suffix}",
        "control_topic": f"sentinel-control-{suffix}",
        "allowlist_topic": f"sentinel-allowlist-{suffix}",
        "transfers_topic": f"chain-transfers-{suffix}",
        "dispositions_topic": f"alert-dispositions-{suffix}",
        "metrics_port": free_port(),
        "rules": str(REPO / "rules"),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def settings_env(settings: Settings, data_dir: Path) -> dict[str, str]:
    """The environment that makes ``sentinel worker`` use ``settings`` (every field, as SENTINEL_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"SENTINEL_{name.upper()}"] = str(value)
    env["SENTINEL_DATA_DIR"] = str(data_dir)
    return env


def run_sentinel(
    settings: Settings, data_dir: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``sentinel ARGS`` as a user would, configured by ``settings`` (as SENTINEL_* variables)."""
    return subprocess.run(
        [sys.executable, "-m", "streams.commands.cli", *args],
        env={**settings_env(settings, data_dir), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )


async def produce(bootstrap: str, records: Sequence[tuple[str, bytes | None, bytes | None]]) -> None:
    """Produce ``(topic, key, value)`` records in order and wait for every acknowledgement."""
    async with clients.started_producer(plain_settings(bootstrap), linger_ms=5) as producer:
        # Sent back to back and awaited together: one producer keeps each partition's order.
        pending = [await producer.send(topic, value=value, key=key) for topic, key, value in records]
        await asyncio.gather(*pending)


async def collect(
    bootstrap: str, topics: Sequence[str], expected: int, timeout: float = 90.0, settle: float = 3.0
) -> list[ConsumerRecord]:
    """Read ``topics`` from the beginning until ``expected`` records arrived, then ``settle``
    seconds more so that any extra (duplicate, spurious) record is seen too."""
    records: list[ConsumerRecord] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    settle_until: float | None = None
    async with clients.started_consumer(plain_settings(bootstrap), *topics, auto_offset_reset="earliest") as consumer:
        while loop.time() < (settle_until or deadline):
            batches = await consumer.getmany(timeout_ms=250)
            for batch in batches.values():
                records.extend(batch)
            if settle_until is None and len(records) >= expected:
                settle_until = loop.time() + settle
    return records


@dataclass
class LoggedProcess:
    """A ``sentinel`` subprocess with its log."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)


@dataclass
class WorkerProcess(LoggedProcess):
    """A ``sentinel worker`` subprocess with its log and metrics."""

    metrics_url: str

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            return str(response.read().decode())


def start_worker(settings: Settings, workdir: Path, name: str = "worker") -> WorkerProcess:
    """Start a worker and return once it reports ready (its agents are consuming)."""
    log_path = workdir / f"{name}.log"
    handle = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "streams.commands.cli", "worker"],
        env=settings_env(settings, workdir / f"{name}-data"),
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    worker = WorkerProcess(process, log_path, f"http://127.0.0.1:{settings.metrics_port}/metrics")
    deadline = time.monotonic() + 90
    while "Worker]: Ready" not in worker.log():
        if process.poll() is not None:
            raise AssertionError(f"worker exited with {process.returncode}:\n{worker.log()[-4000:]}")
        if time.monotonic() > deadline:
            worker.stop()
            raise AssertionError(f"worker not ready after 90s:\n{worker.log()[-4000:]}")
        time.sleep(0.2)
    return worker


@contextmanager
def two_workers(settings: Settings, workdir: Path) -> Iterator[list[WorkerProcess]]:
    """Two workers of one group (``w1``, ``w2``, each with its own metrics port); each must stop cleanly."""
    workers = [
        start_worker(settings.model_copy(update={"metrics_port": free_port()}), workdir, f"w{n}") for n in (1, 2)
    ]
    yield workers
    for worker in workers:
        assert worker.stop() == 0, worker.log()[-3000:]


async def prepare_topics(settings: Settings) -> None:
    await create_topics(settings)


@contextmanager
def project_broker(name: str, *, allow_external: bool = True) -> Iterator[tuple[str, dict[str, str] | None]]:
    """(bootstrap, broker.sh environment) of the cluster in KAFKA_BOOTSTRAP_SERVERS (if allowed), or else
    of the project's own broker with its data in .local/<name>, started here and stopped afterwards."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") if allow_external else None
    if external:
        yield external, None
        return
    env = {"SENTINEL_KAFKA_HOME": str(REPO / ".local" / name)}
    script = str(REPO / "deploy" / "kafka" / "broker.sh")
    started = subprocess.run(
        [script, "start"], env={**os.environ, **env}, capture_output=True, text=True, check=True, timeout=300
    )
    try:
        yield started.stdout.strip().splitlines()[-1], env
    finally:
        subprocess.run([script, "stop"], env={**os.environ, **env}, check=False, timeout=120)
