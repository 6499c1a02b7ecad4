"""What every bench contestant reports: a result row, and a process's CPU time and memory."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.chaos.cluster import Run
from tests.integration.helpers import prepare_topics


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    cpu_seconds: float
    alerts: int
    matches_oracle: bool
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def row(self) -> str:
        cpu_per_million = self.cpu_seconds / self.events * 1_000_000 if self.events else 0.0
        verdict = "ok" if self.matches_oracle else "FAILED (alerts differ from the oracle)"
        return (
            f"| {self.name} | {self.events} | {self.seconds:.1f} | {self.rate:,.0f} | {cpu_per_million:,.0f} | "
            f"{self.alerts} | {verdict} | {self.note} |"
        )


HEADER = (
    "| run | events | seconds | events/s | CPU s per 1M | alerts | vs oracle | note |\n"
    "|---|---|---|---|---|---|---|---|"
)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank ``share`` quantile of ``values`` (NaN for none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fresh_group(run: Run, tag: str, **changes: Any) -> None:
    """Same input topics, a new consumer group, state table and alert topic (and ``changes``)."""
    update = {"app_id": f"{run.settings.app_id}-{tag}", "alerts_topic": f"{run.settings.alerts_topic}-{tag}"}
    run.settings = run.settings.model_copy(update=update | changes)
    asyncio.run(prepare_topics(run.settings))
