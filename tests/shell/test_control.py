"""The control service: stopping one whose start never ran (a sibling failed first)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from streams.shell.control import ControlService, control_trust
from streams.shell.reload import RulesReloader
from streams.shell.settings import Settings
from tests.data import REPO


def test_a_control_service_that_never_started_stops_cleanly(tmp_path: Path) -> None:
    # mode stops every child of a worker whose start failed, started or not; this one's
    # consumer is made at start, and its stop once raised AttributeError over the real error.
    settings = Settings(bootstrap_servers="127.0.0.1:1", control_topic="control", rule_paths=[str(REPO / "rules")])
    reloader = RulesReloader(
        [str(REPO / "rules")],
        lambda ruleset, source: None,
        bundle_dir=tmp_path / "bundles",
        trust=control_trust(settings),
        mark_file=tmp_path / "mark.json",
    )
    service = ControlService(settings, reloader)
    asyncio.run(service.stop())
    assert service.should_stop
