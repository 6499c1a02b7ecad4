"""The console's queue: alerts read once, dispositions with history, filters, counts and order."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from streams.core.triage import AlertQueue, Disposition, QueueFilter, TriageError, read_alert
from tests.factories import alert

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def filled() -> AlertQueue:
    queue = AlertQueue()
    rows = [
        ("1", "critical", "sanctions", "acct-1", "2026-11-27T06:00:00Z"),
        ("2", "high", "pass_through", "acct-2", "2026-11-27T07:00:00Z"),
        ("3", "medium", "fan_in", "acct-1", "2026-11-27T08:00:00Z"),
        ("4", "critical", "indirect_exposure", "acct-3", "2026-11-27T05:00:00Z"),
        ("5", "high", "fan_out", "acct-2", "2026-11-27T09:00:00Z"),
    ]
    for n, (alert_id, severity, typology, account, when) in enumerate(rows):
        value = alert(alert_id=alert_id, severity=severity, typology=typology, account_id=account, event_time=when)
        assert queue.add_alert(orjson.dumps(value), 0, n) is not None
    return queue


def test_most_severe_then_newest_first_or_newest_first() -> None:
    queue = filled()
    assert [r["alert_id"] for r in queue.select(QueueFilter()).rows] == ["1", "4", "5", "2", "3"]
    assert [r["alert_id"] for r in queue.select(QueueFilter(), order="time").rows] == ["5", "3", "2", "1", "4"]
    page = queue.select(QueueFilter(), offset=1, limit=2)
    assert [r["alert_id"] for r in page.rows] == ["4", "5"] and page.total == 5


def test_filters_narrow_and_counts_say_what_each_choice_would_leave() -> None:
    queue = filled()
    page = queue.select(QueueFilter({"severity": "high"}))
    assert [r["alert_id"] for r in page.rows] == ["5", "2"]
    # The severity counts ignore the severity filter itself; the others apply it.
    assert page.counts["severity"] == {"critical": 2, "high": 2, "medium": 1, "low": 0}
    assert page.counts["typology"]["fan_out"] == 1 and page.counts["typology"]["sanctions"] == 0
    assert page.counts["status"] == {"open": 2, "confirmed": 0, "false_positive": 0, "escalated": 0}
    by_account = queue.select(QueueFilter({}, "acct-1"))
    assert [r["alert_id"] for r in by_account.rows] == ["1", "3"]
    assert [i.alert_id for i in queue.of_account("acct-2")] == ["5", "2"]


def test_a_disposition_changes_the_status_and_keeps_the_history() -> None:
    queue = filled()
    queue.apply(Disposition("2", "escalated", "alice", NOW, "sent to the MLRO"))
    queue.apply(Disposition("2", "confirmed", "bob", NOW, "funds traced"))
    item = queue.get("2")
    assert item is not None and item.status == "confirmed"
    assert [d["by"] for d in item.detail()["history"]] == ["alice", "bob"]
    assert [r["alert_id"] for r in queue.select(QueueFilter({"status": "confirmed"})).rows] == ["2"]
    assert queue.select(QueueFilter({"status": "open"})).total == 4


def test_a_disposition_read_before_its_alert_waits_for_it() -> None:
    queue = AlertQueue()
    assert queue.apply(Disposition("late", "false_positive", "alice", NOW, "known customer")) is None
    item = queue.add_alert(orjson.dumps(alert(alert_id="late")), 1, 7)
    assert item is not None and item.status == "false_positive"


def test_an_alert_written_twice_is_shown_once_and_unreadable_records_are_counted() -> None:
    queue = AlertQueue()
    assert queue.add_alert(orjson.dumps(alert()), 0, 0) is not None
    assert queue.add_alert(orjson.dumps(alert(summary="again")), 0, 1) is None
    for bad in (b"not json", b"[]", None, orjson.dumps(alert(severity="apocalyptic")), orjson.dumps(alert(summary=3))):
        assert queue.add_alert(bad, 0, 2) is None
    assert len(queue) == 1 and queue.repeated == 1 and queue.unreadable == 5
    assert read_alert(orjson.dumps(alert(event_time="yesterday"))) is None


def test_dispositions_round_trip_and_bad_records_are_refused() -> None:
    disposition = Disposition("x" * 32, "confirmed", "alice", NOW, "matches the SDN entry")
    assert Disposition.from_json(disposition.to_json()) == disposition
    assert orjson.loads(disposition.to_json())["schema_version"] == 1
    for bad in (
        b"{}",
        b"garbage",
        orjson.dumps({**disposition.as_json_dict(), "status": "closed"}),
        orjson.dumps({**disposition.as_json_dict(), "schema_version": 2}),
        orjson.dumps({**disposition.as_json_dict(), "by": ""}),
        orjson.dumps({**disposition.as_json_dict(), "note": "x" * 2001}),
    ):
        with pytest.raises(TriageError):
            Disposition.from_json(bad)


def test_an_unknown_filter_value_is_a_clear_error() -> None:
    with pytest.raises(TriageError, match="severity must be one of"):
        QueueFilter.from_query({"severity": "urgent"})
    assert QueueFilter.from_query({"severity": "", "account": "acct-9"}) == QueueFilter({}, "acct-9")
