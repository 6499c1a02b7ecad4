"""The allowlist feed: stopping one whose start never ran (a sibling failed first)."""

from __future__ import annotations

import asyncio

from streams.shell.allowlist_feed import AllowlistFeed
from streams.shell.settings import Settings
from streams.shell.signing import ControlTrust


def test_an_allowlist_feed_that_never_started_stops_cleanly() -> None:
    # mode stops every child of a worker whose start failed, started or not; the feed's
    # consumer is made at start, and its stop once raised AttributeError over the real error.
    feed = AllowlistFeed(Settings(bootstrap_servers="127.0.0.1:1"), ControlTrust(), lambda allowlist: None)
    asyncio.run(feed.stop())
    assert feed.should_stop
