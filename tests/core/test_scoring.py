"""Backtests scored against labels: the arithmetic by hand, and the AMLworld set of docs/rules.md."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.core.alerts import FreezeAlert, alert_id_for
from streams.core.backtest import backtest_file
from streams.core.events import wall_clock
from streams.core.rules.loader import load_ruleset
from streams.core.scoring import LabelError, Labels, score
from tests.amlworld import write_labelled_set
from tests.data import REPO

T = datetime(2026, 1, 1, tzinfo=UTC)
RULES = [("fan-in", "fan_in"), ("structuring", "structuring"), ("velocity", "velocity")]


def alert(rule_id: str, typology: str, account: str, *event_ids: str) -> FreezeAlert:
    return FreezeAlert(
        alert_id=alert_id_for(rule_id, "1.0.0", list(event_ids)), rule_id=rule_id, rule_version="1.0.0",
        ruleset_version="rs", typology=typology, severity="medium", action="review", mode="enforce",  # type: ignore[arg-type]
        account_id=account, event_ids=list(event_ids), event_time=T, detected_at=T, summary="s", evidence={},
    )  # fmt: skip


def test_precision_recall_and_f1_by_hand() -> None:
    labels = Labels.from_csv(
        "account_id,label,typology\n"
        "a1,1,fan_in\na2,1,fan_in\na3,1,fan_in\na4,1,structuring\na5,1,\n"
        "n1,0,\nn2,legit,\nn3,false,\n"
    )
    alerts = [
        alert("fan-in", "fan_in", "a1", "e1"),
        alert("fan-in", "fan_in", "a2", "e2"),
        alert("fan-in", "fan_in", "a4", "e3"),  # laundering, but labelled structuring
        alert("fan-in", "fan_in", "n1", "e4"),  # a false alarm
        alert("fan-in", "fan_in", "n1", "e5"),  # the same account again: counted once
        alert("velocity", "velocity", "zz", "e6"),  # not labelled
    ]
    scored = score(alerts, labels, RULES)
    fan_in = next(s for s in scored.rules if s.name == "fan-in")
    # Flagged a1, a2, a4, n1: 3 of 4 laundering. Meant to catch a1, a2, a3 and a5 (no typology): 2 of 4.
    assert (fan_in.true_positives, fan_in.other_typology, fan_in.false_positives, fan_in.false_negatives) == (
        2,
        1,
        1,
        2,
    )
    assert fan_in.precision == pytest.approx(0.75) and fan_in.recall == pytest.approx(0.5)
    assert fan_in.f1 == pytest.approx(2 * 0.75 * 0.5 / 1.25)
    assert fan_in.missed == ["a3", "a5"] and fan_in.false == ["n1"]
    structuring = next(s for s in scored.rules if s.name == "structuring")
    assert (structuring.precision, structuring.recall, structuring.false_negatives) == (None, 0.0, 2)  # a4, a5
    assert scored.overall.recall == pytest.approx(3 / 5) and scored.overall.precision == pytest.approx(3 / 4)
    assert scored.unlabelled_alerts == 1 and (scored.labelled, scored.laundering) == (8, 5)
    table = scored.table()
    assert "fan-in missed: a3, a5" in table and "fan-in false: n1" in table


def test_event_labels_count_every_event_of_a_window() -> None:
    labels = Labels.from_csv("event_id,label\ne1,1\ne2,1\ne3,0\ne4,1\n")
    scored = score([alert("fan-in", "fan_in", "a", "e1", "e2", "e3")], labels, RULES)
    fan_in = scored.rules[0]
    assert (fan_in.true_positives, fan_in.false_positives, fan_in.false_negatives) == (2, 1, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,label\n", "needs one of event_id or account_id"),
        ("event_id,label\ne1,maybe\n", "labels:2: label 'maybe'"),
        ("event_id,label\ne1,1\ne1,0\n", "labels:3: e1 is labelled both ways"),
        ("event_id,label,typology\ne1,1,cycles\n", "typology 'cycles'"),
    ],
)
def test_bad_labels_are_refused_with_the_line(text: str, message: str) -> None:
    with pytest.raises(LabelError, match=message):
        Labels.from_csv(text)


@pytest.mark.parametrize(
    ("site", "fan_in", "fan_out"),
    [(None, (0, 40), (0, 48)), ("window-4d", (19, 40), (17, 48)), ("window-4d-gte-5", (26, 40), (27, 48))],
)
def test_the_scored_amlworld_backtest_of_the_docs(
    tmp_path: Path, site: str | None, fan_in: tuple[int, int], fan_out: tuple[int, int]
) -> None:
    events, labels_file = write_labelled_set(tmp_path)
    paths = [REPO / "rules"] + ([REPO / "docs" / "examples" / "amlworld" / site] if site else [])
    ruleset = load_ruleset(paths)
    report = backtest_file(events, ruleset, None, clock=wall_clock, keep_alerts=True)
    scored = score(
        report.alerts, Labels.from_csv(labels_file.read_text()), [(r.spec.id, r.spec.typology) for r in ruleset.rules]
    )
    by_typology = {s.name: s for s in scored.typologies}
    for typology, (caught, total) in (("fan_in", fan_in), ("fan_out", fan_out)):
        row = by_typology[typology]
        assert (row.true_positives, row.true_positives + row.false_negatives) == (caught, total)
