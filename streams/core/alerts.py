"""The alert contract: what compliance operations receive on ``freeze-alerts``.

See docs/alerts.md. The ``alert_id`` is deterministic: it is derived from the rule
(id and version) and the events behind the finding, so the same input and rules give
the same id live, in a backtest, and after a worker restarts and re-processes input.
Consumers dedupe on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, field_serializer

from streams.core.events import format_timestamp
from streams.core.taxonomy import Action, Mode, Severity, Typology


def alert_id_for(rule_id: str, rule_version: str, event_ids: Sequence[str]) -> str:
    """The deterministic id of the finding of ``rule_id@rule_version`` on ``event_ids``.

    The ruleset version is deliberately left out: reloading the rules (say, a list gains
    an unrelated address) must not turn a finding already alerted into a "new" one.
    """
    material = "\x1f".join((rule_id, rule_version, *event_ids)).encode()
    return hashlib.sha256(material).hexdigest()[:32]


class FreezeAlert(BaseModel):
    """One finding of one rule, ready to be acted on."""

    model_config = ConfigDict(frozen=True)

    alert_id: str
    rule_id: str
    rule_version: str
    ruleset_version: str
    typology: Typology
    severity: Severity
    action: Action
    mode: Mode
    account_id: str
    event_ids: list[str]
    event_time: datetime
    detected_at: datetime
    summary: str
    evidence: dict[str, Any]
    #: Raised by ``sentinel rescreen`` for an event screened before its address was designated.
    retroactive: bool = False
    schema_version: Literal[1] = 1

    @field_serializer("event_time", "detected_at")
    def _rfc3339(self, moment: datetime) -> str:
        return format_timestamp(moment)

    def to_json(self) -> bytes:
        """The alert as it is written to the topic and to backtest output."""
        return orjson.dumps(self.model_dump(mode="json"))

    def key(self) -> bytes:
        """The Kafka key: the account, so all alerts of an account stay in order."""
        return self.account_id.encode()
