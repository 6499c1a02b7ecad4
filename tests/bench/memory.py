"""Memory and load time of a ruleset with a generated list of many addresses.

Run in a child process so its peak RSS is the list's, not the bench's:

    python -m tests.bench.memory ADDRESSES WORKDIR   # prints one JSON object
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import orjson

RULE_FILE = """\
required_engine_version: 1
lists:
  - id: generated
    name: Generated addresses
    category: custom
    source: bench (random EVM addresses)
    version: "1"
    file: generated.txt
rules:
  - id: generated-sender
    version: 1.0.0
    name: Sender on the generated list
    description: A deposit from any address of the generated list.
    typology: sanctions
    severity: high
    action: freeze
    events: [deposit]
    condition: {field: from_addresses, in_list: generated}
    summary: "{account_id} received from a listed address"
"""


def write_list(path: Path, count: int) -> None:
    """``count`` distinct random EVM addresses, one a line, in mixed case as lists ship them."""
    with path.open("w") as handle:
        chunk = 100_000
        for start in range(0, count, chunk):
            raw = os.urandom(20 * min(chunk, count - start)).hex()
            handle.write("".join(f"0x{raw[i : i + 40].upper()}\n" for i in range(0, len(raw), 40)))


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    count, workdir = int(sys.argv[1]), Path(sys.argv[2])
    rules = workdir / f"rules-{count}"
    rules.mkdir(parents=True, exist_ok=True)
    listing = rules / "generated.txt"
    if not listing.exists() or sum(1 for _ in listing.open()) != count:
        write_list(listing, count)
    (rules / "generated.yaml").write_text(RULE_FILE)
    from streams.core.rules.loader import load_ruleset
    from streams.shell.memory import settle_long_lived

    before = peak_rss_mb()
    started = time.perf_counter()
    ruleset = load_ruleset([rules])
    settle_long_lived()
    seconds = time.perf_counter() - started
    loaded = len(ruleset.lists["generated"])
    probe = "0x" + listing.open().readline().strip()[2:].lower()
    hit = ruleset.lists["generated"].get(probe) is not None
    print(
        orjson.dumps(
            {
                "addresses": loaded,
                "load_seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
                "rss_before_mb": before,
                "lookup_works": hit,
            }
        ).decode()
    )
    return 0 if loaded == count and hit else 1


if __name__ == "__main__":
    sys.exit(main())
