"""Who is using the console: a token typed once into the login page, or a trusted proxy's user header.

With ``SENTINEL_CONSOLE_AUTH=tokens`` (the default) users come from
``SENTINEL_CONSOLE_TOKENS`` (``name:token``, comma-separated) or
``SENTINEL_CONSOLE_TOKENS_FILE`` (``name token`` per line); signing in with a token opens
a session held in this console's memory (a random id in an ``HttpOnly``, ``SameSite=Strict``
cookie). With ``proxy``, a reverse proxy that authenticates people (an SSO gateway) puts
the user's name in ``SENTINEL_CONSOLE_USER_HEADER``; the console must then be reachable
only through that proxy. Tokens are compared in constant time and never logged.

Actions need a CSRF token besides: the page reads it from a cookie the console set and
sends it back in a header (a double-submit: another site can neither read the cookie nor
set the header), and the request must be JSON from this console's own origin.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from streams.shell.screening_auth import Callers, token_items
from streams.shell.settings import Settings

SESSION_COOKIE = "sentinel_console_session"
CSRF_COOKIE = "sentinel_console_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Session:
    """A signed-in user."""

    user: str
    expires: float


class ConsoleAuth:
    """Finds the user of a request, and opens and closes sessions."""

    def __init__(self, settings: Settings) -> None:
        self.mode = settings.console_auth
        self.user_header = settings.console_user_header
        self._sessions: dict[str, Session] = {}
        self.users: Callers | None = None
        if self.mode == "tokens":
            self.users = Callers(list(_token_entries(settings)))

    def sign_in(self, token: str) -> str | None:
        """A new session id for the user of ``token``, or ``None`` if no user has it."""
        assert self.users is not None
        caller = self.users.identify(f"Bearer {token.strip()}")
        if caller is None:
            return None
        self._drop_expired()
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = Session(caller.name, time.monotonic() + SESSION_SECONDS)
        return session_id

    def sign_out(self, session_id: str | None) -> None:
        """End a session (a no-op for an unknown one)."""
        if session_id:
            self._sessions.pop(session_id, None)

    def user(self, cookies: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
        """The user of a request, or ``None`` if it is not authenticated."""
        if self.mode == "proxy":
            name = headers.get(self.user_header, "").strip()
            return name[:128] or None
        session = self._sessions.get(cookies.get(SESSION_COOKIE, ""))
        if session is None or session.expires < time.monotonic():
            return None
        return session.user

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if s.expires < now]:
            del self._sessions[key]


def csrf_ok(cookies: Mapping[str, str], headers: Mapping[str, str]) -> bool:
    """Whether an action carries the CSRF cookie's value in its header (``headers`` matches names in any case)."""
    cookie, header = cookies.get(CSRF_COOKIE, ""), headers.get(CSRF_HEADER, "")
    return len(cookie) >= 32 and hmac.compare_digest(cookie.encode(), header.encode())


def new_csrf_token() -> str:
    """A fresh CSRF token for a browser that has none."""
    return secrets.token_urlsafe(32)


def _token_entries(settings: Settings) -> list[tuple[str, str, frozenset[str]]]:
    """Users and tokens of the environment and of the tokens file; ValueError naming a bad item (never its token)."""
    found = token_items(settings.console_tokens, "SENTINEL_CONSOLE_TOKENS", settings.console_tokens_file)
    entries = []
    for where, parts, _ in found:
        if len(parts) != 2 or not parts[0] or len(parts[1]) < 16:
            raise ValueError(f"{where}: expected a user name and a token of at least 16 characters")
        entries.append((parts[0], parts[1], frozenset[str]()))
    if not entries:
        raise ValueError(
            "no console users: set SENTINEL_CONSOLE_TOKENS or SENTINEL_CONSOLE_TOKENS_FILE"
            " (or SENTINEL_CONSOLE_AUTH=proxy behind an authenticating proxy)"
        )
    return entries
