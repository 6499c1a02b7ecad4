"""The exposure kind of rule: a counterparty exposed 1 to ``max_hops`` hops downstream of a seed.

The exposure itself is kept by :mod:`streams.core.exposure`, one graph per rule, fed with
chain transfers (:meth:`ExposureRule.observe`). A ledger event is checked against it
(:meth:`ExposureRule.find_exposed`): an address on a seed list itself is left to the
direct rules (it is hop 0, not indirect); an exposed address alerts if it was exposed at or
before the event's time (time-respecting) and its share reaches ``min_share``.

**Retroactive**: the graph remembers, per sending address, the deposits screened from it
within ``lookback``. When a transfer processed later exposes an address as of a time at or
before such a deposit (the transfer arrived late), the deposit gets one alert with
``retroactive: true``; it is then forgotten, so it is alerted once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from streams.core.events import Event
from streams.core.exposure import Exposure, ExposureConfig, ExposureGraph, exposure_evidence
from streams.core.rules.conditions import Condition
from streams.core.rules.kinds import CompiledRule, Finding
from streams.core.transfers import Transfer

#: Deposits remembered per sending address for retroactive alerts (the oldest go first).
MAX_REMEMBERED = 16
#: Sending addresses remembered in all (the longest-remembered go first): a bound on memory.
MAX_SENDERS = 200_000


@dataclass
class RuleExposureState:
    """One exposure rule's state: the graph of exposed addresses and the deposits seen per sender."""

    graph: ExposureGraph = field(default_factory=ExposureGraph)
    #: Normalised sender -> (event time ms, event) of deposits screened while it was not exposed,
    #: least recently used first. An OrderedDict: once full, every new sender evicts the
    #: oldest, and a plain dict's first key after many deletions at its front is found by
    #: scanning the holes they left (measured: 60 µs an eviction after 400,000 senders).
    seen: OrderedDict[str, list[tuple[int, Event]]] = field(default_factory=OrderedDict)
    remember: bool = True
    #: Senders dropped from :attr:`seen` to keep it within :data:`MAX_SENDERS`, not yet taken
    #: by the shell: their persisted entries must go too, or the table would grow with
    #: every sender ever seen while memory holds the latest ones only.
    forgotten: list[str] = field(default_factory=list)


@dataclass
class ExposureStore:
    """Every exposure rule's state, by rule id (a dict in the core; see the shell for the worker's)."""

    rules: dict[str, RuleExposureState] = field(default_factory=dict)
    #: Remember screened deposits for retroactive alerts: only where input can arrive out of
    #: event-time order (live topics; a rule test with ``order: listed``). A backtest screens
    #: in time order, so a transfer always comes before the deposits it exposes, and
    #: remembering would only cost memory.
    remember_deposits: bool = False

    def of(self, rule_id: str) -> RuleExposureState:
        """The state of one exposure rule (made empty on first use)."""
        found = self.rules.get(rule_id)
        if found is None:
            found = self.rules[rule_id] = RuleExposureState(remember=self.remember_deposits)
        return found


@dataclass(frozen=True)
class ExposureRule(CompiledRule):
    """A ledger event whose counterparty received funds downstream of a seed."""

    condition: Condition | None
    field_name: str
    config: ExposureConfig
    min_share: Decimal | None
    lookback_ms: int

    @property
    def window_ms(self) -> int:
        return 0  # the account state holds nothing of this rule: its state is by address

    def find_exposed(self, event: Event, state: RuleExposureState) -> list[Finding]:
        """The finding on ``event`` if a counterparty is exposed as of its time (and remember the event)."""
        if self.condition is not None and self.condition(event) is None:
            return []
        exposed = state.graph.exposed
        remember = state.remember and event.type == "deposit"
        if not exposed and not remember:
            return []  # nothing exposed yet and nothing to wait for (a backtest before any transfer)
        t = event.epoch_ms
        best: tuple[Exposure, str] | None = None
        for index, key in enumerate(event.address_keys(self.field_name)):
            found = exposed.get(key)
            if found is None and not remember:
                continue  # the usual case: looked up once, not on the seed lists too
            if self.config.seed_of(key) is not None:
                continue  # hop 0: the direct (sanctions) rules alert on it
            if found is not None and found.since_ms <= t and self._enough(found, t):
                if best is None or found.hops < best[0].hops:
                    best = (found, event.addresses(self.field_name)[index])
            elif remember and not self.config.stops_at(key):
                self._remember(state, key, t, event)  # a service is never exposed: nothing to wait for
        if best is None:
            return []
        return [self._finding(event, best[1], best[0], best[0].share_at(t))]

    def observe(self, transfer: Transfer, state: RuleExposureState) -> list[Finding]:
        """Take a transfer into the graph; the retroactive findings it makes (deposits screened too early)."""
        created = state.graph.observe(self.config, transfer)
        if created is None or not self._enough(created, created.since_ms):
            return []
        waiting = state.seen.pop(transfer.receiver, None)
        if not waiting:
            return []
        findings = []
        keep = []
        for t, event in waiting:
            if t >= created.since_ms:
                findings.append(self._finding(event, transfer.to_address, created, created.share))
            else:
                keep.append((t, event))  # paid before the funds arrived: not exposed then
        if keep:
            state.seen[transfer.receiver] = keep
        return findings

    def _enough(self, exposure: Exposure, at_ms: int) -> bool:
        """Whether the share as of ``at_ms`` reaches ``min_share`` (what a backtest in time order sees then)."""
        return self.min_share is None or exposure.share_at(at_ms) >= self.min_share

    def _remember(self, state: RuleExposureState, key: str, t: int, event: Event) -> None:
        seen = state.seen
        kept = [(when, e) for when, e in seen.pop(key, []) if when > t - self.lookback_ms]
        if all(e.event_id != event.event_id for _, e in kept):  # a deposit checked again after a crash
            kept.append((t, event))
        seen[key] = kept[-MAX_REMEMBERED:]  # re-inserted: the order is least recently used first
        if len(seen) > MAX_SENDERS:
            oldest, _ = seen.popitem(last=False)
            state.forgotten.append(oldest)

    def _finding(self, event: Event, address: str, exposure: Exposure, share: Decimal) -> Finding:
        evidence: dict[str, Any] = exposure_evidence(exposure, address, self.config.max_hops, share)
        match = {"field": self.field_name, "address": address, "list": evidence["list"], "entry": evidence["entry"]}
        return Finding(event, [event.event_id], event.timestamp, {"matches": [match], "exposure": evidence})
