"""Exposure benchmark: chain transfers per second through the screening path, and memory per exposed address.

    python -m tests.bench.exposure [--transfers N] [--addresses N]

A generated stream: transfers among ``addresses`` fresh addresses, some from the shipped
OFAC list's Lazarus Group addresses, a share of zero-value and unlisted-token transfers
(they must carry nothing), and some through a listed service (it must stop propagation).
Every transfer goes through :class:`~streams.core.screening.Screening` (decode, validate,
exposure update), as a worker would screen a ``chain-transfers`` record. The exposed set is
checked against a brute-force oracle written apart from the engine; a mismatch is
reported as FAILED, not as a number. Memory is what ``tracemalloc`` sees allocated and
still held by the exposure graphs, divided by the exposed addresses.
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson

from streams.core.events import format_timestamp, wall_clock
from streams.core.rules.exposure_rule import ExposureStore
from streams.core.rules.loader import load_ruleset
from streams.core.screening import Record, Screening
from tests.bench.common import cpu_of, rss_mb
from tests.chaos.cluster import Run
from tests.data import REPO
from tests.integration.helpers import free_port, project_broker, start_worker

START = datetime(2026, 1, 1, tzinfo=UTC)
LAZARUS = "0x098b716b8aaf21512996dc57eb0615e2383e2f96"
SERVICE = "0x7a250d5630b4cf539739df2c5dacb4c659f2488d"
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
MAX_HOPS = 3


def generate(count: int, addresses: int, seed: int = 5) -> list[dict[str, object]]:
    """Transfers in time order, one every 10 ms of event time."""
    rng = random.Random(seed)
    pool = [f"0x{n:040x}" for n in range(1, addresses + 1)]
    out: list[dict[str, object]] = []
    for n in range(count):
        roll = rng.random()
        sender = LAZARUS if roll < 0.01 else SERVICE if roll < 0.012 else rng.choice(pool)
        receiver = SERVICE if rng.random() < 0.002 else rng.choice(pool)
        token = rng.random()
        transfer: dict[str, object] = {
            "type": "transfer", "event_id": f"x{n}", "chain": "ethereum", "tx_hash": f"0x{n:064x}",
            "from_address": sender, "to_address": receiver, "asset": "ETH",
            "amount": "0" if rng.random() < 0.1 else f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}",
            "timestamp": format_timestamp(START + timedelta(milliseconds=10 * n)),
        }  # fmt: skip
        if token < 0.3:
            transfer.update(asset="USDT", token_contract=USDT if token < 0.2 else f"0x{n % 97 + 7:040x}")
        out.append(transfer)
    return out


def oracle(transfers: list[dict[str, object]]) -> set[str]:
    """The exposed addresses, by the definition in docs/rules.md (hops only; no share threshold)."""
    hops: dict[str, int] = {}
    for t in transfers:
        sender, receiver = str(t["from_address"]), str(t["to_address"])
        carries = Decimal(str(t["amount"])) > 0 and t.get("token_contract") in (None, USDT)
        if not carries or SERVICE in (sender, receiver) or receiver == LAZARUS:
            continue
        level = 0 if sender == LAZARUS else hops.get(sender)
        if level is not None and level < MAX_HOPS:
            hops[receiver] = min(hops.get(receiver, MAX_HOPS + 1), level + 1)
    return set(hops)


def run(count: int, addresses: int) -> dict[str, object]:
    ruleset = load_ruleset([REPO / "rules"])
    [rule] = ruleset.exposure_rules
    transfers = generate(count, addresses)
    lines = [orjson.dumps(t) for t in transfers]
    expected = oracle(transfers)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    screening = Screening(ruleset, clock=wall_clock, exposure=ExposureStore())
    started = time.perf_counter()
    for n, line in enumerate(lines):
        outcome = screening.screen_one(Record("chain-transfers", 0, n, None, line))
        assert outcome.dead_letter is None, outcome.dead_letter
    seconds = time.perf_counter() - started
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    exposed = screening.exposure.of(rule.spec.id).graph.exposed
    return {
        "transfers": count,
        "addresses": addresses,
        "seconds": seconds,
        "transfers_per_s": count / seconds,
        "exposed": len(exposed),
        "bytes_per_exposed": held / len(exposed) if exposed else 0.0,
        "matches_oracle": set(exposed) == expected,
        "note": "tracemalloc slows the run; transfers/s without it is in the second run",
    }


def timed_only(count: int, addresses: int) -> float:
    """The same run without tracemalloc: transfers per second."""
    ruleset = load_ruleset([REPO / "rules"])
    lines = [orjson.dumps(t) for t in generate(count, addresses)]
    screening = Screening(ruleset, clock=wall_clock, exposure=ExposureStore())
    started = time.perf_counter()
    for n, line in enumerate(lines):
        screening.screen_one(Record("chain-transfers", 0, n, None, line))
    return count / (time.perf_counter() - started)


def report(count: int, addresses: int) -> dict[str, object]:
    """Both runs, printed as the bench prints its sections."""
    measured = run(count, addresses)
    rate = timed_only(count, addresses)
    measured["transfers_per_s_untraced"] = rate
    verdict = "ok" if measured["matches_oracle"] else "FAILED (exposed set differs from the oracle)"
    print(f"\n## Exposure ({count} transfers among {addresses} addresses, one process)\n")
    print("| transfers/s | exposed addresses | bytes per exposed address | vs oracle |\n|---|---|---|---|")
    print(f"| {rate:,.0f} | {measured['exposed']} | {measured['bytes_per_exposed']:,.0f} | {verdict} |")
    return measured


def worker_rate(run: Run, count: int, addresses: int) -> dict[str, object]:
    """One worker on ``count`` transfers preloaded to ``chain-transfers``: transfers/s from ready to committed.

    They are keyed by chain, so all are on one partition, screened by one worker (a chain's
    funds are followed in order by one worker; more chains spread over more). The worker's
    own gauge of exposed addresses is compared with the oracle's count once it is done.
    """
    transfers = generate(count, addresses)
    expected = len(oracle(transfers))
    t0 = time.perf_counter()
    run.produce([orjson.dumps(t) for t in transfers])
    preload = time.perf_counter() - t0
    worker = start_worker(run.settings.model_copy(update={"metrics_port": free_port()}), run.workdir, "exposure")
    ready = time.perf_counter()
    cpu0 = cpu_of(worker.process.pid)
    while run.lag() != 0:
        time.sleep(0.25)
    seconds = time.perf_counter() - ready
    cpu = cpu_of(worker.process.pid) - cpu0
    peak = rss_mb(worker.process.pid, "VmHWM")
    exposed = -1.0
    deadline = time.monotonic() + 15
    while exposed != expected and time.monotonic() < deadline:
        time.sleep(1.0)  # the gauge is refreshed every 5 s
        found = re.search(r"^sentinel_exposed_addresses (\S+)$", worker.metrics(), re.M)
        exposed = float(found.group(1)) if found else -1.0
    worker.stop()
    return {
        "transfers": count,
        "preload_s": preload,
        "seconds": seconds,
        "transfers_per_s": count / seconds,
        "cpu_s_per_100k": cpu / count * 100_000,
        "peak_rss_mb": peak,
        "exposed": exposed,
        "matches_oracle": exposed == expected,
    }


def worker_report(run: Run, count: int, addresses: int) -> dict[str, object]:
    """:func:`worker_rate`, printed as the bench prints its sections."""
    measured = worker_rate(run, count, addresses)
    verdict = "ok" if measured["matches_oracle"] else "FAILED (exposed count differs from the oracle)"
    print(f"\n## Exposure on a worker ({count} transfers, one chain, one worker, real broker)\n")
    print("| transfers/s | CPU s per 100k | peak RSS MB | exposed addresses | vs oracle |\n|---|---|---|---|---|")
    print(
        f"| {measured['transfers_per_s']:,.0f} | {measured['cpu_s_per_100k']:.1f} | "
        f"{measured['peak_rss_mb']:.0f} | {measured['exposed']:.0f} | {verdict} |"
    )
    return measured


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--transfers", type=int, default=300_000)
    parser.add_argument("--addresses", type=int, default=100_000)
    parser.add_argument("--worker", action="store_true", help="also a worker on a real broker (.local/kafka-bench)")
    args = parser.parse_args()
    result = report(args.transfers, args.addresses)
    ok = bool(result["matches_oracle"])
    if args.worker:
        with project_broker("kafka-bench") as (bootstrap, env), tempfile.TemporaryDirectory() as workdir:
            ok = (
                bool(
                    worker_report(Run(bootstrap, Path(workdir), env), args.transfers, args.addresses)["matches_oracle"]
                )
                and ok
            )
    raise SystemExit(0 if ok else 1)
