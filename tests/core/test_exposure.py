"""Indirect exposure: hops, the hop limit, services, value-less and fake-token transfers, time, share, retroactive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.core.backtest import backtest_lines
from streams.core.events import wall_clock
from streams.core.rules.engine import Ruleset
from streams.core.rules.exposure_rule import ExposureStore
from streams.core.rules.loader import load_ruleset
from streams.core.screening import Record, Screening
from tests.factories import deposit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SEED = "0x098b716b8aaf21512996dc57eb0615e2383e2f96"
ROUTER = "0x7a250d5630b4cf539739df2c5dacb4c659f2488d"
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
FAKE_USDT = "0xdac17f958d2ee523a2206206994597c13d831ec8"


def addr(n: int) -> str:
    return f"0x{n:040x}"


PACK = f"""\
required_engine_version: 1
lists:
  - {{id: seeds, name: Test SDN, category: sanctioned, source: tests, version: "1", entity: Lazarus Group,
     addresses: ["{SEED}"]}}
  - {{id: services, name: Services, category: custom, source: tests, version: "1", addresses: ["{ROUTER}"]}}
  - {{id: known_tokens, name: Tokens, category: custom, source: tests, version: "1", addresses: ["{USDT}"]}}
rules:
  - id: indirect
    version: 1.0.0
    name: Indirect exposure
    description: a deposit from an address downstream of a seed
    typology: indirect_exposure
    severity: high
    action: review
    events: [deposit]
    exposure:
      field: from_addresses
      seeds: [seeds]
      max_hops: 3
      stop_at: [services]
      tokens: known_tokens
      {{min_share}}
    summary: >-
      Deposit of {{amount}} {{asset}} into {{account_id}} from {{exposure_address}} {{exposure_hops}} hops from
      {{exposure_entity}} ({{list_name}}) via {{exposure_via}}, {{exposure_share}} of its funds: review
"""


@pytest.fixture
def pack(tmp_path: Path) -> Ruleset:
    (tmp_path / "pack.yaml").write_text(PACK.replace("{min_share}", ""))
    return load_ruleset([tmp_path])


def transfer(n: int, minutes: float, sender: str, receiver: str, amount: str = "10", **changes: Any) -> dict[str, Any]:
    moment = (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    data: dict[str, Any] = {
        "type": "transfer", "event_id": f"t{n}", "chain": "ethereum", "tx_hash": f"0x{n:064x}",
        "from_address": sender, "to_address": receiver, "asset": "ETH", "amount": amount, "timestamp": moment,
    }  # fmt: skip
    data.update(changes)
    return data


def dep(event_id: str, minutes: float, sender: str) -> dict[str, Any]:
    moment = (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    return deposit(event_id=event_id, account_id=f"acct-{event_id}", from_addresses=[sender], timestamp=moment)


def alerts(ruleset: Ruleset, items: list[dict[str, Any]], *, in_time_order: bool = True) -> list[Any]:
    """Screen ``items`` (in time order as backtest does, or as given) and return the exposure alerts."""
    lines = [orjson.dumps(item) for item in items]
    if in_time_order:
        return [a for a in backtest_lines(lines, ruleset, clock=wall_clock).alerts if a.rule_id == "indirect"]
    screening = Screening(ruleset, clock=wall_clock, exposure=ExposureStore(remember_deposits=True))
    found = []
    for n, line in enumerate(lines):
        outcome = screening.screen_one(Record("file", 0, n, None, line))
        assert outcome.dead_letter is None, outcome.dead_letter
        found += [a for a in outcome.alerts if a.rule_id == "indirect"]
    return found


def chain(hops: int) -> list[dict[str, Any]]:
    """SEED -> addr(1) -> ... -> addr(hops), one transfer a minute."""
    path = [SEED] + [addr(n) for n in range(1, hops + 1)]
    return [transfer(n, n, path[n - 1], path[n]) for n in range(1, hops + 1)]


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_a_deposit_one_to_three_hops_downstream_alerts_with_the_whole_path(pack: Ruleset, hops: int) -> None:
    [alert] = alerts(pack, [*chain(hops), dep("d", 60, addr(hops))])
    exposure = alert.evidence["exposure"]
    assert (alert.typology, exposure["hops"], exposure["entity"], exposure["share"]) == (
        "indirect_exposure", hops, "Lazarus Group", "1.0000"
    )  # fmt: skip
    assert [hop["to"] for hop in exposure["path"]] == [addr(n) for n in range(1, hops + 1)]
    assert exposure["path"][0]["from"] == SEED
    assert f"{hops} hops from Lazarus Group (Test SDN)" in alert.summary and "100% of its funds" in alert.summary
    via = SEED if hops == 1 else addr(hops - 1)
    assert f"via {via}" in alert.summary


def test_the_hop_limit_and_the_seed_itself(pack: Ruleset) -> None:
    assert alerts(pack, [*chain(4), dep("d", 60, addr(4))]) == []
    assert alerts(pack, [dep("d", 60, SEED)]) == []  # hop 0: the sanctions rules' case, not indirect


def test_a_service_in_the_middle_stops_propagation(pack: Ruleset) -> None:
    items = [transfer(1, 1, SEED, ROUTER), transfer(2, 2, ROUTER, addr(5)), dep("d", 60, addr(5)), dep("r", 61, ROUTER)]
    assert alerts(pack, items) == []


@pytest.mark.parametrize(
    "carrier",
    [
        pytest.param({"amount": "0"}, id="zero-value"),
        pytest.param({"asset": "USDT", "token_contract": FAKE_USDT, "amount": "5000"}, id="fake-token"),
    ],
)
def test_value_less_and_fake_token_transfers_carry_nothing(pack: Ruleset, carrier: dict[str, Any]) -> None:
    items = [transfer(1, 1, SEED, addr(7), **carrier), dep("d", 60, addr(7))]
    assert alerts(pack, items) == []
    real = [transfer(1, 1, SEED, addr(7), asset="USDT", token_contract=USDT.upper().replace("0X", "0x"))]
    assert len(alerts(pack, [*real, dep("d", 60, addr(7))])) == 1


def test_a_look_alike_address_is_another_address(pack: Ruleset) -> None:
    poisoned = addr(7)[:-1] + "8"  # same prefix and suffix but one character: address poisoning
    assert alerts(pack, [transfer(1, 1, SEED, addr(7)), dep("d", 60, poisoned)]) == []


def test_funds_are_followed_in_time_order(pack: Ruleset) -> None:
    # addr(1) paid addr(2) before it received anything from the seed: addr(2) is clean.
    items = [transfer(1, 1, addr(1), addr(2)), transfer(2, 5, SEED, addr(1)), dep("d", 60, addr(2))]
    assert alerts(pack, items) == []
    # The same when the transfers arrive out of order (live: two partitions, one behind).
    late = [transfer(2, 5, SEED, addr(1)), transfer(1, 1, addr(1), addr(2)), dep("d", 60, addr(2))]
    assert alerts(pack, late, in_time_order=False) == []
    # A deposit made before the funds arrived is not exposed either.
    assert alerts(pack, [dep("early", 0, addr(3)), transfer(3, 5, SEED, addr(3))]) == []


def test_the_share_is_the_traced_part_since_exposure(tmp_path: Path) -> None:
    (tmp_path / "pack.yaml").write_text(PACK.replace("{min_share}", "min_share: 0.05"))
    ruleset = load_ruleset([tmp_path])
    diluted = [transfer(1, 1, SEED, addr(1), "1"), transfer(2, 2, addr(9), addr(1), "99"), dep("d", 60, addr(1))]
    assert alerts(ruleset, diluted) == []  # 1 of 100 ETH: 1%
    enough = [transfer(1, 1, SEED, addr(1), "6"), transfer(2, 2, addr(9), addr(1), "94"), dep("d", 60, addr(1))]
    [alert] = alerts(ruleset, enough)
    assert alert.evidence["exposure"]["share"] == "0.0600"
    # Two hops: the second address inherits the first one's share on what it received.
    two = [*enough[:2], transfer(3, 3, addr(1), addr(2), "50"), dep("d", 60, addr(2))]
    assert [a.evidence["exposure"]["share"] for a in alerts(ruleset, two)] == ["0.0600"]


def test_a_late_transfer_raises_one_retroactive_alert(pack: Ruleset) -> None:
    # Live, the deposit was screened before the transfer that exposes its sender (earlier in event time) arrived.
    items = [
        dep("d", 60, addr(4)),
        dep("before", 0, addr(4)),
        transfer(1, 30, SEED, addr(4)),
        transfer(2, 31, SEED, addr(4)),
    ]
    found = alerts(pack, items, in_time_order=False)
    assert [(a.event_ids, a.retroactive) for a in found] == [(["d"], True)]  # not "before": paid before the funds came
    # In time order (a backtest of the same file) it is an ordinary alert with the same id.
    [ordinary] = alerts(pack, items)
    assert (ordinary.alert_id, ordinary.retroactive) == (found[0].alert_id, False)


def test_backtest_jobs_with_transfers_screens_in_one_process(pack: Ruleset) -> None:
    lines = [orjson.dumps(item) for item in [*chain(2), dep("d", 60, addr(2)), dep("e", 61, addr(1))]]
    one = backtest_lines(lines, pack, clock=wall_clock)
    many = backtest_lines(lines, pack, clock=wall_clock, jobs=3)
    assert [a.alert_id for a in many.alerts] == [a.alert_id for a in one.alerts] and len(one.alerts) == 2
    assert "--jobs 3 ignored: the file has chain transfers" in many.table()


def test_a_resent_transfer_is_counted_once(tmp_path: Path) -> None:
    (tmp_path / "pack.yaml").write_text(PACK.replace("{min_share}", "min_share: 0.05"))
    ruleset = load_ruleset([tmp_path])
    seeded, clean = transfer(1, 1, SEED, addr(1), "6"), transfer(2, 2, addr(9), addr(1), "94")
    once = alerts(ruleset, [seeded, clean, dep("d", 60, addr(1))])
    twice = alerts(ruleset, [seeded, clean, clean, seeded, dep("d", 60, addr(1))])
    assert (
        [a.evidence["exposure"]["share"] for a in twice]
        == [a.evidence["exposure"]["share"] for a in once]
        == ["0.0600"]
    )


def test_a_deposit_made_before_its_sender_was_exposed_is_not_exposed_when_checked_later(pack: Ruleset) -> None:
    """Live, the transfer that exposes the sender may be screened first: the deposit's own time decides."""
    items = [transfer(3, 5, SEED, addr(3)), dep("early", 0, addr(3))]
    assert alerts(pack, items, in_time_order=False) == []


def test_the_nearest_exposed_sender_is_the_one_reported(pack: Ruleset) -> None:
    items = [*chain(2), transfer(9, 3, SEED, addr(7))]
    both = deposit(
        event_id="d", account_id="acct-d", from_addresses=[addr(2), addr(7)], timestamp="2026-01-01T01:00:00Z"
    )
    [alert] = alerts(pack, [*items, both])
    assert (alert.evidence["exposure"]["hops"], alert.evidence["exposure"]["address"]) == (1, addr(7))


def test_a_share_exactly_at_the_minimum_alerts(tmp_path: Path) -> None:
    (tmp_path / "pack.yaml").write_text(PACK.replace("{min_share}", "min_share: 0.05"))
    ruleset = load_ruleset([tmp_path])
    items = [transfer(1, 1, SEED, addr(1), "5"), transfer(2, 2, addr(9), addr(1), "95"), dep("d", 60, addr(1))]
    assert [a.evidence["exposure"]["share"] for a in alerts(ruleset, items)] == ["0.0500"]


def test_only_deposits_within_the_lookback_wait_for_their_sender_to_be_exposed(tmp_path: Path) -> None:
    (tmp_path / "pack.yaml").write_text(PACK.replace("{min_share}", "lookback: 1h"))
    ruleset = load_ruleset([tmp_path])
    items = [dep("old", 0, addr(4)), dep("new", 90, addr(4)), transfer(1, -1, SEED, addr(4))]
    assert [a.event_ids for a in alerts(ruleset, items, in_time_order=False)] == [["new"]]


def test_a_deposit_from_a_service_is_not_kept_waiting(pack: Ruleset) -> None:
    screening = Screening(pack, clock=wall_clock, exposure=ExposureStore(remember_deposits=True))
    for n, item in enumerate([dep("r", 0, ROUTER), dep("d", 1, addr(5))]):
        screening.screen_one(Record("file", 0, n, None, orjson.dumps(item)))
    assert list(screening.exposure.of("indirect").seen) == [addr(5)]
