"""The control service: stopping one whose start never ran (a sibling failed first)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from streams.shell.control import ControlService, control_trust
from streams.shell.reload import RulesReloader
from streams.shell.settings import Settings
from tests.data import REPO
from tests.shell.test_clients import RecordingConsumer, consumer


def control_service(tmp_path: Path) -> ControlService:
    """A control service over the shipped rules and a topic named ``control`` (not started)."""
    settings = Settings(bootstrap_servers="127.0.0.1:1", control_topic="control", rule_paths=[str(REPO / "rules")])
    reloader = RulesReloader(
        [str(REPO / "rules")],
        lambda ruleset, source: None,
        bundle_dir=tmp_path / "bundles",
        trust=control_trust(settings),
        mark_file=tmp_path / "mark.json",
    )
    return ControlService(settings, reloader)


def test_a_control_service_that_never_started_stops_cleanly(tmp_path: Path) -> None:
    # mode stops every child of a worker whose start failed, started or not; this one's
    # consumer is made at start, and its stop once raised AttributeError over the real error.
    service = control_service(tmp_path)
    asyncio.run(service.stop())
    assert service.should_stop


def test_the_control_topic_end_is_asked_before_the_partition_is_assigned(tmp_path: Path) -> None:
    # Asked after, the request waits behind the assigned consumer's long-poll fetch (0.5 s).
    service = control_service(tmp_path)
    fake = RecordingConsumer({"control"}, end=3)
    assert asyncio.run(service._assign_control(consumer(fake))) == 3
    assert fake.calls == [("end_offsets", False), ("assign", False), ("seek_to_beginning", True)]
    assert asyncio.run(service._assign_control(consumer(RecordingConsumer(set())))) is None
