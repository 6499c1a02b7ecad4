"""The shape of a rule file (see docs/rules.md).

A rule file is a YAML mapping::

    required_engine_version: 1
    lists:   [ {id, name, category, source, version, file | addresses, ...}, ... ]
    rules:   [ {id, version, name, description, typology, severity, action, events,
                condition, summary, ...}, ... ]

Unknown keys are refused everywhere, so a typo never silently disables a rule.
Conditions are validated by :mod:`streams.rules.conditions`, which knows their grammar.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from streams.events import EventType

Typology = Literal[
    "sanctions", "high_risk_exposure", "pass_through", "fan_in", "fan_out", "structuring", "velocity"
]
Severity = Literal["critical", "high", "medium", "low"]
Action = Literal["freeze", "review"]
Mode = Literal["enforce", "shadow"]
Status = Literal["stable", "test", "experimental", "deprecated"]
Category = Literal["sanctioned", "mixer", "exploit", "phishing", "scam", "high_risk", "custom"]

IDENTIFIER = r"^[a-z0-9][a-z0-9_.-]{0,127}$"
SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ListSpec(_Strict):
    """A named address list, from a file beside the rule file or inline."""

    id: str = Field(pattern=IDENTIFIER)
    name: str = Field(min_length=1)
    category: Category
    source: str = Field(min_length=1, description="Where the data comes from (URL, repository, team).")
    version: str = Field(min_length=1, description="Snapshot or issue date of the data.")
    file: str | None = Field(default=None, description="Path relative to the rule file.")
    format: Literal["txt", "csv", "json"] | None = None
    address_column: str = "address"
    label_column: str | None = None
    attribute_columns: list[str] = Field(default_factory=list)
    addresses: list[str] | None = Field(default=None, description="Inline addresses instead of a file.")


class RuleSpec(_Strict):
    """One detection rule."""

    id: str = Field(pattern=IDENTIFIER)
    version: str = Field(pattern=SEMVER)
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    status: Status = "stable"
    typology: Typology
    severity: Severity
    action: Action
    mode: Mode = "enforce"
    enabled: bool = True
    tags: list[str] = Field(default_factory=list)
    falsepositives: list[str] = Field(default_factory=list)
    events: list[EventType] = Field(min_length=1)
    condition: dict[str, Any]
    summary: str = Field(min_length=1)


class RuleFile(_Strict):
    """A whole rule file."""

    required_engine_version: int = Field(ge=1)
    lists: list[ListSpec] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)
