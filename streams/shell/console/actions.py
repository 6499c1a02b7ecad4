"""The console's triage actions: a disposition, and an allowlist entry made from an alert.

An allowlist entry made here is the same record ``sentinel allow add`` writes: checked
against the rules (refused for a rule that is ``overridable: false``), signed with the
control signing key, written to the allowlist topic, applied by every worker within about
a second, and kept there as the audit trail, with the console user as ``by``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from streams.core.allowlist import AllowlistChange, parse_until, scope_problem
from streams.core.events import format_timestamp
from streams.core.rules.engine import Ruleset
from streams.core.triage import STATUSES, Disposition, QueuedAlert, TriageError
from streams.shell.allowlist_feed import publish_change
from streams.shell.settings import Settings
from streams.shell.signing import ALLOWLIST_CHANGE, KeyFileError, load_private_key, sign


class ActionRefusedError(Exception):
    """An action that is not taken, with an HTTP status and a message for the analyst."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def disposition_from_request(item: QueuedAlert, body: Mapping[str, Any], user: str, now: datetime) -> Disposition:
    """The disposition a page asks for; :class:`ActionRefusedError` (400) saying what is wrong."""
    status, note = body.get("status"), body.get("note", "")
    if status not in STATUSES:
        raise ActionRefusedError(400, f"status must be one of {', '.join(STATUSES)}")
    if not isinstance(note, str):
        raise ActionRefusedError(400, "note must be text")
    if status != "open" and not note.strip():
        raise ActionRefusedError(400, "say why in the note: it is the audit trail")
    try:
        return Disposition(item.alert_id, status, user, now, note.strip())
    except TriageError as exc:
        raise ActionRefusedError(400, str(exc)) from None


@dataclass
class AllowlistAction:
    """Makes allowlist entries from alerts: checks them against the rules, signs and writes them."""

    settings: Settings
    ruleset: Ruleset

    def change_for(self, item: QueuedAlert, body: Mapping[str, Any], user: str, now: datetime) -> AllowlistChange:
        """The entry a page asks for from this alert; :class:`ActionRefusedError` if it cannot be made.

        ``scope`` is ``rule`` (the alert's rule) or ``typology`` (its typology); ``subject`` is
        ``account`` (the alert's account) or ``address`` (one of the alert's evidence
        addresses, named in ``address``); ``until`` is a duration (``30d``) or a time.
        """
        alert = item.alert
        scope, subject = body.get("scope", "rule"), body.get("subject", "account")
        if scope not in ("rule", "typology") or subject not in ("account", "address"):
            raise ActionRefusedError(400, "scope is rule or typology; subject is account or address")
        rule_id = alert["rule_id"] if scope == "rule" else None
        typology = alert["typology"] if scope == "typology" else None
        problem = scope_problem((r.spec for r in self.ruleset.rules), rule_id, typology)
        if problem is not None:
            raise ActionRefusedError(409, problem)
        address = body.get("address")
        if subject == "address" and (not isinstance(address, str) or address not in evidence_addresses(alert)):
            raise ActionRefusedError(400, "address must be one of the alert's evidence addresses")
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ActionRefusedError(400, "say why in the reason: it is the audit trail")
        try:
            return AllowlistChange(
                action="add",
                entry_id=f"al-{secrets.token_hex(6)}",
                by=user,
                reason=f"{reason.strip()} (from alert {item.alert_id})",
                at=now,
                rule_id=rule_id,
                typology=typology,
                account_id=alert["account_id"] if subject == "account" else None,
                address=address if subject == "address" else None,
                until=_until(body.get("until"), now),
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ActionRefusedError(400, f"{'.'.join(map(str, first['loc'])) or 'entry'}: {first['msg']}") from None

    async def publish(self, change: AllowlistChange) -> None:
        """Sign and write the entry; :class:`ActionRefusedError` (503) if this console has no signing key."""
        key_file = self.settings.control_signing_key
        if key_file is None:
            raise ActionRefusedError(
                503, "this console has no signing key (SENTINEL_CONTROL_SIGNING_KEY): entries are signed"
            )
        try:
            private_key = load_private_key(key_file)
        except KeyFileError as exc:
            raise ActionRefusedError(503, str(exc)) from None
        await publish_change(self.settings, change, sign(change.to_json(), ALLOWLIST_CHANGE, private_key))


def _until(value: Any, now: datetime) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise ActionRefusedError(400, "until is required: a duration such as 30d, a date or a time")
    try:
        return parse_until(value, now)
    except ValueError as exc:
        raise ActionRefusedError(400, f"until {exc}") from None


def evidence_addresses(alert: Mapping[str, Any]) -> list[str]:
    """The counterparty addresses an alert's evidence names (the event's and the list matches')."""
    evidence = alert.get("evidence") or {}
    event = evidence.get("event") or {}
    found = [event.get("to_address"), *(event.get("from_addresses") or [])]
    found += [m.get("address") for m in evidence.get("matches") or [] if isinstance(m, dict)]
    exposure = evidence.get("exposure")
    if isinstance(exposure, dict):
        found.append(exposure.get("address"))
    return sorted({a for a in found if isinstance(a, str) and a})


def describe_change(change: AllowlistChange) -> dict[str, Any]:
    """What the page says of a new entry."""
    assert change.until is not None
    return {"entry_id": change.entry_id, "scope": change.scope, "until": format_timestamp(change.until)}
