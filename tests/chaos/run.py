"""``make chaos``: every fault-injection scenario on the real local broker, as a table.

    python -m tests.chaos.run [SCENARIO ...]     (default: all of them)

Starts its own broker (data in .local/kafka-chaos) unless KAFKA_BOOTSTRAP_SERVERS is
set, prints one row per scenario, writes the table to .local/chaos-results.md, and
exits non-zero if any scenario lost an alert, raised a spurious one or broke another
guarantee.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tests.chaos import scenarios, scoring
from tests.data import REPO
from tests.integration.helpers import project_broker


def main(names: list[str]) -> int:
    chosen = names or list(scenarios.SCENARIOS)
    unknown = [n for n in chosen if n not in scenarios.SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(scenarios.SCENARIOS)}")
        return 2
    rows = []
    failed = False
    with project_broker("kafka-chaos") as (bootstrap, env):
        print(scoring.HEADER, flush=True)
        for name in chosen:
            began = time.monotonic()
            with tempfile.TemporaryDirectory() as workdir:
                try:
                    result = scenarios.SCENARIOS[name](bootstrap, Path(workdir), env)
                except Exception as exc:  # a scenario that crashes is a failed row
                    problem = f"{type(exc).__name__}: {exc}"
                    result = scoring.ScenarioResult(name, 0, 0, 0, 0, 0, 0.0, problems=[problem])
                    result.notes = problem[:300]
            failed |= not result.ok
            rows.append(result.row())
            print(result.row() + f"  ({time.monotonic() - began:.0f}s)", flush=True)
    out = REPO / ".local" / "chaos-results.md"
    out.write_text(scoring.HEADER + "\n" + "\n".join(rows) + "\n")
    print(f"\n{'FAILED' if failed else 'all scenarios: lost = 0, spurious = 0'}; table in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
