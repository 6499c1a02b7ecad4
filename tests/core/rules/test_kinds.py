"""Semantics of stateful rules: windows, lateness, state bounds, sequences, suppression."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.core.events import Event, event_from_dict, format_timestamp, wall_clock
from streams.core.rules.engine import Ruleset
from streams.core.rules.loader import load_ruleset
from streams.core.rules.observer import CountingObserver
from streams.core.rules.state import DictStore, Window
from tests.factories import deposit, withdrawal

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: float) -> str:
    return format_timestamp(T0 + timedelta(minutes=minutes))


def dep(event_id: str, minutes: float, **changes: Any) -> Event:
    return event_from_dict(deposit(event_id=event_id, timestamp=at(minutes), **changes))


def wd(event_id: str, minutes: float, **changes: Any) -> Event:
    return event_from_dict(withdrawal(event_id=event_id, timestamp=at(minutes), **changes))


def pack(tmp_path: Path, body: str) -> Ruleset:
    (tmp_path / "pack.yaml").write_text(
        "required_engine_version: 1\nrules:\n" + textwrap.indent(textwrap.dedent(body), "  ")
    )
    return load_ruleset([tmp_path])


COUNT_RULE = """\
- id: burst
  version: 1.0.0
  name: Burst
  description: three deposits in ten minutes
  typology: velocity
  severity: low
  action: review
  events: [deposit]
  correlation: {type: event_count, timespan: 10m, condition: {gte: 3}}
  summary: "{window_events} deposits"
"""


def run(ruleset: Ruleset, events: list[Event], observer: CountingObserver | None = None) -> list[list[str]]:
    state = DictStore()
    return [a.event_ids for a in ruleset.evaluate(events, state, observer=observer, now=wall_clock)]


def test_window_is_sliding_and_open_at_its_start(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, COUNT_RULE)
    # (t - 10m, t]: an event exactly 10 minutes before the latest is outside.
    assert run(ruleset, [dep("a", 0), dep("b", 5), dep("c", 10)]) == []
    assert run(ruleset, [dep("a", 0.01), dep("b", 5), dep("c", 10)]) == [["a", "b", "c"]]


def test_window_state_is_per_account(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, COUNT_RULE)
    events = [dep("a", 0), dep("b", 1, account_id="other"), dep("c", 2)]
    assert run(ruleset, events) == []


def test_suppression_defaults_to_the_timespan(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, COUNT_RULE)
    observer = CountingObserver()
    events = [dep(f"e{i}", i) for i in range(25)]
    fired = run(ruleset, events, observer)
    # first at e2 (minute 2); suppressed until minute 12, then fires at e12 and e22
    assert [ids[-1] for ids in fired] == ["e2", "e12", "e22"]
    assert observer.suppressions == {"burst": 20}  # e2..e24 qualify: 23, of which 3 alert


def test_the_alert_that_began_a_suppression_is_raised_again_when_its_event_is_screened_again(tmp_path: Path) -> None:
    """A record re-processed after a crash raises its alert again (consumers dedupe on its id), not nothing."""
    ruleset = pack(tmp_path, COUNT_RULE)
    observer = CountingObserver()
    fired = run(ruleset, [dep("a", 0), dep("b", 1), dep("c", 2), dep("c", 2), dep("d", 3)], observer)
    assert fired == [["a", "b", "c"], ["a", "b", "c"]]
    assert observer.suppressions == {"burst": 1}  # d, a new alert within the period


def test_suppress_none_alerts_on_every_qualifying_event(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, COUNT_RULE + "  suppress: none\n")
    assert len(run(ruleset, [dep(f"e{i}", i) for i in range(5)])) == 3


def test_late_event_within_tolerance_counts(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, COUNT_RULE)
    # c arrives after d although it happened before it: 4 minutes late, tolerance 5m.
    assert run(ruleset, [dep("a", 0), dep("b", 1), dep("d", 6), dep("c", 2)]) == [["a", "b", "d"]]
    assert run(ruleset, [dep("a", 3), dep("d", 6), dep("c", 2)]) == [["c", "a", "d"]]


def test_event_beyond_tolerance_does_not_enter_state(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, COUNT_RULE)
    observer = CountingObserver()
    assert run(ruleset, [dep("a", 10), dep("b", 11), dep("old", 4)], observer) == []
    assert observer.late_events == {"burst": 1}


def test_state_bound_evicts_oldest_first(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, COUNT_RULE + "  max_state: 2\n")
    observer = CountingObserver()
    assert run(ruleset, [dep("a", 0), dep("b", 1), dep("c", 2)], observer) == []
    assert observer.evictions == {"burst": 1}


def test_expired_entries_are_dropped_from_state(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, COUNT_RULE)
    state = DictStore()
    ruleset.evaluate([dep(f"e{i}", i * 3) for i in range(100)], state, now=wall_clock)
    [account] = state.accounts.values()
    [window] = account.parts.values()
    assert isinstance(window, Window)
    assert len(window.entries) == 4  # minutes 288..297: the only ones in (297 - 10, 297]
    assert window.total("event_count") == 4


DISTINCT_RULE = """\
- id: many-senders
  version: 1.0.0
  name: Many senders
  description: three distinct senders
  typology: fan_in
  severity: low
  action: review
  events: [deposit]
  correlation: {type: distinct_count, field: from_addresses, timespan: 1h, condition: {gte: 3}}
  summary: "{window_value}"
"""


def test_distinct_count_normalises_addresses(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, DISTINCT_RULE)
    a = "0xaaaa000000000000000000000000000000000001"
    events = [
        dep("1", 0, from_addresses=[a]),
        dep("2", 1, from_addresses=[a.upper().replace("0X", "0x")]),
        dep("3", 2, from_addresses=["x"]),
    ]
    assert run(ruleset, events) == []
    assert run(ruleset, [*events, dep("4", 3, from_addresses=["y"])]) == [["1", "2", "3", "4"]]


SUM_RULE = """\
- id: big-money
  version: 1.0.0
  name: Big money
  description: 100 USD in ten minutes
  typology: velocity
  severity: low
  action: review
  events: [deposit]
  correlation: {type: sum, field: usd_value, timespan: 10m, condition: {gte: 100}}
  summary: "{window_value}"
"""


def test_sum_is_exact_decimal(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, SUM_RULE)
    events = [dep(f"e{i}", i / 10, usd_value="33.33") for i in range(3)]
    assert run(ruleset, events) == []
    assert run(ruleset, [*events, dep("last", 1, usd_value="0.01")]) == [["e0", "e1", "e2", "last"]]
    [alert] = ruleset.evaluate([*events, dep("last", 1, usd_value="0.01")], DictStore(), now=wall_clock)
    assert alert.evidence["window"]["value"] == "100.00"


SEQUENCE_RULE = """\
- id: conduit
  version: 1.0.0
  name: Conduit
  description: deposit then 80% out within 30 minutes
  typology: pass_through
  severity: high
  action: freeze
  events: [deposit, withdrawal]
  sequence:
    maxspan: 30m
    start: {event: deposit, condition: {field: usd_value, gte: 1000}}
    then: {event: withdrawal, total: usd_value, reaches: 0.8}
    until: {event: deposit, condition: {field: asset, eq: STOP}}
  summary: "{sequence_total} of {sequence_start_value}"
"""


def test_sequence_completes_whichever_step_is_processed_first(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, SEQUENCE_RULE)
    in_order = [dep("d", 0, usd_value="1000"), wd("w1", 5, usd_value="500"), wd("w2", 6, usd_value="300")]
    assert run(ruleset, in_order) == [["d", "w1", "w2"]]
    # The withdrawals topic was read first: the deposit arrives last (within the tolerance).
    out_of_order = [wd("w1", 5, usd_value="500"), wd("w2", 6, usd_value="300"), dep("d", 3, usd_value="1000")]
    out_of_order[2] = dep("d", 2, usd_value="1000")
    assert run(ruleset, out_of_order) == [["d", "w1", "w2"]]


def test_sequence_fires_once_per_start(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, SEQUENCE_RULE)
    events = [dep("d", 0, usd_value="1000"), *[wd(f"w{i}", i, usd_value="900") for i in range(1, 4)]]
    assert run(ruleset, events) == [["d", "w1"]]


def test_until_cancels_a_pending_sequence(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, SEQUENCE_RULE)
    events = [dep("d", 0, usd_value="1000"), dep("stop", 1, asset="STOP"), wd("w", 2, usd_value="1000")]
    assert run(ruleset, events) == []
    # an until event after completion changes nothing
    events = [dep("d", 0, usd_value="1000"), wd("w", 2, usd_value="1000"), dep("stop", 3, asset="STOP")]
    assert run(ruleset, events) == [["d", "w"]]


def test_a_sequence_s_span_includes_its_end(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, SEQUENCE_RULE)
    assert run(ruleset, [dep("d", 0, usd_value="1000"), wd("w", 30, usd_value="900")]) == [["d", "w"]]
    assert run(ruleset, [dep("d", 0, usd_value="1000"), wd("w", 30.001, usd_value="900")]) == []


def test_a_start_is_kept_for_a_step_that_comes_late_within_the_tolerance(tmp_path: Path) -> None:
    """Steps are dropped only once maxspan *and* the late tolerance have passed behind both topics."""
    ruleset = pack(tmp_path, SEQUENCE_RULE)
    events = [
        dep("d", 0, usd_value="1000"),
        wd("w0", 1, usd_value="10"),
        dep("d2", 32, usd_value="1000"),
        wd("w1", 33, usd_value="10"),
        wd("w2", 29, usd_value="800"),  # 4 minutes late: the tolerance is 5
    ]
    assert run(ruleset, events) == [["d", "w0", "w2"]]


def test_a_start_does_not_complete_itself_when_it_is_also_a_step(tmp_path: Path) -> None:
    rule = SEQUENCE_RULE.replace(
        "then: {event: withdrawal, total: usd_value, reaches: 0.8}",
        "then: {event: deposit, total: usd_value, reaches: 0.8}",
    )
    ruleset = pack(tmp_path, rule)
    assert run(ruleset, [dep("d1", 0, usd_value="1000")]) == []
    assert run(ruleset, [dep("d1", 0, usd_value="1000"), dep("d2", 1, usd_value="900")]) == [["d1", "d2"]]


def test_an_until_pushed_out_by_the_state_bound_no_longer_cancels(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, SEQUENCE_RULE + "  max_state: 1\n")
    observer = CountingObserver()
    events = [
        dep("d", 0, usd_value="1000"),
        dep("stop", 1, asset="STOP", usd_value="1"),
        wd("w", 2, usd_value="1000"),  # cancelled: stop came between
        dep("stop2", 40, asset="STOP", usd_value="1"),  # pushes stop out of the bound of one
    ]
    assert run(ruleset, events, observer) == [["d", "w"]]
    assert observer.evictions == {"conduit": 1}


def test_withdrawal_before_the_deposit_does_not_count(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, SEQUENCE_RULE)
    assert run(ruleset, [wd("w", 0, usd_value="1000"), dep("d", 1, usd_value="1000")]) == []


def test_exceptions_are_counted_and_do_not_start_suppression(tmp_path: Path) -> None:
    ruleset = pack(
        tmp_path,
        COUNT_RULE
        + """\
  exceptions:
    - id: desk
      reason: the OTC desk account
      condition: {field: account_id, eq: otc-desk}
""",
    )
    observer = CountingObserver()
    events = [dep(f"o{i}", i, account_id="otc-desk") for i in range(3)] + [dep(f"c{i}", i) for i in range(3)]
    assert run(ruleset, events, observer) == [["c0", "c1", "c2"]]
    assert observer.exceptions == {("burst", "desk"): 1}


@pytest.mark.parametrize("reaches", ["0.8", "1", "2.5"])
def test_reaches_is_a_fraction_of_the_start(tmp_path: Path, reaches: str) -> None:
    ruleset = pack(tmp_path, SEQUENCE_RULE.replace("reaches: 0.8", f"reaches: {reaches}"))
    needed = int(float(reaches) * 1000)
    assert run(ruleset, [dep("d", 0, usd_value="1000"), wd("w", 1, usd_value=str(needed - 1))]) == []
    assert run(ruleset, [dep("d", 0, usd_value="1000"), wd("w", 1, usd_value=str(needed))]) == [["d", "w"]]


def test_topics_read_hours_apart_still_complete_a_sequence(tmp_path: Path) -> None:
    """The deposits topic was drained hours ahead of the withdrawals topic for this account."""
    ruleset = pack(tmp_path, SEQUENCE_RULE)
    observer = CountingObserver()
    events = [
        dep("d1", 0, usd_value="1000"),
        dep("d2", 180, usd_value="5"),
        wd("w1", 10, usd_value="900"),  # not late: it is the first withdrawal seen
        wd("w2", 200, usd_value="5"),
    ]
    assert run(ruleset, events, observer) == [["d1", "w1"]]
    assert observer.late_events == {}


def test_lateness_is_measured_within_each_event_type(tmp_path: Path) -> None:
    ruleset = pack(tmp_path, SEQUENCE_RULE)
    observer = CountingObserver()
    events = [wd("w-late-ref", 60), wd("w", 10, usd_value="900"), dep("d", 0, usd_value="1000")]
    # w is 50 minutes older than the latest withdrawal: late. The deposit is not.
    assert run(ruleset, events, observer) == []
    assert observer.late_events == {"conduit": 1}
