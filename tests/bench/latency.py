"""Latency under load: an open-loop producer on a schedule, broker-append to alert-append times.

The producer sends event ``i`` at ``start + i / rate`` whether or not the worker keeps up
(open loop), so a slow worker cannot slow the load down and hide its own delay
(coordinated omission). Input and alert topics use ``LogAppendTime``, so both ends of
each measured interval are the broker's own append times. The interval is taken for the
event that triggered each alert (``evidence.event.event_id``).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from dataclasses import dataclass, field

import orjson
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.shell import clients
from tests.bench.common import percentile
from tests.chaos.cluster import Run


@dataclass
class LatencyResult:
    load: float
    rate: float
    seconds: float
    events: int
    alerts: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    max_lag: int
    drain_after_s: float
    max_send_slip_ms: float
    matches_oracle: bool
    lag_samples: list[int] = field(default_factory=list)

    def row(self) -> str:
        bounded = "yes" if self.drain_after_s < 5 else f"no (drained {self.drain_after_s:.0f}s after the load)"
        verdict = "ok" if self.matches_oracle else "FAILED (alerts differ from the oracle)"
        return (
            f"| {self.load:.0%} | {self.rate:,.0f} | {self.events} | {self.alerts} | {self.p50_ms:.1f} | "
            f"{self.p99_ms:.1f} | {self.p999_ms:.1f} | {self.max_ms:.1f} | {self.max_lag} | {bounded} | "
            f"{self.max_send_slip_ms:.0f} | {verdict} |"
        )


HEADER = (
    "| load (of A's drain rate) | events/s offered | events | alerts | p50 ms | p99 ms | p99.9 ms | max ms | "
    "max lag | lag bounded | producer slip ms | vs oracle |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


async def _log_append_time(run: Run) -> None:
    s = run.settings
    async with clients.started_admin(s) as admin:
        await admin.alter_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, topic, configs={"message.timestamp.type": "LogAppendTime"})
                for topic in (s.deposits_topic, s.withdrawals_topic, s.alerts_topic)
            ]
        )


async def _open_loop(run: Run, records: list[tuple[str, bytes, bytes]], rate: float) -> float:
    """Send ``records`` at ``rate`` per second on a fixed schedule; return the worst slip (s)."""
    slip = 0.0
    pending = []
    # acks=1 without idempotence: a load generator, not a guarantee
    async with clients.started_producer(run.settings, linger_ms=2, acks=1, enable_idempotence=False) as producer:
        start = time.perf_counter()
        for index, (topic, key, value) in enumerate(records):
            due = start + index / rate
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                slip = max(slip, now - due)
            pending.append(await producer.send(topic, value=value, key=key))
        await asyncio.gather(*pending)
    return slip


def measure(run: Run, lines: list[bytes], load: float, rate: float, oracle: set[str]) -> LatencyResult:
    """Offer ``lines`` at ``rate`` to a running worker of ``run``; measure while it screens them."""
    asyncio.run(_log_append_time(run))
    s = run.settings
    records = run.records_for(lines)
    run.start()
    lags: list[int] = []
    sampling = True

    def sample() -> None:
        while sampling:
            lags.append(run.lag())
            time.sleep(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    slip = asyncio.run(_open_loop(run, records, rate))
    offered = time.perf_counter() - started
    load_end = time.perf_counter()
    while run.lag() != 0:
        time.sleep(0.2)
    drain_after = time.perf_counter() - load_end
    sampling = False
    sampler.join()
    run.stop()

    appended: dict[str, int] = {}
    for topic in (s.deposits_topic, s.withdrawals_topic):
        for record in run.read_topic(topic):
            try:
                appended[orjson.loads(record.value)["event_id"]] = record.timestamp
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue  # poison: raises no alert
    latencies = []
    ids = set()
    for record in run.read_topic(s.alerts_topic):
        alert = orjson.loads(record.value)
        ids.add(alert["alert_id"])
        trigger = alert["evidence"]["event"]["event_id"]
        if trigger in appended:
            latencies.append(float(record.timestamp - appended[trigger]))
    return LatencyResult(
        load=load,
        rate=rate,
        seconds=offered,
        events=len(lines),
        alerts=len(ids),
        p50_ms=statistics.median(latencies) if latencies else float("nan"),
        p99_ms=percentile(latencies, 0.99),
        p999_ms=percentile(latencies, 0.999),
        max_ms=max(latencies, default=float("nan")),
        max_lag=max((lag for lag in lags if lag >= 0), default=0),
        drain_after_s=drain_after,
        max_send_slip_ms=slip * 1000,
        matches_oracle=ids == oracle,
        lag_samples=lags,
    )
