"""Why a compiled condition does not hold for an event, in plain words (for ``sentinel explain``).

Every verdict here comes from calling the compiled conditions themselves, the functions
the engine calls; their descriptions (:func:`~streams.core.rules.conditions.description_of`)
only say in words which part failed and what the event held there.
"""

from __future__ import annotations

from streams.core.events import Event
from streams.core.rules.conditions import Condition, description_of

MAX_SHOWN = 3


def shown_value(event: Event, field: str) -> str:
    """The event's value of ``field`` as the explanation shows it."""
    if field in ("from_addresses", "to_address"):
        addresses = event.addresses(field)
        if not addresses:
            return "missing"
        more = f" and {len(addresses) - MAX_SHOWN} more" if len(addresses) > MAX_SHOWN else ""
        return ", ".join(addresses[:MAX_SHOWN]) + more
    value = getattr(event, field, None)
    return "missing" if value is None else str(value)


def why_not(condition: Condition, event: Event) -> str:
    """Which part of ``condition`` fails for ``event`` and what the event held there.

    Only meaningful when ``condition(event)`` is ``None``; says "it holds" otherwise.
    """
    if condition(event) is not None:
        return "it holds"
    described = description_of(condition)
    if described is None:
        return "the condition does not hold"
    if described.kind == "all":
        failing = next(child for child in described.children if child(event) is None)
        return why_not(failing, event)
    if described.kind == "any":
        return "none holds: " + "; ".join(why_not(child, event) for child in described.children)
    if described.kind == "not":
        inner = described.children[0]
        inner_text = description_of(inner)
        return f"excluded: {inner_text.text if inner_text else 'its inner condition'} holds"
    assert described.field is not None
    actual = shown_value(event, described.field)
    if described.kind == "list":
        return f"not {described.text} ({described.field}: {actual})"
    return f"{described.field} is {actual}, so not {described.text}"
