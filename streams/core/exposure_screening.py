"""Screening where the exposure state is: chain transfers, and the deposits other workers pass on.

In a worker, deposits and withdrawals are screened on the partition of their account,
but an exposure rule needs the state of an *address* (its exposure, and the deposits
from it still waiting for one). That state is kept with the chain transfers, on the
partition of their chain; the account's worker passes each deposit an exposure rule
looks at on to that partition (an exposure check: the deposit's
:func:`~streams.core.events.stand_alone_json`, keyed by its chain), and :class:`ExposureScreening` screens there:

- a **transfer** goes into every exposure rule's graph, and may raise retroactive alerts
  for deposits checked before it (as :meth:`Screening.screen_one` does offline);
- a **checked deposit** is screened by the exposure rules alone
  (:meth:`~streams.core.rules.engine.Ruleset.check_exposure`), and remembered for a later
  retroactive alert if its sender is not exposed yet.

Which (rule, address) entries a record may have changed is kept in :attr:`touched`, so
the shell writes only those to the changelog (see :mod:`streams.core.exposure_format`).
Pure Python, no Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from streams.core.events import Event
from streams.core.rules.engine import Ruleset
from streams.core.rules.exposure_rule import ExposureStore
from streams.core.screening import DeadLetter, Outcome, Screening
from streams.core.transfers import Transfer

log = logging.getLogger(__name__)


class ExposureScreening(Screening):
    """The one screening path for transfers and exposure checks (see the module doc)."""

    def __init__(self, ruleset: Ruleset, topic_types: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("exposure", ExposureStore(remember_deposits=True))
        super().__init__(ruleset, topic_types, **kwargs)
        #: (rule id, normalised address) -> input partition, for every entry a record may have changed.
        self.touched: dict[tuple[str, str], int] = {}
        #: The latest transfer time taken in (epoch ms): the clock exposure expires by.
        self.latest_ms = -1

    def _evaluate(self, outcome: Outcome, event: Event | Transfer) -> None:
        partition = outcome.record.partition
        touched = self.touched
        rules = self.ruleset.exposure_rules
        if isinstance(event, Transfer):
            self._observe(outcome, event)
            receiver = event.receiver
            for rule in rules:
                touched[(rule.spec.id, receiver)] = partition
            self.latest_ms = max(self.latest_ms, event.epoch_ms)
            return
        try:
            outcome.alerts = self.ruleset.check_exposure(
                event, self.exposure, self.clock, self.observer, self.allowlist
            )
        except Exception as exc:  # as for every record: one failure must not stop the others
            log.exception("exposure check failed for %s@%d", outcome.record.topic, outcome.record.offset)
            detail = f"{type(exc).__name__} while checking exposure: {exc}"
            outcome.dead_letter = DeadLetter(outcome.record, "evaluation_error", type(exc).__name__, detail)
        for rule in rules:
            for key in event.address_keys(rule.field_name):
                touched[(rule.spec.id, key)] = partition
            forgotten = self.exposure.of(rule.spec.id).forgotten
            while forgotten:  # their entries are deleted (the shell writes where each one is)
                touched[(rule.spec.id, forgotten.pop())] = partition

    def expire(self, partitions: Mapping[tuple[str, str], int]) -> int:
        """Forget exposures untouched for their rule's ``expire`` and deposits waiting past its look-back.

        Times are event time, by :attr:`latest_ms`. ``partitions`` gives the input partition
        of each (rule id, address) entry held (what the tombstones of forgotten ones need). Returns
        how many entries changed; they are in :attr:`touched`.
        """
        now = self.latest_ms
        if now < 0:
            return 0
        changed = 0
        for rule in self.ruleset.exposure_rules:
            state = self.exposure.of(rule.spec.id)
            for address in state.graph.expire(now, rule.config.expire_ms):
                self.touched[(rule.spec.id, address)] = partitions.get((rule.spec.id, address), 0)
                changed += 1
            horizon = now - rule.lookback_ms
            for address, waiting in list(state.seen.items()):
                kept = [(t, e) for t, e in waiting if t > horizon]
                if len(kept) != len(waiting):
                    if kept:
                        state.seen[address] = kept
                    else:
                        del state.seen[address]
                    self.touched[(rule.spec.id, address)] = partitions.get((rule.spec.id, address), 0)
                    changed += 1
        return changed
