"""The metrics catalogue cannot drift from the code, and follows the naming rules."""

from __future__ import annotations

import re

from streams.shell import metrics
from tests.data import REPO


def test_catalogue_matches_the_code() -> None:
    assert (REPO / "docs" / "metrics.md").read_text() == metrics.catalogue(), (
        "run: python -m streams.shell.metrics > docs/metrics.md"
    )


def test_names_follow_the_prometheus_conventions() -> None:
    rows = re.findall(r"^\| `(sentinel_[a-z_]+)` \| (\w+) \| ([^|]*) \|", metrics.catalogue(), re.M)
    assert len(rows) >= 20
    for name, kind, labels in rows:
        if kind == "counter":
            assert name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith("_seconds"), name
        for forbidden in ("account", "address", "event_id"):
            assert forbidden not in labels, (name, labels)
