"""``make chaos``: every fault-injection scenario on the real local broker, as a table.

    python -m tests.chaos.run [SCENARIO ...]     (default: all of them)

Starts its own broker (data in .local/kafka-chaos) unless KAFKA_BOOTSTRAP_SERVERS is
set, prints one row per scenario, writes the table to .local/chaos-results.md, and
exits non-zero if any scenario lost an alert, raised a spurious one or broke another
guarantee.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.chaos import harness

REPO = Path(__file__).resolve().parents[2]


def main(names: list[str]) -> int:
    chosen = names or list(harness.SCENARIOS)
    unknown = [n for n in chosen if n not in harness.SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(harness.SCENARIOS)}")
        return 2
    env: dict[str, str] | None = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        env = {"SENTINEL_KAFKA_HOME": str(REPO / ".local" / "kafka-chaos")}
        started = subprocess.run(
            [str(REPO / "deploy" / "kafka" / "broker.sh"), "start"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        bootstrap = started.stdout.strip().splitlines()[-1]
    rows = []
    failed = False
    try:
        print(harness.HEADER, flush=True)
        for name in chosen:
            began = time.monotonic()
            with tempfile.TemporaryDirectory() as workdir:
                try:
                    result = harness.SCENARIOS[name](bootstrap, Path(workdir), env)
                except Exception as exc:
                    result = harness.ScenarioResult(name, 0, 0, 0, 0, 0, 0.0, problems=[f"{type(exc).__name__}: {exc}"])
                    result.notes = "; ".join(result.problems)[:300]
            failed |= not result.ok
            rows.append(result.row())
            print(result.row() + f"  ({time.monotonic() - began:.0f}s)", flush=True)
    finally:
        if env is not None:
            subprocess.run(
                [str(REPO / "deploy" / "kafka" / "broker.sh"), "stop"],
                env={**os.environ, **env},
                check=False,
                timeout=120,
            )
    out = REPO / ".local" / "chaos-results.md"
    out.write_text(harness.HEADER + "\n" + "\n".join(rows) + "\n")
    print(f"\n{'FAILED' if failed else 'all scenarios: lost = 0, spurious = 0'}; table in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
