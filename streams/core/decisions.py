"""Screening before the funds leave: a withdrawal's decision, as a dry run of the engine.

The withdrawal service asks, before it signs, whether a withdrawal may leave. The answer
comes from the same rules that screen the ``withdrawals`` topic, on the account's current
state, without changing it: the state is screened as a copy (:func:`screen_withdrawal`
takes one), so the withdrawal event that follows on the topic finds the windows and
sequences exactly as if no screen had happened, and raises the alert with the
``alert_id`` the screen announced.

- ``block``: a finding of a ``freeze`` rule in ``enforce`` mode;
- ``hold``: otherwise, a finding of a ``review`` rule in ``enforce`` mode;
- ``allow``: otherwise (``shadow`` findings are reported and change nothing, as on the
  alert topic, where downstream must not act on them).

A bare address (:func:`screen_address`) is screened by the lists that hold it, the
stateless withdrawal rules on a probe withdrawal to it, and the exposure rules' state.
Pure Python, no Kafka.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from streams.core.alerts import FreezeAlert
from streams.core.allowlist import Allowlist
from streams.core.chains import normalise_address
from streams.core.events import Clock, Withdrawal, event_from_dict, format_timestamp
from streams.core.exposure import exposure_evidence
from streams.core.rules.engine import Ruleset
from streams.core.rules.exposure_rule import ExposureRule, ExposureStore
from streams.core.rules.observer import CountingObserver
from streams.core.rules.state import AccountState, Journal
from streams.core.rules.state_format import VERSION, from_json, to_json

Verdict = Literal["block", "hold", "allow"]
#: A probe withdrawal's amount: too small for any amount rule to trip, and readable in a summary.
_PROBE_AMOUNT = "0.000001"
#: The account a probe withdrawal names (never a real account: it has a space).
PROBE_ACCOUNT = "(address screen)"


def state_copy(state: AccountState) -> AccountState:
    """A copy of an account's state a screen may change freely (through its persisted form: nothing is shared)."""
    return from_json(to_json(state), VERSION)


def verdict_of(alerts: Iterable[FreezeAlert]) -> Verdict:
    """``block``, ``hold`` or ``allow`` for these findings (see the module doc)."""
    verdict: Verdict = "allow"
    for alert in alerts:
        if alert.mode != "enforce":
            continue
        if alert.action == "freeze":
            return "block"
        verdict = "hold"
    return verdict


@dataclass(frozen=True)
class ScreenResult:
    """What one screen decided, and why."""

    decision: Verdict
    findings: tuple[FreezeAlert, ...]
    ruleset_version: str
    screened_at: datetime
    #: ``current``: the account's state was read; ``unavailable``: screened without it
    #: (the fail-open choice, see docs/screening.md).
    account_state: str = "current"
    #: For an address screen: the lists holding it and its exposure, per rule.
    listed: tuple[dict[str, Any], ...] = ()
    exposure: tuple[dict[str, Any], ...] = ()
    #: For an address screen: ``current``, ``unavailable`` (fail open: the chain's worker
    #: could not be asked) or ``not followed`` (no chain-transfer feed).
    exposure_state: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The response body (findings as the alerts would be written to the topic)."""
        body: dict[str, Any] = {
            "decision": self.decision,
            "findings": [finding.model_dump(mode="json") for finding in self.findings],
            "ruleset_version": self.ruleset_version,
            "screened_at": format_timestamp(self.screened_at),
            "account_state": self.account_state,
        }
        if self.exposure_state is not None:
            body["listed"], body["exposure"] = list(self.listed), list(self.exposure)
            body["exposure_state"] = self.exposure_state
        return body


def screen_withdrawal(
    ruleset: Ruleset,
    withdrawal: Withdrawal,
    state: AccountState,
    clock: Clock,
    *,
    allowlist: Allowlist | None = None,
    exposure: ExposureStore | None = None,
    account_state: str = "current",
) -> ScreenResult:
    """Screen ``withdrawal`` as the stream would, against ``state``: a copy (:func:`state_copy`), as it is changed."""
    alerts = ruleset.evaluate_event(withdrawal, state, clock, CountingObserver(), Journal(), allowlist, exposure)
    return ScreenResult(verdict_of(alerts), tuple(alerts), ruleset.version, clock(), account_state)


def screen_address(
    ruleset: Ruleset,
    chain: str,
    address: str,
    clock: Clock,
    *,
    exposure: ExposureStore | None = None,
    allowlist: Allowlist | None = None,
    exposure_state: str | None = None,
) -> ScreenResult:
    """Screen a bare address: its lists, the stateless withdrawal rules, and its exposure.

    ``exposure_state`` says why ``exposure`` is missing, if it is (default: ``current``
    with a store, ``not followed`` without).

    Raises :class:`~streams.core.events.EventError` if ``chain`` or ``address`` is not one
    a withdrawal could name (the stream's checks).

    The rules see a probe withdrawal of a tiny amount (0.000001) to ``address`` from an account
    with no state (:data:`PROBE_ACCOUNT`), so only what the address alone decides fires
    (lists, address conditions); exposure is reported, and an exposure rule's verdict
    applies when its share threshold is met.
    """
    now = clock()
    probe = event_from_dict(
        {
            "type": "withdrawal", "event_id": f"address-screen:{chain}:{address}", "account_id": PROBE_ACCOUNT,
            "chain": chain, "asset": "ANY", "amount": _PROBE_AMOUNT, "to_address": address,
            "timestamp": format_timestamp(now),
        },
        "withdrawal",
    )  # fmt: skip
    key = normalise_address(address)
    listed = tuple(
        {"list": found.info.as_evidence(), "entry": entry.as_evidence()}
        for found in ruleset.lists.values()
        if (entry := found.entries.get(key)) is not None
    )
    alerts = ruleset.evaluate_stateless(probe, lambda: now, allowlist)
    exposures = tuple(_exposures(ruleset, exposure, key)) if exposure is not None else ()
    verdict = verdict_of(alerts)
    for rule, share_met, _ in exposures:
        if share_met and rule.spec.mode == "enforce":
            verdict = _worse(verdict, "block" if rule.spec.action == "freeze" else "hold")
    return ScreenResult(
        verdict,
        tuple(alerts),
        ruleset.version,
        now,
        "none",
        listed,
        tuple({"rule_id": rule.spec.id, "meets_min_share": met, **ev} for rule, met, ev in exposures),
        exposure_state or ("current" if exposure is not None else "not followed"),
    )


def _exposures(ruleset: Ruleset, store: ExposureStore, key: str) -> Iterable[tuple[ExposureRule, bool, dict[str, Any]]]:
    for rule in ruleset.exposure_rules:
        found = store.of(rule.spec.id).graph.exposed.get(key)
        if found is not None:
            share = found.share
            met = rule.min_share is None or share >= rule.min_share
            yield rule, met, exposure_evidence(found, key, rule.config.max_hops, share)


_ORDER: Sequence[Verdict] = ("allow", "hold", "block")


def _worse(a: Verdict, b: Verdict) -> Verdict:
    return a if _ORDER.index(a) >= _ORDER.index(b) else b
