"""The alert taxonomy: what a finding is, how bad, what to do, and whether to do it.

Both the alert contract (:mod:`streams.core.alerts`) and the rule schema
(:mod:`streams.core.rules.schema`) use these, so a rule can only declare what an alert can
carry. docs/alerts.md and docs/rules.md describe each value.
"""

from __future__ import annotations

from typing import Literal

#: The laundering or sanctions pattern a rule looks for.
Typology = Literal[
    "sanctions",
    "indirect_exposure",
    "high_risk_exposure",
    "pass_through",
    "fan_in",
    "fan_out",
    "structuring",
    "velocity",
]
#: How urgent the alert is for the analyst (Falco-style fixed scale).
Severity = Literal["critical", "high", "medium", "low"]
#: What compliance operations should do: freeze the account, or open a case to review.
Action = Literal["freeze", "review"]
#: ``enforce``: act on the alert; ``shadow``: a rule being tried out, alerts only for tuning.
Mode = Literal["enforce", "shadow"]
