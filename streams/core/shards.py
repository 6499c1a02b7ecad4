"""Sharing offline screening out over processes by account.

Rule state, resend dedupe and suppression are all per account, so a process that screens
every record of its accounts, in their order, finds exactly what one process screening
everything would. ``backtest --jobs`` and ``rescreen --jobs`` use this: the parent decides
each record's share by a hash of its account, forks, and merges what comes back by the
records' positions.
"""

from __future__ import annotations

import multiprocessing
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

Result = TypeVar("Result")

#: The work a forked child runs: set just before the pool forks, so nothing is pickled
#: on the way in (the lines and the compiled ruleset are simply there in the child).
_FORKED: list[Callable[[int], Any]] = []


def share_of(account: str | bytes | None, jobs: int) -> int:
    """Which of ``jobs`` shares an account's records go to (unreadable ones: the first)."""
    if account is None:
        return 0
    return zlib.crc32(account.encode() if isinstance(account, str) else account) % jobs


def _run_forked(index: int) -> Any:
    return _FORKED[0](index)


def in_processes(jobs: int, work: Callable[[int], Result]) -> list[Result]:
    """``[work(0), ..., work(jobs - 1)]``, each call in a forked process of its own.

    What ``work`` returns travels back pickled, so it should be small (alerts and counts).
    """
    _FORKED[:] = [work]
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            return pool.map(_run_forked, range(jobs))
    finally:
        _FORKED.clear()
