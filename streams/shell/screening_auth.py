"""Who may call the screening API, and how often: bearer tokens and a token bucket per caller.

Tokens come from ``SENTINEL_SCREENING_TOKENS`` (``name:token[:scope+scope]``, comma-separated)
or from ``SENTINEL_SCREENING_TOKENS_FILE`` (one ``name token [scope,scope]`` per line, ``#``
comments). A token is compared with every known one in constant time, so the time a
refusal takes says nothing about how close a guess was; tokens are never logged or
shown (only the caller's name is, in the audit record). Scopes are ``withdrawal`` and
``address``; a caller without scopes has both.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from streams.shell.settings import Settings

SCOPES = frozenset({"withdrawal", "address"})


@dataclass(frozen=True)
class Caller:
    """An authenticated caller of the API."""

    name: str
    scopes: frozenset[str]


class Callers:
    """The known callers, found by their bearer token."""

    def __init__(self, entries: Iterable[tuple[str, str, frozenset[str]]]) -> None:
        # Digests of equal length: compare_digest then takes the same time for any guess.
        self._entries = [
            (hashlib.sha256(token.encode()).digest(), Caller(name, scopes)) for name, token, scopes in entries
        ]
        if not self._entries:
            raise ValueError("no screening API callers are configured")

    @classmethod
    def from_settings(cls, settings: Settings) -> Callers:
        """The callers of the environment and of the tokens file; ValueError naming a bad line (never its token)."""
        items = token_items(settings.screening_tokens, "SENTINEL_SCREENING_TOKENS", settings.screening_tokens_file)
        # Scopes are joined by '+' in the environment (',' already separates callers there), by ',' in a file.
        return cls([_entry(parts, "," if in_file else "+", where) for where, parts, in_file in items])

    def identify(self, authorization: str | None) -> Caller | None:
        """The caller whose token ``authorization`` (``Bearer <token>``) carries, or None."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        digest = _digest(authorization[7:].strip())
        found = None
        for known, caller in self._entries:  # every entry, whatever matched: no early exit to time
            if hmac.compare_digest(known, digest):
                found = caller
        return found


def token_items(listed: SecretStr | None, variable: str, file: Path | None) -> list[tuple[str, list[str], bool]]:
    """Each item of a tokens setting: where it is (for errors; never the token), its parts, whether from the file.

    ``listed`` holds comma-separated items of ``:``-separated parts (the variable ``variable``);
    ``file`` one item per line, parts separated by spaces, ``#`` comments.
    """
    items: list[tuple[str, list[str], bool]] = []
    if listed is not None:
        for n, item in enumerate(listed.get_secret_value().split(","), 1):
            if item.strip():
                items.append((f"{variable} item {n}", item.strip().split(":"), False))
    if file is not None:
        for n, line in enumerate(Path(file).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                items.append((f"{file} line {n}", line.split(), True))
    return items


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _entry(parts: list[str], scope_separator: str, where: str) -> tuple[str, str, frozenset[str]]:
    """A caller from its name, token and optional scopes (``scope_separator`` between scopes)."""
    if len(parts) < 2 or not parts[0] or len(parts[1]) < 16:
        raise ValueError(f"{where}: expected a caller name and a token of at least 16 characters")
    scopes = frozenset(s for s in (parts[2] if len(parts) > 2 else "").split(scope_separator) if s) or SCOPES
    if not scopes <= SCOPES:
        raise ValueError(f"{where}: unknown scope(s) {sorted(scopes - SCOPES)}; known: {sorted(SCOPES)}")
    return parts[0], parts[1], scopes


@dataclass
class RateLimiter:
    """A token bucket per caller: ``rate`` requests a second, bursts up to ``rate``."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, caller: str) -> float:
        """0.0 if ``caller`` may make a request now (and count it), else the seconds until it may."""
        now = self.clock()
        tokens, at = self._buckets.get(caller, (self.rate, now))
        tokens = min(self.rate, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[caller] = (tokens - 1.0, now)
            return 0.0
        self._buckets[caller] = (tokens, now)
        return (1.0 - tokens) / self.rate
