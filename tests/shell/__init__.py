"""Tests of the Kafka/Faust shell around the pure core."""

from __future__ import annotations

from streams.core.rules.loader import load_ruleset
from streams.shell.app import SentinelApp
from streams.shell.settings import Settings
from tests.data import REPO


def built_app() -> SentinelApp:
    """A worker app, built but not started (no broker needed)."""
    settings = Settings(bootstrap_servers="127.0.0.1:1", metrics_port=0, rule_paths=[str(REPO / "rules")])
    return SentinelApp(settings, load_ruleset([REPO / "rules"]))
