"""The feed: each line to its topic, keyed by account; timestamps and ids moved only when asked."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

from streams.shell.feed import feed_records
from streams.shell.settings import Settings
from tests.factories import deposit, raw, withdrawal

SETTINGS = Settings(kafka_bootstrap_servers="127.0.0.1:9")  # type: ignore[call-arg]


def feed_file(tmp_path: Path) -> Path:
    path = tmp_path / "feed.jsonl"
    lines = [raw(deposit(event_id="d1")), raw(withdrawal(event_id="w1")), b"{not json"]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_lines_go_to_their_topics_unchanged(tmp_path: Path) -> None:
    records = list(feed_records(feed_file(tmp_path), SETTINGS))
    assert [(topic, key) for topic, key, _ in records] == [
        (SETTINGS.deposits_topic, b"acct-1"),
        (SETTINGS.withdrawals_topic, b"acct-1"),
        (SETTINGS.deposits_topic, None),  # bad input is fed as it is, to be dead-lettered
    ]
    assert [v for _, _, v in records] == feed_file(tmp_path).read_bytes().splitlines()


def test_a_demo_fed_again_gets_new_event_ids_and_times(tmp_path: Path) -> None:
    now = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    records = list(feed_records(feed_file(tmp_path), SETTINGS, now, "-r1"))
    events = [orjson.loads(v) for _, _, v in records[:2]]
    assert [e["event_id"] for e in events] == ["d1-r1", "w1-r1"]
    assert max(e["timestamp"] for e in events) == "2026-11-27T06:00:00Z"
    assert records[2][2] == b"{not json"
