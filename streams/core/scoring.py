"""Backtests scored against labels: precision, recall and F1 per rule and typology, with examples.

Labels are a CSV file keyed by ``event_id`` or by ``account_id`` (the header says which),
with a ``label`` column (1/0, true/false, yes/no, laundering/legit) and, where known, a
``typology`` column (a value of the alert vocabulary, e.g. ``fan_in``). Only labelled
items are scored; alerts on unlabelled ones are counted apart.

- An item is **flagged** by a rule when one of the rule's alerts names it: for event
  labels, the event is among the alert's ``event_ids`` (every event of a window or a
  sequence, not only the last); for account labels, the alert is on the account.
- **Precision** of a rule: flagged laundering items (of any typology) / flagged labelled items.
- **Recall** of a rule is measured against what it is meant to catch: the laundering
  items whose typology is the rule's, or that have no typology. So a fan-in rule is not
  charged with missing a structuring case, and a label file without typologies measures
  every rule against every laundering item.
- Per typology: the same, with "flagged by any rule of that typology"; and a line for
  all rules together against all laundering items.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from streams.core.alerts import FreezeAlert
from streams.core.taxonomy import Typology

TRUE = frozenset({"1", "true", "yes", "laundering", "suspicious", "positive"})
FALSE = frozenset({"0", "false", "no", "legit", "legitimate", "clean", "negative"})
TYPOLOGIES: frozenset[str] = frozenset(Typology.__args__)  # type: ignore[attr-defined]
EXAMPLES = 5


class LabelError(ValueError):
    """A labels file that cannot be read, with the line."""


@dataclass(frozen=True)
class Labels:
    """Items (event or account ids) marked as laundering or not, with typology where known."""

    key: Literal["event_id", "account_id"]
    laundering: dict[str, bool]
    typology: dict[str, str]

    @classmethod
    def from_csv(cls, text: str, source: str = "labels") -> Labels:
        """Read a labels CSV; raises :class:`LabelError` naming the file and line."""
        reader = csv.DictReader(io.StringIO(text))
        columns = set(reader.fieldnames or ())
        keys = [name for name in ("event_id", "account_id") if name in columns]
        if len(keys) != 1 or "label" not in columns:
            raise LabelError(
                f"{source}: the header needs one of event_id or account_id, and label (found {sorted(columns)})"
            )
        key: Literal["event_id", "account_id"] = "event_id" if keys[0] == "event_id" else "account_id"
        laundering: dict[str, bool] = {}
        typology: dict[str, str] = {}
        for number, row in enumerate(reader, 2):
            item = (row.get(key) or "").strip()
            mark = (row.get("label") or "").strip().lower()
            if not item:
                raise LabelError(f"{source}:{number}: empty {key}")
            if mark not in TRUE | FALSE:
                raise LabelError(f"{source}:{number}: label {mark!r} is not one of 1/0, true/false, laundering/legit")
            if item in laundering and laundering[item] != (mark in TRUE):
                raise LabelError(f"{source}:{number}: {item} is labelled both ways")
            laundering[item] = mark in TRUE
            kind = (row.get("typology") or "").strip()
            if kind:
                if kind not in TYPOLOGIES:
                    raise LabelError(
                        f"{source}:{number}: typology {kind!r} is not one of {', '.join(sorted(TYPOLOGIES))}"
                    )
                typology[item] = kind
        return cls(key, laundering, typology)

    def items_of(self, alert: FreezeAlert) -> list[str]:
        """The labelled items an alert flags."""
        found = alert.event_ids if self.key == "event_id" else [alert.account_id]
        return [item for item in found if item in self.laundering]


@dataclass
class Score:
    """One row: what a rule (or typology, or all rules) flagged, measured against the labels."""

    name: str
    typology: str | None
    #: Flagged laundering items of this row's typology (or of none given).
    true_positives: int = 0
    #: Flagged laundering items labelled with another typology: right for precision, not counted in recall.
    other_typology: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    missed: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        """Flagged laundering items / flagged items (``None`` when nothing was flagged)."""
        right = self.true_positives + self.other_typology
        flagged = right + self.false_positives
        return right / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        """Caught laundering items of its typology / all of them (``None`` when there are none)."""
        relevant = self.true_positives + self.false_negatives
        return self.true_positives / relevant if relevant else None

    @property
    def f1(self) -> float | None:
        """The harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        if p is None or r is None or p + r == 0:
            return None if p is None or r is None else 0.0
        return 2 * p * r / (p + r)

    def as_dict(self) -> dict[str, Any]:
        """The row for JSON output."""
        return {
            "name": self.name,
            "typology": self.typology,
            "true_positives": self.true_positives,
            "other_typology": self.other_typology,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "missed_examples": self.missed,
            "false_examples": self.false,
        }


@dataclass
class ScoredBacktest:
    """Every rule's, every typology's and all rules' scores, and what fell outside the labels."""

    key: str
    labelled: int
    laundering: int
    rules: list[Score]
    typologies: list[Score]
    overall: Score
    unlabelled_alerts: int

    def table(self) -> str:
        """The scores for a person, with a few missed and false examples each."""
        rows = [
            f"scored against {self.labelled} labelled {self.key}s ({self.laundering} laundering):",
            f"{'':<6}{'name':<30} {'typology':<20} {'TP':>5} {'other':>5} {'FP':>5} {'FN':>5}"
            f" {'precision':>9} {'recall':>7} {'F1':>6}",
        ]
        for level, scores in (("rule", self.rules), ("typ.", self.typologies), ("all", [self.overall])):
            for score in scores:
                rows.append(
                    f"{level:<6}{score.name:<30} {score.typology or '-':<20} {score.true_positives:>5}"
                    f" {score.other_typology:>5} {score.false_positives:>5} {score.false_negatives:>5}"
                    f" {_ratio(score.precision):>9} {_ratio(score.recall):>7} {_ratio(score.f1):>6}"
                )
        rows.append("  (TP: laundering of the row's typology or of none; other: laundering labelled another typology)")
        for score in self.rules:
            if score.missed:
                rows.append(f"  {score.name} missed: {', '.join(score.missed)}")
            if score.false:
                rows.append(f"  {score.name} false: {', '.join(score.false)}")
        if self.unlabelled_alerts:
            rows.append(f"  {self.unlabelled_alerts} alerts flagged no labelled {self.key} (not scored)")
        return "\n".join(rows)

    def as_dict(self) -> dict[str, Any]:
        """The whole score for ``--score-output``."""
        return {
            "key": self.key,
            "labelled": self.labelled,
            "laundering": self.laundering,
            "rules": [s.as_dict() for s in self.rules],
            "typologies": [s.as_dict() for s in self.typologies],
            "all_rules": self.overall.as_dict(),
            "unlabelled_alerts": self.unlabelled_alerts,
        }


def score(alerts: Iterable[FreezeAlert], labels: Labels, rules: Iterable[tuple[str, str]]) -> ScoredBacktest:
    """Score ``alerts`` against ``labels``; ``rules`` are the ruleset's (rule id, typology) pairs."""
    rule_typology = dict(rules)
    by_rule: dict[str, set[str]] = {rule_id: set() for rule_id in rule_typology}
    unlabelled = 0
    for alert in alerts:
        items = labels.items_of(alert)
        if not items:
            unlabelled += 1
        by_rule.setdefault(alert.rule_id, set()).update(items)
        rule_typology.setdefault(alert.rule_id, alert.typology)
    by_typology: dict[str, set[str]] = {}
    for rule_id, flagged in by_rule.items():
        by_typology.setdefault(rule_typology[rule_id], set()).update(flagged)
    everything = set().union(*by_rule.values()) if by_rule else set()
    return ScoredBacktest(
        key=labels.key,
        labelled=len(labels.laundering),
        laundering=sum(labels.laundering.values()),
        rules=[_score(rule_id, rule_typology[rule_id], by_rule[rule_id], labels) for rule_id in sorted(by_rule)],
        typologies=[_score(kind, kind, by_typology[kind], labels) for kind in sorted(by_typology)],
        overall=_score("all rules", None, everything, labels),
        unlabelled_alerts=unlabelled,
    )


def _score(name: str, typology: str | None, flagged: set[str], labels: Labels) -> Score:
    row = Score(name, typology)

    def relevant(item: str) -> bool:
        kind = labels.typology.get(item)
        return typology is None or kind is None or kind == typology

    for item in sorted(flagged):
        if not labels.laundering[item]:
            row.false_positives += 1
            if len(row.false) < EXAMPLES:
                row.false.append(item)
        elif relevant(item):
            row.true_positives += 1
        else:
            row.other_typology += 1
    for item, laundering in sorted(labels.laundering.items()):
        if laundering and item not in flagged and relevant(item):
            row.false_negatives += 1
            if len(row.missed) < EXAMPLES:
                row.missed.append(item)
    return row


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
