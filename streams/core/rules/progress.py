"""How far a sequence got from one start: what ``SequenceRule.progress`` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from streams.core.rules.state import Start


@dataclass
class Progress:
    """How far the steps after one start go: complete, cancelled by an ``until``, or still short."""

    start: Start
    #: The last moment (epoch ms) a step can complete it: the start's time plus ``maxspan``.
    deadline: int
    #: The accumulated value the steps must reach (``reaches`` x the start's), if any.
    goal: Decimal | None
    used: list[str] = field(default_factory=list)
    accumulated: Decimal = Decimal(0)
    when: int = 0
    complete: bool = False
    cancelled_by: str | None = None
