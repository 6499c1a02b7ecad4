"""One family of errors for rule and list problems, and one way to word a pydantic error.

Every problem with rules or their lists is a :class:`RuleError`. The parts of loading
raise the specific ones (a condition off the grammar, a macro, a template, a list file);
the loader turns each into a :class:`~streams.core.rules.source.RuleFileError`, which carries
the file, line, column and rule, so ``except RuleError`` catches all of them and what a
person reads always says where.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


class RuleError(ValueError):
    """A rule, rule file or list that cannot be used."""


@dataclass(frozen=True)
class Problem:
    """The first problem pydantic found, in plain words."""

    #: Where, as pydantic's location (field names and indexes).
    loc: tuple[str | int, ...]
    #: pydantic's error type (``missing``, ``extra_forbidden``, ``value_error``, ...).
    kind: str
    #: The message, without pydantic's "Value error, " prefix.
    message: str
    #: The value that was refused, if pydantic kept it.
    input: Any
    #: How many other problems it found.
    more: int

    @property
    def dotted(self) -> str:
        """The location as ``a.b.0.c``."""
        return ".".join(str(part) for part in self.loc)


def first_problem(exc: ValidationError, *, first_kind: str | None = None) -> Problem:
    """The problem to show of ``exc``: the first one, or the first of ``first_kind`` if any.

    (An unknown key, ``extra_forbidden``, usually is a typo that also explains a "missing"
    one: the rule loader shows it first.)
    """
    errors = exc.errors(include_url=False)
    if first_kind is not None:
        errors = sorted(errors, key=lambda e: e["type"] != first_kind)
    error = errors[0]
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return Problem(tuple(error["loc"]), error["type"], message, error.get("input"), len(errors) - 1)
