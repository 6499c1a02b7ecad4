"""The shape of a rule file (see docs/rules.md).

A rule file is a YAML mapping::

    required_engine_version: 1
    lists:   [ {id, name, category, source, version, file | addresses, ...}, ... ]
    rules:   [ {id, version, name, description, typology, severity, action, events,
                condition, summary, ...}, ... ]

Unknown keys are refused everywhere, so a typo never silently disables a rule.
Conditions are validated by :mod:`streams.core.rules.conditions`, which knows their grammar.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from streams.core.events import EventType
from streams.core.rules.durations import parse_duration_ms
from streams.core.taxonomy import Action, Mode, Severity, Typology

Status = Literal["stable", "test", "experimental", "deprecated"]
Category = Literal["sanctioned", "mixer", "exploit", "phishing", "scam", "high_risk", "custom"]

IDENTIFIER = r"^[a-z0-9][a-z0-9_.-]{0,127}$"
SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$"


def _duration(value: str) -> str:
    parse_duration_ms(value)
    return value


Duration = Annotated[str, AfterValidator(_duration)]
Comparison = Literal["gte", "gt", "lte", "lt", "eq"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class MacroSpec(_Strict):
    """A named, reusable condition: ``{macro: ID}`` stands for it in any condition."""

    id: str = Field(pattern=IDENTIFIER)
    description: str | None = None
    condition: dict[str, Any]


class ExceptionSpec(_Strict):
    """An allowlist entry: when its condition holds, the rule's alert is suppressed and counted."""

    id: str = Field(pattern=IDENTIFIER)
    reason: str = Field(min_length=1, description="Why this is not a finding (kept for auditors).")
    condition: dict[str, Any]


class CorrelationSpec(_Strict):
    """An aggregate over a key's events within a sliding event-time window (Sigma-style)."""

    type: Literal["event_count", "distinct_count", "sum"]
    field: str | None = Field(default=None, description="What distinct_count counts or sum adds up.")
    group_by: Literal["account_id"] = "account_id"
    timespan: Duration
    condition: dict[Comparison, int | float | str] = Field(min_length=1)

    @model_validator(mode="after")
    def _field_needed(self) -> CorrelationSpec:
        if self.type != "event_count" and not self.field:
            raise ValueError(f"a {self.type} correlation needs 'field'")
        if self.type == "event_count" and self.field:
            raise ValueError("an event_count correlation takes no 'field'")
        return self


class StepSpec(_Strict):
    """One step of a sequence: an event type and an optional condition on the event."""

    event: EventType
    condition: dict[str, Any] | None = None


class ThenSpec(StepSpec):
    """The step that completes a sequence, optionally by accumulating a field."""

    total: Literal["amount", "usd_value"] | None = Field(
        default=None, description="Add this field up over matching events ..."
    )
    reaches: float | None = Field(
        default=None, gt=0, description="... until it reaches this fraction of the start event's same field."
    )

    @model_validator(mode="after")
    def _together(self) -> ThenSpec:
        if (self.total is None) != (self.reaches is None):
            raise ValueError("'total' and 'reaches' go together")
        return self


class SequenceSpec(_Strict):
    """Ordered steps by key within a maximum span (EQL-style ``sequence by ... with maxspan``)."""

    by: Literal["account_id"] = "account_id"
    maxspan: Duration
    start: StepSpec
    then: ThenSpec
    until: StepSpec | None = None


class ExposureSpec(_Strict):
    """Indirect exposure: the event's address received funds within ``max_hops`` of a seed list."""

    field: Literal["from_addresses", "to_address"] = Field(
        description="The counterparty addresses to look up: a deposit's senders, a withdrawal's destination."
    )
    seeds: list[str] = Field(min_length=1, description="Lists whose addresses are hop 0.")
    max_hops: int = Field(3, ge=1, le=6)
    stop_at: list[str] = Field(default_factory=list, description="Lists whose addresses end propagation.")
    tokens: str | None = Field(default=None, description="A list of token contracts that carry value.")
    min_share: float | str | None = Field(default=None, description="Alert only from this traced share (0 to 1).")
    expire: Duration = Field("180d", description="An exposed address untouched this long is forgotten.")
    lookback: Duration = Field("30d", description="How far back a newly exposed address's deposits are alerted.")


class ListSpec(_Strict):
    """A named address list, from a file beside the rule file or inline."""

    id: str = Field(pattern=IDENTIFIER)
    name: str = Field(min_length=1)
    category: Category
    source: str | None = Field(
        default=None, min_length=1, description="Where the data comes from; default: the file's .meta.json."
    )
    version: str | None = Field(
        default=None, min_length=1, description="Snapshot or issue date; default: the file's .meta.json."
    )
    file: str | None = Field(default=None, description="Path relative to the rule file.")
    format: Literal["txt", "csv", "json"] | None = None
    address_column: str = "address"
    label_column: str | None = None
    attribute_columns: list[str] = Field(default_factory=list)
    addresses: list[str] | None = Field(default=None, description="Inline addresses instead of a file.")
    entity: str | None = Field(
        default=None,
        description="The one entity every address belongs to (a cluster), unless a label says otherwise.",
    )


class ExpectedAlert(_Strict):
    """An alert a rule test expects (in the order the engine raises them)."""

    event_ids: list[str] | None = Field(default=None, description="The events behind it, in order.")
    summary_contains: str | None = None
    retroactive: bool | None = Field(default=None, description="Found after the fact (an exposure learnt late).")


class RuleTestEvent(BaseModel):
    """An event of a rule test: ``at`` an offset from the start; the event's own fields.

    Fields left out get harmless defaults; ``repeat`` with ``every`` makes a run of
    events, with ``{i}`` (1, 2, ...) replaced in every text field.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    at: Duration = "0s"
    type: EventType | Literal["transfer"]
    repeat: int = Field(1, ge=1, le=100_000)
    every: Duration = "0s"


class RuleTest(_Strict):
    """A test case kept beside its rule (``sentinel rules test``), in the style of promtool."""

    name: str = Field(min_length=1)
    start: str = "2026-01-01T00:00:00Z"
    events: list[RuleTestEvent] = Field(min_length=1)
    expect: list[ExpectedAlert]
    order: Literal["time", "listed"] = Field(
        "time", description="Screen the events in time order (as backtest), or as listed (a late arrival, live)."
    )


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
    condition: dict[str, Any] | None = Field(
        default=None, description="Single-event rules: the match. Correlations: a filter on each event."
    )
    correlation: CorrelationSpec | None = None
    sequence: SequenceSpec | None = None
    exposure: ExposureSpec | None = None
    exceptions: list[ExceptionSpec] = Field(default_factory=list)
    overridable: bool = Field(
        True, description="Whether `sentinel allow` entries may suppress its findings (false for sanctions)."
    )
    suppress: Duration | Literal["none"] | None = Field(
        default=None,
        description="One alert per rule and key per period; default: a correlation's timespan, else none.",
    )
    late_tolerance: Duration = Field("5m", description="How late an event may arrive and still enter state.")
    max_state: int = Field(10_000, ge=1, le=1_000_000, description="Events (or pending sequences) kept per key.")
    summary: str = Field(min_length=1)
    tests: list[RuleTest] = Field(default_factory=list, description="Test cases run by `rules test`.")

    @model_validator(mode="after")
    def _one_kind(self) -> RuleSpec:
        kinds = [k for k in ("correlation", "sequence", "exposure") if getattr(self, k) is not None]
        if len(kinds) > 1:
            raise ValueError(f"a rule is one of correlation, sequence and exposure, not {' and '.join(kinds)}")
        if not kinds and self.condition is None:
            raise ValueError("a single-event rule needs 'condition'")
        if self.sequence is not None and self.condition is not None:
            raise ValueError("a sequence puts its conditions on 'start', 'then' and 'until'")
        return self

    @property
    def kind(self) -> Literal["event", "correlation", "sequence"]:
        """What sort of rule this is."""
        if self.correlation is not None:
            return "correlation"
        if self.sequence is not None:
            return "sequence"
        return "event"


class RuleFile(_Strict):
    """A whole rule file."""

    required_engine_version: int = Field(ge=1)
    lists: list[ListSpec] = Field(default_factory=list)
    macros: list[MacroSpec] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)
