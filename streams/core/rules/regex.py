"""Regular expressions of rules, run by RE2: time linear in the text, whatever the pattern.

A rule's ``matches:`` pattern comes from a rule file or a bundle on the control topic,
i.e. from outside the process. CPython's backtracking ``re`` takes exponential time on
patterns such as ``^(a+)+$`` (26.8 s for one 31-character account id), so one such rule
would stall every worker. RE2 (the ``google-re2`` package) guarantees linear time by
refusing what needs backtracking (backreferences, lookaround); such a pattern is a load
error that says so. The differences from Python's ``re`` are listed in docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Callable

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

#: Longer patterns are not rules an analyst writes; they only cost memory and time to compile.
MAX_PATTERN = 1_000

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error goes to the rule author in the exception, not to stderr


def compile_search(pattern: str) -> Callable[[str], bool]:
    """A test whether ``pattern`` is found anywhere in a text; ValueError if RE2 refuses it."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"the pattern is {len(pattern)} characters long; at most {MAX_PATTERN}")
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"{reason} (rules use RE2, which runs in linear time: no backreferences or lookaround)"
        ) from None
    search = compiled.search
    return lambda text: search(text) is not None
