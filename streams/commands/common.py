"""What every ``sentinel`` subcommand shares: settings and rules loaded with plain errors."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from streams.core.errors import first_problem
from streams.core.rules.engine import Ruleset
from streams.core.rules.loader import load_ruleset
from streams.core.rules.source import RuleFileError
from streams.shell.memory import settle_long_lived
from streams.shell.settings import Settings


def settings() -> Settings:
    """The settings from the environment, or a plain error naming the bad one."""
    try:
        return Settings()
    except ValidationError as exc:
        problem = first_problem(exc)
        raise SystemExit(f"sentinel: bad setting {problem.dotted}: {problem.message}") from None


def positive(text: str) -> int:
    """A whole number of at least 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def existing_file(name: str) -> Path:
    """``name`` as a path, or a plain error if there is no such file."""
    path = Path(name)
    if not path.is_file():
        raise SystemExit(f"sentinel: {path}: no such file")
    return path


def ruleset(paths: Sequence[str]) -> Ruleset:
    """The ruleset in ``paths``, or a plain error with file and line."""
    try:
        ruleset = load_ruleset(list(paths))
        settle_long_lived()
        return ruleset
    except RuleFileError as exc:
        raise SystemExit(f"sentinel: {exc}") from None
