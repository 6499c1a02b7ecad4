"""Alert summaries: ``{placeholder}`` substitution from a fixed vocabulary, never code.

A template such as ``"Deposit of {amount} {asset} into {account_id} from
{matched_label} ({matched_address}), {list_name} of {list_version}"`` is checked
when the rule is loaded (unknown placeholders are errors) and filled by plain string
replacement: no attribute access, no format specs, no expressions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from streams.core.errors import RuleError
from streams.core.events import Event, format_timestamp

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

EVENT_PLACEHOLDERS = (
    "type",
    "event_id",
    "account_id",
    "chain",
    "asset",
    "amount",
    "usd_value",
    "timestamp",
    "tx_hash",
    "to_address",
    "from_addresses",
)
MATCH_PLACEHOLDERS = (
    "matched_address",
    "matched_label",
    "matched_programs",
    "matched_listed_on",
    "list_name",
    "list_version",
    "list_source",
)
RULE_PLACEHOLDERS = ("rule_id", "rule_name")
WINDOW_PLACEHOLDERS = ("window_value", "window_events", "window_start", "timespan")
SEQUENCE_PLACEHOLDERS = (
    "sequence_start_value",
    "sequence_total",
    "sequence_ratio",
    "maxspan",
    "start_event_id",
)
EXPOSURE_PLACEHOLDERS = (
    "exposure_address",
    "exposure_entity",
    "exposure_hops",
    "exposure_share",
    "exposure_via",
    "exposure_path",
)
PLACEHOLDERS = frozenset(
    EVENT_PLACEHOLDERS
    + MATCH_PLACEHOLDERS
    + RULE_PLACEHOLDERS
    + WINDOW_PLACEHOLDERS
    + SEQUENCE_PLACEHOLDERS
    + EXPOSURE_PLACEHOLDERS
)

Summary = Callable[[Event, dict[str, Any]], str]


class TemplateError(RuleError):
    """A summary template naming something that does not exist."""


def compile_summary(template: str, rule_id: str, rule_name: str) -> Summary:
    """Check ``template`` and return a function that fills it for an event and its evidence."""
    unknown = sorted(set(_placeholders(template)) - PLACEHOLDERS)
    if unknown:
        raise TemplateError(
            f"unknown placeholder {{{unknown[0]}}} in summary; known: {', '.join(sorted(PLACEHOLDERS))}"
        )

    def fill(event: Event, evidence: dict[str, Any]) -> str:
        values = _event_values(event)
        values.update(_match_values(evidence.get("matches", [])))
        values.update(_window_values(evidence.get("window")))
        values.update(_sequence_values(evidence.get("sequence")))
        values.update(_exposure_values(evidence.get("exposure")))
        values["rule_id"] = rule_id
        values["rule_name"] = rule_name
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)

    return fill


def _placeholders(template: str) -> list[str]:
    return _PLACEHOLDER.findall(template)


def _event_values(event: Event) -> dict[str, str]:
    values = {
        "type": event.type,
        "event_id": event.event_id,
        "account_id": event.account_id,
        "chain": event.chain,
        "asset": event.asset,
        "amount": str(event.amount),
        "usd_value": str(event.usd_value) if event.usd_value is not None else "unknown",
        "timestamp": format_timestamp(event.timestamp),
        "tx_hash": getattr(event, "tx_hash", None) or "none",
        "to_address": event.to_address,
        "from_addresses": ", ".join(event.addresses("from_addresses")) or "none",
    }
    return values


def _match_values(evidence: list[dict[str, Any]]) -> dict[str, str]:
    hits = [item for item in evidence if "list" in item]
    if not hits:
        return {}
    first = hits[0]
    labels = sorted({item["entry"].get("label") for item in hits if item["entry"].get("label")})
    programs = sorted({p for item in hits for p in str(item["entry"].get("programs", "")).split(";") if p})
    listed = sorted({str(item["entry"]["entry_event_date"]) for item in hits if item["entry"].get("entry_event_date")})
    return {
        "matched_address": ", ".join(item["address"] for item in hits),
        "matched_programs": ", ".join(programs) if programs else "no program given",
        "matched_label": ", ".join(labels) if labels else "an unnamed holder",
        "matched_listed_on": ", ".join(listed) if listed else first["list"]["version"],
        "list_name": first["list"]["name"],
        "list_version": first["list"]["version"],
        "list_source": first["list"]["source"],
    }


def _window_values(window: dict[str, Any] | None) -> dict[str, str]:
    if not window:
        return {}
    return {
        "window_value": str(window["value"]),
        "window_events": str(window["events"]),
        "window_start": str(window["start"]),
        "timespan": str(window["timespan"]),
    }


def _sequence_values(sequence: dict[str, Any] | None) -> dict[str, str]:
    if not sequence:
        return {}
    return {
        "sequence_start_value": str(sequence.get("start_value", "n/a")),
        "sequence_total": str(sequence.get("total", "n/a")),
        "sequence_ratio": str(sequence.get("ratio", "n/a")),
        "maxspan": str(sequence["maxspan"]),
        "start_event_id": str(sequence["start"]["event_id"]),
    }


def _exposure_values(exposure: dict[str, Any] | None) -> dict[str, str]:
    if not exposure:
        return {}
    path = exposure["path"]
    # The address that paid the exposed one: the last intermediary (the seed itself at one hop).
    via = path[-1]["from"] if path else exposure["seed_address"]
    share = Decimal(exposure["share"]) * 100
    return {
        "exposure_address": str(exposure["address"]),
        "exposure_entity": str(exposure["entity"]),
        "exposure_hops": str(exposure["hops"]),
        "exposure_share": f"{share.quantize(Decimal(1))}%",
        "exposure_via": str(via),
        "exposure_path": " -> ".join([exposure["seed_address"], *(hop["to"] for hop in path)]),
    }
