"""The persisted form of an account's rule state: named fields, a version, and the older forms.

Version 2 (written now) is a JSON object with named fields::

    {"latest": 1767225600000,
     "seen": {"d-1": 1767225600000},
     "rules": {"fan-in": {"window": {"marks": {"deposit": 1767225600000},
                                     "entries": [[1767225600000, "d-1", ["0xabc"]]]}},
               "pass-through": {"sequence": {"marks": {...}, "starts": [[t, id, base, done]],
                                             "thens": [[t, id, amount]], "untils": [[t, id]]}}},
     "suppressed": {"fan-in": {"at": 1767225600000, "alert_id": "..."}}}

Times are epoch milliseconds, amounts decimal strings; a window entry's third item is
1 (event count), a decimal string (sum) or the event's normalised values (distinct
count). Running aggregates are not stored: they are rebuilt from the entries.

Versions 0 and 1 held the document the engine used to change in place: rule id ->
``{"t": marks, "e": entries}`` or ``{"t", "s", "n", "u"}``, plus ``#seen``, ``#latest``
and ``<rule>#suppress`` -> ``{"at", "id"}``. They are read, so a worker of this version
takes over the state an older one wrote. The version number itself travels in the
changelog value's header (see :mod:`streams.shell.state_table`). Pure Python, no I/O.
"""

from __future__ import annotations

from typing import Any

from streams.core.rules.state import AccountState, Sequence, Suppression, Window

#: The version :func:`to_json` writes.
VERSION = 2


def to_json(state: AccountState) -> dict[str, Any]:
    """``state`` as a JSON-ready object of the current version."""
    out: dict[str, Any] = {}
    if state.latest is not None:
        out["latest"] = state.latest
    if state.seen:
        out["seen"] = state.seen
    if state.parts:
        out["rules"] = {rule_id: _part_json(part) for rule_id, part in state.parts.items()}
    if state.suppressed:
        out["suppressed"] = {rule_id: {"at": s.at, "alert_id": s.alert_id} for rule_id, s in state.suppressed.items()}
    return out


def _part_json(part: Window | Sequence) -> dict[str, Any]:
    if isinstance(part, Window):
        return {"window": {"marks": part.marks, "entries": part.entries}}
    return {"sequence": {"marks": part.marks, "starts": part.starts, "thens": part.thens, "untils": part.untils}}


def from_json(data: Any, version: int) -> AccountState:
    """The state held by a decoded JSON value of ``version`` (0, 1 or 2).

    Raises ValueError for a value of an unknown version or of the wrong shape.
    """
    if not isinstance(data, dict):
        raise ValueError(f"state value is a JSON {type(data).__name__}, expected an object")
    try:
        if version == VERSION:
            return _from_v2(data)
        if version in (0, 1):
            return _from_v1(data)
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"state value of version {version} is malformed: {exc!r}") from None
    raise ValueError(f"state value of unknown version {version}: written by a newer worker?")


def _from_v2(data: dict[str, Any]) -> AccountState:
    state = AccountState()
    state.latest = data.get("latest")
    state.seen = dict(data.get("seen", {}))
    for rule_id, part in data.get("rules", {}).items():
        if "window" in part:
            window = part["window"]
            state.parts[rule_id] = _window(window["marks"], window["entries"])
        else:
            seq = part["sequence"]
            state.parts[rule_id] = _sequence(seq["marks"], seq["starts"], seq["thens"], seq["untils"])
    for rule_id, s in data.get("suppressed", {}).items():
        state.suppressed[rule_id] = Suppression(s["at"], s["alert_id"])
    return state


def _from_v1(doc: dict[str, Any]) -> AccountState:
    state = AccountState()
    state.seen = dict(doc.get("#seen", {}))
    state.latest = doc.get("#latest", max(state.seen.values(), default=None))
    for key, part in doc.items():
        if key.startswith("#"):
            continue
        if key.endswith("#suppress"):
            state.suppressed[key.removesuffix("#suppress")] = Suppression(part["at"], part["id"])
        elif "e" in part:
            state.parts[key] = _window(part["t"], part["e"])
        else:
            state.parts[key] = _sequence(part["t"], part["s"], part["n"], part["u"])
    return state


def _window(marks: dict[str, int], entries: list[list[Any]]) -> Window:
    return Window(dict(marks), [(e[0], e[1], e[2]) for e in entries])


def _sequence(marks: dict[str, int], starts: list[Any], thens: list[Any], untils: list[Any]) -> Sequence:
    return Sequence(
        dict(marks),
        [(s[0], s[1], s[2], bool(s[3])) for s in starts],
        [(n[0], n[1], n[2]) for n in thens],
        [(u[0], u[1]) for u in untils],
    )
