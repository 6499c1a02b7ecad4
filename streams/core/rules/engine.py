"""Evaluate events against a compiled :class:`Ruleset` and turn findings into alerts.

Pure Python with no Kafka import. The primary API is :meth:`Ruleset.evaluate_event`:
one event against its account's state document; :meth:`Ruleset.evaluate` is a loop
over it for tests and one-off checks. Records reach it through
:class:`streams.core.screening.Screening`, the one path the worker and every command use.
Loading and compiling are in :mod:`streams.core.rules.loader` and :mod:`streams.core.rules.compiler`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streams.core.alerts import FreezeAlert, alert_id_for
from streams.core.allowlist import Allowlist
from streams.core.events import EVENT_TYPES, Clock, Event, epoch_ms, format_timestamp
from streams.core.lists import AddressList
from streams.core.rules.exposure_rule import ExposureRule, ExposureStore
from streams.core.rules.kinds import CompiledRule, Finding
from streams.core.rules.observer import CountingObserver, EngineObserver
from streams.core.rules.state import AccountState, DictStore, Journal, StateStore, Suppression, put
from streams.core.transfers import Transfer


@dataclass
class Ruleset:
    """Every enabled rule and every list from one or more rule directories."""

    version: str
    rules: tuple[CompiledRule, ...]
    lists: dict[str, AddressList]
    files: tuple[str, ...]
    #: Alerts of this ruleset are found after the fact (``sentinel rescreen``).
    retroactive: bool = False
    _by_type: dict[str, tuple[CompiledRule, ...]] = field(init=False, repr=False)
    _exposure_by_type: dict[str, tuple[ExposureRule, ...]] = field(init=False, repr=False)
    exposure_rules: tuple[ExposureRule, ...] = field(init=False, repr=False)
    #: Token contract -> (symbol, decimals), from list entries with a ``decimals`` attribute.
    token_info: dict[str, tuple[str, int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Rules are grouped by event type once, so evaluation does not filter per event.
        # Exposure rules look at state by address, not the account's: they go apart.
        self._by_type = {
            kind: tuple(
                r for r in self.rules if r.spec.enabled and kind in r.spec.events and not isinstance(r, ExposureRule)
            )
            for kind in EVENT_TYPES
        }
        #: The enabled exposure rules (they follow chain transfers).
        self.exposure_rules = tuple(r for r in self.rules if r.spec.enabled and isinstance(r, ExposureRule))
        self._exposure_by_type = {
            kind: tuple(r for r in self.exposure_rules if kind in r.spec.events) for kind in EVENT_TYPES
        }
        self.token_info = _token_info(self.lists.values())

    @property
    def state_horizon_ms(self) -> int:
        """How long after an account's latest event any rule's state can still change a result."""
        return max((rule.horizon_ms for rule in self.rules if rule.spec.enabled), default=0)

    def rules_for(self, event_type: str) -> tuple[CompiledRule, ...]:
        """The enabled rules that look at events of ``event_type``."""
        return self._by_type.get(event_type, ())

    def evaluate_event(
        self,
        event: Event,
        doc: AccountState,
        now: Clock,
        observer: EngineObserver,
        journal: Journal,
        allowlist: Allowlist | None = None,
        exposure: ExposureStore | None = None,
    ) -> list[FreezeAlert]:
        """The alerts ``event`` raises, in rule order (exposure rules last); ``doc`` is its account's state.

        The inverse of every change is written to ``journal``, so a caller can roll the
        account back if anything fails. ``now`` stamps each alert's ``detected_at`` (it
        does not change what fires). A finding covered by an ``allowlist`` entry raises no
        alert, but the rule's state has taken the event in all the same.
        """
        alerts: list[FreezeAlert] = []
        t = event.epoch_ms
        for rule in self.rules_for(event.type):
            for finding in rule.find(event, t, doc, observer, journal):
                if self._allowed(rule, finding, doc, observer, journal, allowlist):
                    alerts.append(self._alert(rule, finding, now()))
        if exposure is not None:
            for exposure_rule in self._exposure_by_type.get(event.type, ()):
                alerts.extend(self._exposure_alerts(exposure_rule, event, exposure, now, observer, allowlist))
        return alerts

    def evaluate_stateless(self, event: Event, now: Clock, allowlist: Allowlist | None = None) -> list[FreezeAlert]:
        """The alerts of ``event``'s rules that look at no other event (no window, no sequence)."""
        doc, journal, observer = AccountState(), Journal(), CountingObserver()
        return [
            self._alert(rule, finding, now())
            for rule in self.rules_for(event.type)
            if rule.window_ms == 0
            for finding in rule.find(event, event.epoch_ms, doc, observer, journal)
            if not self._excepted(rule, finding, observer, allowlist)
        ]

    def check_exposure(
        self,
        event: Event,
        exposure: ExposureStore,
        now: Clock,
        observer: EngineObserver,
        allowlist: Allowlist | None = None,
    ) -> list[FreezeAlert]:
        """The alerts of the exposure rules alone on ``event``, without its account's state.

        What a worker that holds the exposure state does with a deposit another worker
        screened (see streams.shell.exposure_side). Exposure rules have no suppression
        period (the compiler refuses one), so this is exactly their part of
        :meth:`evaluate_event`.
        """
        alerts: list[FreezeAlert] = []
        for exposure_rule in self._exposure_by_type.get(event.type, ()):
            alerts.extend(self._exposure_alerts(exposure_rule, event, exposure, now, observer, allowlist))
        return alerts

    def exposure_checked(self, event_type: str) -> bool:
        """Whether an enabled exposure rule looks at events of ``event_type``."""
        return bool(self._exposure_by_type.get(event_type))

    def _exposure_alerts(
        self,
        rule: ExposureRule,
        event: Event,
        exposure: ExposureStore,
        now: Clock,
        observer: EngineObserver,
        allowlist: Allowlist | None,
    ) -> list[FreezeAlert]:
        return [
            self._alert(rule, finding, now())
            for finding in rule.find_exposed(event, exposure.of(rule.spec.id))
            if not self._excepted(rule, finding, observer, allowlist)
        ]

    def observe_transfer(
        self,
        transfer: Transfer,
        exposure: ExposureStore,
        now: Clock,
        observer: EngineObserver,
        allowlist: Allowlist | None = None,
    ) -> list[FreezeAlert]:
        """Take a chain transfer into every exposure rule's graph; the retroactive alerts it makes.

        A retroactive alert is for a deposit screened before this transfer exposed its
        sender (the transfer arrived late): its account's state is not at hand here, so
        the rule's exceptions and the allowlist apply, its suppression period does not.
        """
        alerts: list[FreezeAlert] = []
        for rule in self.exposure_rules:
            for finding in rule.observe(transfer, exposure.of(rule.spec.id)):
                if not self._excepted(rule, finding, observer, allowlist):
                    alerts.append(self._alert(rule, finding, now(), retroactive=True))
        return alerts

    @staticmethod
    def _excepted(rule: CompiledRule, finding: Finding, observer: EngineObserver, allowlist: Allowlist | None) -> bool:
        for exception in rule.exceptions:
            if exception.condition(finding.event) is not None:
                observer.excepted(rule.spec.id, exception.id)
                return True
        if allowlist and rule.spec.overridable:
            entry_id = allowlist.match(rule.spec.id, rule.spec.typology, finding.event)
            if entry_id is not None:
                observer.allowlisted(rule.spec.id, entry_id, finding.event.event_id)
                return True
        return False

    def evaluate(
        self,
        events: Sequence[Event],
        state: StateStore | None = None,
        *,
        now: Clock,
        observer: EngineObserver | None = None,
    ) -> list[FreezeAlert]:
        """The alerts ``events`` raise, in event order then rule order (a loop over :meth:`evaluate_event`).

        ``state`` holds windows, sequences and suppression between calls; pass the same
        store for a whole stream. Without one, a fresh in-memory store is used for this
        call only, which suits single-event rules and one-off checks.
        """
        store: StateStore = state if state is not None else DictStore()
        watcher: EngineObserver = observer if observer is not None else CountingObserver()
        alerts: list[FreezeAlert] = []
        journal = Journal()
        for event in events:
            alerts.extend(self.evaluate_event(event, store.account(event.account_id, 0), now, watcher, journal))
            journal.clear()
        return alerts

    @staticmethod
    def _allowed(
        rule: CompiledRule,
        finding: Finding,
        doc: AccountState,
        observer: EngineObserver,
        journal: Journal,
        allowlist: Allowlist | None,
    ) -> bool:
        """Apply the rule's exceptions, then the allowlist, then its suppression period."""
        if Ruleset._excepted(rule, finding, observer, allowlist):
            return False
        if rule.suppress_ms is None:
            return True
        last = doc.suppressed.get(rule.spec.id)
        moment = epoch_ms(finding.event_time)
        alert_id = alert_id_for(rule.spec.id, rule.spec.version, finding.event_ids)
        if last is not None and last.at <= moment < last.at + rule.suppress_ms:
            # The very alert that started the period, met again (a record re-processed after
            # a crash), is raised again rather than lost: consumers dedupe on its id.
            if last.alert_id == alert_id:
                return True
            observer.suppressed(rule.spec.id)
            return False
        put(doc.suppressed, rule.spec.id, Suppression(moment, alert_id), journal)
        return True

    def _alert(
        self, rule: CompiledRule, finding: Finding, detected_at: datetime, *, retroactive: bool = False
    ) -> FreezeAlert:
        spec = rule.spec
        event = finding.event
        return FreezeAlert(
            alert_id=alert_id_for(spec.id, spec.version, finding.event_ids),
            rule_id=spec.id,
            rule_version=spec.version,
            ruleset_version=self.version,
            typology=spec.typology,
            severity=spec.severity,
            action=spec.action,
            mode=spec.mode,
            account_id=event.account_id,
            event_ids=finding.event_ids,
            event_time=finding.event_time,
            detected_at=detected_at,
            summary=rule.summary(event, finding.evidence),
            retroactive=self.retroactive or retroactive,
            evidence={"event": _event_evidence(event), **finding.evidence},
        )


def _token_info(lists: Iterable[AddressList]) -> dict[str, tuple[str, int]]:
    """Symbols and decimals of the token contracts on lists that give them (for ethereum-etl amounts)."""
    found: dict[str, tuple[str, int]] = {}
    for address_list in lists:
        # A list gives decimals in every entry or in none (its attribute columns): look at one
        # before walking it, so a ten-million-address sanctions list is not walked at every load.
        first = next(iter(address_list.entries.values()), None)
        if first is None or "decimals" not in dict(first.attributes):
            continue
        for key, entry in address_list.entries.items():
            attributes = dict(entry.attributes)
            decimals = attributes.get("decimals", "")
            if decimals.isdigit() and int(decimals) <= 36:
                symbol = (entry.label or "token").split()[0]
                found[key] = (symbol, int(decimals))
    return found


def _event_evidence(event: Event) -> dict[str, Any]:
    """What the alert shows of the triggering event (no more than the analyst needs)."""
    out: dict[str, Any] = {
        "type": event.type,
        "event_id": event.event_id,
        "chain": event.chain,
        "asset": event.asset,
        "amount": str(event.amount),
        "timestamp": format_timestamp(event.timestamp),
        "to_address": event.to_address,
    }
    if event.usd_value is not None:
        out["usd_value"] = str(event.usd_value)
    tx_hash = getattr(event, "tx_hash", None)
    if tx_hash:
        out["tx_hash"] = tx_hash
    if event.type == "deposit":
        out["from_addresses"] = list(event.addresses("from_addresses"))
    return out
