"""Screening API benchmark: an open-loop HTTP load against one worker, then two.

    python -m tests.bench.screening [--rate R] [--seconds S] [--accounts N]

Open loop: request *n* is due at ``start + n / rate`` and is sent then, whether or not
earlier ones have been answered; its latency is counted from when it was due, not from
when it could be sent, so a stalled server shows as latency (no coordinated omission).
The client is a small Go program (tests/bench/loadgen, standard library only, built with
the machine's ``go``): a Python client at 1,000 requests/s would take a core of the two
this machine has from the worker it measures.

Three runs: address screens against one worker; withdrawal screens of accounts with
state (a deposit each, consumed by the worker first) against one worker; the same
against the first of two workers, where about half the accounts are held by the other
and routed there. Every answer must be a 200 with the decision the rules give (a
withdrawal to an OFAC address every tenth request is ``block``, the rest ``allow``);
anything else counts as an error. Besides the run's quantiles, each row gives the p99 of
each second of due times, the median second and the worst: a median near the run's p99
is steady queueing (the machine is too busy), a low median and a high worst are stalls.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson

from streams.shell.settings import Settings
from tests.bench.common import cpu_of, percentile
from tests.chaos.cluster import Run
from tests.data import REPO
from tests.factories import CLEAN_EVM, SDN_TRON, deposit, raw, withdrawal
from tests.integration.helpers import WorkerProcess, free_port, produce, project_broker, start_worker

TOKEN = "bench-token-0123456789abcdef"
HEADER = (
    "| run | requests | p50 ms | p99 ms | p99.9 ms | max ms | p99 by second: median / worst ms | errors "
    "| worker CPU s |\n"
    "|---|---|---|---|---|---|---|---|---|"
)
CLEAN_TRON = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"


@dataclass
class Load:
    """One open-loop run's latencies (seconds, from each request's due time), due times and errors."""

    name: str
    latencies: list[float]
    errors: int
    cpu_s: float
    #: Each latency's due time, in seconds from the run's start (same order as ``latencies``).
    due_s: list[float]

    def pct(self, q: float) -> float:
        """The ``q`` quantile in milliseconds."""
        return percentile(self.latencies, q) * 1000

    def p99_by_second(self) -> list[float]:
        """The p99 of each second of due times, in order: steady queueing is high throughout, a stall in a few."""
        seconds: dict[int, list[float]] = {}
        for due, latency in zip(self.due_s, self.latencies, strict=True):
            seconds.setdefault(int(due), []).append(latency)
        return [percentile(seconds[second], 0.99) * 1000 for second in sorted(seconds)]

    def row(self) -> str:
        """A markdown table row."""
        by_second = sorted(self.p99_by_second()) or [float("nan")]
        return (
            f"| {self.name} | {len(self.latencies) + self.errors} | {self.pct(0.5):.1f} | {self.pct(0.99):.1f} | "
            f"{self.pct(0.999):.1f} | {self.pct(1.0):.1f} | {by_second[len(by_second) // 2]:.1f} / "
            f"{by_second[-1]:.1f} | {self.errors} | {self.cpu_s:.1f} |"
        )


Request = tuple[str, str, bytes | None, str]  # method, path, body, the decision expected


def build_loadgen() -> Path:
    """Build the Go load generator (tests/bench/loadgen, standard library only) into .local/."""
    binary = REPO / ".local" / "loadgen"
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=REPO / "tests" / "bench" / "loadgen", check=True)
    return binary


def open_loop(base: str, requests: list[Request], rate: float) -> tuple[list[float], list[float], int, list[str]]:
    """Send ``requests`` at ``rate`` per second on schedule.

    The latencies (s) of the right answers, their due times (s from the start), the
    errors and a few of their reasons.
    """
    lines = b"".join(
        orjson.dumps({"method": m, "path": p, "body": (b or b"").decode(), "expect": e}) + b"\n"
        for m, p, b, e in requests
    )
    done = subprocess.run(
        [str(build_loadgen()), "-base", base, "-rate", str(rate), "-token", TOKEN],
        input=lines, capture_output=True, check=True, timeout=len(requests) / rate + 120,
    )  # fmt: skip
    found = orjson.loads(done.stdout)
    latencies = [us / 1e6 for us in found["latencies_us"] or []]
    due = [ms / 1e3 for ms in found["due_ms"] or []]
    return latencies, due, int(found["errors"]), list(found["reasons"] or [])


def address_requests(count: int) -> list[Request]:
    """Address screens: every tenth of a Lazarus Group address (block), the rest clean."""
    lazarus = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96"
    return [
        ("GET", f"/v1/screen/address/ethereum/{lazarus if n % 10 == 0 else CLEAN_EVM}", None,
         "block" if n % 10 == 0 else "allow")
        for n in range(count)
    ]  # fmt: skip


def withdrawal_requests(count: int, accounts: int) -> list[Request]:
    """Withdrawal screens of accounts with a deposit: small ones (allow), every tenth to OFAC (block)."""
    out: list[Request] = []
    for n in range(count):
        event = withdrawal(
            event_id=f"bench-w{n}", account_id=f"bench-{n % accounts}", chain="tron", usd_value="10.00",
            timestamp="2026-11-27T06:30:00Z", to_address=SDN_TRON if n % 10 == 0 else CLEAN_TRON,
        )  # fmt: skip
        event.pop("type")
        out.append(("POST", "/v1/screen/withdrawal", raw(event), "block" if n % 10 == 0 else "allow"))
    return out


def measure(name: str, base: str, requests: list[Request], rate: float, workers: list[WorkerProcess]) -> Load:
    """One run, with the workers' CPU over it."""
    cpu0 = sum(cpu_of(w.process.pid) for w in workers)
    latencies, due, errors, reasons = open_loop(base, requests, rate)
    if reasons:
        print(f"  {name}: errors such as {reasons[:2]}", flush=True)
    return Load(name, latencies, errors, sum(cpu_of(w.process.pid) for w in workers) - cpu0, due)


def ready(settings: Settings) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.metrics_port}/readyz", timeout=2) as r:
            return bool(orjson.loads(r.read())["ready"])
    except OSError:
        return False


def run(rate: float, seconds: float, accounts: int) -> list[Load]:
    """The three runs (see the module doc), printed as they finish."""
    count = int(rate * seconds)
    loads: list[Load] = []
    print(f"\n## Screening API, open loop at {rate:,.0f} requests/s for {seconds:.0f} s\n\n{HEADER}", flush=True)
    with project_broker("kafka-bench") as (bootstrap, env), tempfile.TemporaryDirectory() as workdir:
        base = Run(bootstrap, Path(workdir), env)
        settings = base.settings.model_copy(
            update={"screening_tokens": f"bench:{TOKEN}", "screening_rate": rate * 10, "screening_port": free_port()}
        )
        deposits = [
            (settings.deposits_topic, f"bench-{a}".encode(),
             raw(deposit(event_id=f"bench-d{a}", account_id=f"bench-{a}", from_addresses=[CLEAN_EVM])))
            for a in range(accounts)
        ]  # fmt: skip
        asyncio.run(produce(bootstrap, deposits))
        workers = [start_worker(settings.model_copy(update={"metrics_port": free_port()}), Path(workdir), "s1")]
        first = f"http://127.0.0.1:{settings.screening_port}"
        try:
            while base.lag() != 0:
                time.sleep(0.5)
            for name, requests in (
                ("address, 1 worker", address_requests(count)),
                ("withdrawal with state, 1 worker", withdrawal_requests(count, accounts)),
            ):
                loads.append(measure(name, first, requests, rate, workers))
                print(loads[-1].row(), flush=True)
            other = settings.model_copy(update={"metrics_port": free_port(), "screening_port": free_port()})
            workers.append(start_worker(other, Path(workdir), "s2"))
            deadline = time.monotonic() + 90
            while not ready(other) and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(3)  # the first worker's revocation settles too
            # As behind a load balancer: requests alternate between the two workers, and each
            # worker passes on the ones for accounts the other holds (about half).
            second = f"http://127.0.0.1:{other.screening_port}"
            spread = [(m, f"{(first, second)[n % 2]}{p}", b, e) for n, (m, p, b, e) in
                      enumerate(withdrawal_requests(count, accounts))]  # fmt: skip
            loads.append(measure("withdrawal with state, 2 workers (~half routed)", "", spread, rate, workers))
            print(loads[-1].row(), flush=True)
        finally:
            for worker in workers:
                worker.stop()
    return loads


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--accounts", type=int, default=2000)
    args = parser.parse_args()
    results = run(args.rate, args.seconds, args.accounts)
    raise SystemExit(0 if all(load.errors == 0 for load in results) else 1)
