"""The rescreen row of ``make bench``: ``sentinel rescreen`` on the bench file, checked against its rule alone.

The list update is the shipped OFAC list against its own first rows (most of its
addresses "added"), so the rescreen finds thousands of events. The oracle is the
retroactive rule run on every record by the engine, without rescreen's quick look for
added addresses, so a look that let a matching record slip would show here.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import orjson

from streams.core.events import wall_clock
from streams.core.rescreen import added_between, file_events, load_sdn_list, retroactive_ruleset
from streams.core.screening import Screening
from tests.bench.common import Result
from tests.data import REPO

SHIPPED_LIST = REPO / "rules" / "lists" / "ofac-sdn.csv"
#: Rows of the shipped list the "old" list keeps: the rest count as added.
OLD_ROWS = 10


def rescreen_cli(events_file: Path, work: Path) -> Result:
    """``sentinel rescreen --input`` as a user runs it, one process; alerts against the rule alone."""
    old = work / "ofac-sdn-old.csv"
    old.write_text("".join(SHIPPED_LIST.read_text().splitlines(keepends=True)[: OLD_ROWS + 1]))
    found = work / "rescreen-alerts.jsonl"
    command = [sys.executable, "-m", "streams.commands.cli", "rescreen", "--since", "2000-01-01"]
    command += ["--until", "2100-01-01", "--old", str(old), "--input", str(events_file), "--dry-run"]
    started = time.perf_counter()
    done = subprocess.run([*command, "--output", str(found)], cwd=REPO, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    ids = {orjson.loads(line)["alert_id"] for line in found.read_bytes().splitlines()}
    summary = next(line for line in done.stdout.splitlines() if "events/s" in line)
    match = re.search(r"read (\d+) events in .*: ([\d,]+) events/s", summary)
    if match is None:
        raise RuntimeError(f"unexpected rescreen summary: {summary!r}")
    events = int(match.group(1))
    added = added_between(load_sdn_list(old), load_sdn_list(SHIPPED_LIST))
    rule_alone = Screening(retroactive_ruleset(added), clock=wall_clock)
    expected = {a.alert_id for record in file_events(events_file) for a in rule_alone.screen_one(record).alerts}
    note = f"{len(added)} addresses added; its own figure: {match.group(2)} events/s (wall includes start-up)"
    return Result("rescreen (sentinel rescreen, file)", events, seconds, seconds, len(ids), ids == expected, note)
