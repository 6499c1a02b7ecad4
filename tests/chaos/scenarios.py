"""The fault-injection scenarios, each scored against the offline oracle.

Each scenario produces a fixed input (synthetic deposits and withdrawals with sanctioned
hits and layering bursts, each topic in event-time order), injects its fault while
workers screen it, waits until the worker group has committed every input offset, then
reads the alert topic and compares it with what ``backtest`` raises on the same input
(:mod:`tests.chaos.scoring`). ``recovery`` is the longest time from a fault being removed
(worker restarted, broker back, topic fixed) until the group had caught up.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson

from streams.shell.clients import topic_for
from tests.chaos.cluster import broker, scenario
from tests.chaos.scoring import ScenarioResult, alerts_committed_past, chaos_input, exposure_input, score
from tests.integration.helpers import produce
from tests.poison import poison_records


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
        return score(run, f"worker kill -9 x{kills}", lines)


def kill_nine_exposure(
    bootstrap: str,
    workdir: Path,
    env: dict[str, str] | None,
    kills: int = 6,
    events: int = 1500,
    seed: int = 7,
) -> ScenarioResult:
    """kill -9 while chain transfers and deposits arrive: exposure state and waiting deposits survive.

    Two workers share the partitions, so exposure checks cross from one to the other; the
    one killed is chosen at random each time, and restarted.
    """
    rng = random.Random(seed)
    lines = exposure_input(events, seed)
    chunks = [lines[len(lines) * i // (kills + 1) : len(lines) * (i + 1) // (kills + 1)] for i in range(kills + 1)]
    with scenario(bootstrap, workdir, env) as run:
        run.start("w1")
        run.start("w2")
        for chunk in chunks[:-1]:
            run.produce(chunk)
            time.sleep(rng.uniform(0.0, 1.5))
            victim = rng.choice(["w1", "w2"])
            run.kill(victim)
            restarted = time.monotonic()
            run.start(victim)
            run.recoveries.append(run.wait_caught_up(since=restarted))
        run.produce(chunks[-1])
        run.wait_caught_up()
        run.stop_all()
        return score(run, f"kill -9 x{kills}, transfers and deposits, 2 workers", lines)


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
        return score(run, "graceful stop and restart", lines)


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
        return score(run, "second worker joins and leaves", lines)


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
        return score(run, name, lines)


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
        broken = alerts_committed_past(run, lines, committed)
        if broken:
            run.problems.append(f"input committed past {len(broken)} unacknowledged alert(s), e.g. {broken[0]}")
        if stuck_lag <= 0:
            run.problems.append("the fault held nothing back: the scenario did not test anything")
        run.notes.append(f"{stuck_lag} records held back while the topic refused alerts")
        run.set_alert_topic_limit(None)
        fixed = time.monotonic()
        run.recoveries.append(run.wait_caught_up(since=fixed))
        run.stop_all()
        return score(run, "alert topic refuses produces", lines)


def poison(
    bootstrap: str, workdir: Path, env: dict[str, str] | None, events: int = 2000, seed: int = 6
) -> ScenarioResult:
    """Every class of bad input, interleaved with good input; throughput compared with none."""
    lines = chaos_input(events, seed)
    good = next(e for e in map(orjson.loads, chaos_input(50, 99)) if e["type"] == "deposit")
    bad = poison_records(good)
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
            records.append((topic_for(run.settings, data), data["account_id"].encode(), line))
            if i % every == 0 and i // every < len(bad):
                records.append((run.settings.deposits_topic, bad[i // every].key, bad[i // every].value))
        # the same event twice: deduplicated, not dead-lettered
        records.append(records[0])
        t1 = time.monotonic()
        asyncio.run(produce(bootstrap, records))
        run.produced += len(records)
        run.wait_caught_up()
        poisoned_rate = len(records) / (time.monotonic() - t1)
        reasons = run.dead_letters()
        expected_reasons = Counter(p.reason for p in bad)
        if reasons != expected_reasons:
            run.problems.append(f"dead letters {dict(reasons)} != expected {dict(expected_reasons)}")
        run.notes.append(
            f"{sum(reasons.values())} dead letters in {len(reasons)} reasons; "
            f"{clean_rate:.0f} ev/s clean vs {poisoned_rate:.0f} ev/s with poison"
        )
        if any("restarted" in note for note in run.notes):
            run.problems.append("a worker crashed on poison input")
        run.stop_all()
        return score(run, "poison input, every class", lines)


SCENARIOS: dict[str, Callable[..., ScenarioResult]] = {
    "kill9": kill_nine,
    "kill9-exposure": kill_nine_exposure,
    "graceful": graceful_restart,
    "rebalance": rebalance,
    "broker-term": lambda b, w, e: broker_outage(b, w, e, "stop"),
    "broker-kill": lambda b, w, e: broker_outage(b, w, e, "kill"),
    "produce-failing": produce_failing,
    "poison": poison,
}
