"""The pre-withdrawal screening API: ``POST /v1/screen/withdrawal`` and ``GET /v1/screen/address/{chain}/{address}``.

The withdrawal service calls it before it signs (docs/screening.md). Each request is:

1. **authenticated** (a bearer token, :mod:`streams.shell.screening_auth`: 401 without a
   known one, 403 for a route outside its scopes), **rate limited** per caller (429 with
   ``Retry-After``) and **size limited** (413);
2. **validated** as the stream validates (400 naming the field; a withdrawal needs no
   ``tx_hash``);
3. **routed** to the worker that holds the account's state (or the chain's exposure),
   found with Faust's own table router (:meth:`faust.App.router.key_store`, which reads
   the group's assignment). Faust's ``route_req`` forwards a request without its body, so
   the body is passed on here, with the caller's token, once: a routed request is never
   routed again;
4. **screened** as a dry run (:mod:`streams.core.decisions`): the stream's state is read,
   copied, and left as it was;
5. **audited**: the decision is written to the decisions topic and acknowledged before it
   is answered (no answer without its audit record), and counted in metrics.

When the account's state cannot be read (a rebalance, the owner unreachable), the
configured fail mode decides: ``closed`` answers 503 with ``"decision": "hold"``;
``open`` screens without the account's state and says so (``"account_state": "unavailable"``).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
import orjson
from aiohttp import web

from streams.core.allowlist import Allowlist
from streams.core.chains import CHAINS
from streams.core.decisions import ScreenResult, screen_address, screen_withdrawal
from streams.core.events import Clock, EventError, Withdrawal, format_timestamp
from streams.core.inputs import parse_input
from streams.core.rules.engine import Ruleset
from streams.core.rules.exposure_rule import ExposureStore
from streams.core.rules.state import AccountState
from streams.shell import metrics
from streams.shell.screening_auth import Caller, Callers, RateLimiter
from streams.shell.settings import Settings

log = logging.getLogger(__name__)

#: Set on a request one worker passes to another: it is screened there or refused, never passed on.
ROUTED_HEADER = "X-Sentinel-Routed"
KINDS = ("withdrawal", "address")


class UnavailableError(Exception):
    """The state a screen needs cannot be read now (a rebalance, recovery, the owner unreachable)."""


class ScreeningBackend(Protocol):
    """What the API needs of the worker it runs in."""

    @property
    def ruleset(self) -> Ruleset:
        """The rules in force."""

    @property
    def allowlist(self) -> Allowlist:
        """The allowlist in force."""

    def owner_of_account(self, account_id: str) -> str | None:
        """The URL of the worker holding the account's state; None for this one. Raises UnavailableError."""

    def account_state(self, account_id: str) -> AccountState:
        """The account's current state, as a copy. Raises UnavailableError."""

    def owner_of_chain(self, chain: str) -> str | None:
        """The URL of the worker holding the chain's exposure; None for this one. Raises UnavailableError."""

    def exposure(self) -> ExposureStore | None:
        """This worker's exposure state (None if it follows no chain)."""

    async def audit(self, key: bytes, value: bytes) -> None:
        """Write one audit record and return once it is acknowledged."""

    async def forward(self, url: str, method: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """Send a request to another worker; its status and body."""


def build_screening_app(
    backend: ScreeningBackend, callers: Callers, settings: Settings, clock: Clock, *, self_url: str
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """The API's request handler, for aiohttp's low-level server (:class:`aiohttp.web.Server`).

    Two routes and no more (account state and lists are readable nowhere else), so no
    router or middleware: measured here, aiohttp's ``Application`` machinery costs a fifth
    of a request's CPU (0.45 against 0.37 ms for a trivial handler at 1,000 requests/s).
    """
    limiter = RateLimiter(settings.screening_rate)
    # The metrics' children, bound once: a labels() lookup per request costs more than the screen's own counting.
    decided = {(k, d): metrics.SCREENING_DECISIONS.labels(k, d) for k in KINDS for d in ("block", "hold", "allow")}
    took = {kind: metrics.SCREENING_SECONDS.labels(kind) for kind in KINDS}
    for outcome in ("ok", "failed"):  # known label values start at 0 (a dashboard shows 0, not "no data")
        metrics.SCREENING_ROUTED.labels(outcome)
    fail_open = settings.screening_fail_mode == "open"
    # Decision ids: random per worker process, then counted (a uuid4 per request reads
    # /dev/urandom each time, a measurable share of a request here).
    worker_tag, numbers = secrets.token_hex(8), itertools.count(1)

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        """Every request: the caller, its scope and rate, the body's size, then the route."""
        caller = callers.identify(request.headers.get("Authorization"))
        if caller is None:
            return _refuse(401, "unauthorized", "a valid bearer token is needed", {"WWW-Authenticate": "Bearer"})
        parts = request.path.split("/")  # ['', 'v1', 'screen', 'withdrawal'] or [..., 'address', chain, address]
        if request.method == "POST" and parts == ["", "v1", "screen", "withdrawal"]:
            scope = "withdrawal"
        elif request.method == "GET" and len(parts) == 6 and parts[:4] == ["", "v1", "screen", "address"]:
            scope = "address"
        else:
            return _refuse(404, "not_found", "the routes are POST /v1/screen/withdrawal and GET /v1/screen/address/...")
        if scope not in caller.scopes:
            return _refuse(403, "forbidden", f"caller {caller.name!r} may not screen {scope}es")
        wait = limiter.allow(caller.name)
        if wait:
            return _refuse(429, "rate_limited", "too many requests", {"Retry-After": str(max(1, round(wait)))})
        limit = settings.screening_max_body
        body = await request.content.read(limit + 1)  # at most one byte past the limit is ever held
        if len(body) > limit or (request.content_length or 0) > limit:
            return _refuse(413, "too_large", f"the body is larger than {limit} bytes")
        if scope == "withdrawal":
            return await withdrawal(request, caller, body)
        return await address(request, caller, parts[4], parts[5])

    async def answer(
        kind: str, key: bytes, request: web.BaseRequest, caller: Caller, asked: Any, result: ScreenResult
    ) -> web.Response:
        record = {
            "schema_version": 1,
            "decision_id": f"{worker_tag}-{next(numbers):x}",
            "kind": kind,
            "caller": caller.name,
            "served_by": self_url,
            "routed": ROUTED_HEADER in request.headers,
            "request": asked,
            "decision": result.decision,
            "alert_ids": [f.alert_id for f in result.findings],
            "rule_ids": [f.rule_id for f in result.findings],
            "ruleset_version": result.ruleset_version,
            "account_state": result.account_state,
            "screened_at": format_timestamp(result.screened_at),
        }
        try:
            await backend.audit(key, orjson.dumps(record))
        except Exception as exc:  # no answer without its audit record
            log.error("the audit record of a %s screen could not be written: %r", kind, exc)
            return _refuse(503, "audit_unavailable", "the decision could not be recorded; try again", hold=True)
        decided[kind, result.decision].inc()
        body = orjson.dumps({"decision_id": record["decision_id"], **result.as_json()})
        return web.Response(body=body, content_type="application/json")

    async def routed(request: web.BaseRequest, owner: str, body: bytes) -> web.Response:
        if ROUTED_HEADER in request.headers:
            raise UnavailableError("the worker this request was routed to no longer holds its state")
        headers = {"Authorization": request.headers["Authorization"], ROUTED_HEADER: self_url}
        try:
            status, payload = await backend.forward(owner + request.raw_path, request.method, body, headers)
        except Exception as exc:
            metrics.SCREENING_ROUTED.labels("failed").inc()
            raise UnavailableError(f"the worker holding the state did not answer ({type(exc).__name__})") from None
        metrics.SCREENING_ROUTED.labels("ok").inc()
        return web.Response(body=payload, status=status, content_type="application/json")

    async def withdrawal(request: web.BaseRequest, caller: Caller, body: bytes) -> web.Response:
        started = time.perf_counter()
        try:
            event = parse_input(body, "withdrawal", clock())
        except EventError as exc:
            return _refuse(400, exc.reason, exc.detail)
        if not isinstance(event, Withdrawal):  # parse_input("withdrawal") gives nothing else
            return _refuse(400, "type_mismatch", "expected a withdrawal")
        try:
            owner = backend.owner_of_account(event.account_id)
            if owner is not None:
                return await routed(request, owner, body)
            state, known = backend.account_state(event.account_id), "current"
        except UnavailableError as exc:
            if not fail_open:
                return _refuse(503, "unavailable", str(exc), hold=True)
            state, known = AccountState(), "unavailable"
        result = screen_withdrawal(
            backend.ruleset, event, state, clock, allowlist=backend.allowlist, account_state=known
        )
        # The body is valid JSON (it was just parsed): the audit record holds it as it came.
        response = await answer("withdrawal", event.account_id.encode(), request, caller, orjson.Fragment(body), result)
        took["withdrawal"].observe(time.perf_counter() - started)
        return response

    async def address(request: web.BaseRequest, caller: Caller, chain: str, text: str) -> web.Response:
        started = time.perf_counter()
        if chain not in CHAINS:  # before it is routed anywhere
            return _refuse(400, "invalid_field", f"unknown chain {chain[:40]!r}; known: {', '.join(sorted(CHAINS))}")
        exposure: ExposureStore | None = None
        missing: str | None = None
        try:
            owner = backend.owner_of_chain(chain)
            if owner is not None:
                return await routed(request, owner, b"")
            exposure = backend.exposure()
        except UnavailableError as exc:
            if not fail_open:
                return _refuse(503, "unavailable", str(exc), hold=True)
            missing = "unavailable"
        try:
            result = screen_address(
                backend.ruleset,
                chain,
                text,
                clock,
                exposure=exposure,
                allowlist=backend.allowlist,
                exposure_state=missing,
            )
        except EventError as exc:
            return _refuse(400, exc.reason, exc.detail.replace("field 'to_address'", "the address"))
        asked = {"chain": chain, "address": text}
        response = await answer("address", f"{chain}:{text}".encode(), request, caller, asked, result)
        took["address"].observe(time.perf_counter() - started)
        return response

    return handle


def _refuse(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None, *, hold: bool = False
) -> web.Response:
    metrics.SCREENING_REFUSED.labels(str(status)).inc()
    body: dict[str, Any] = {"error": error, "detail": detail}
    if hold:
        body["decision"] = "hold"
    return web.Response(body=orjson.dumps(body), status=status, headers=headers, content_type="application/json")


def server_ssl(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the API, if it is configured."""
    if settings.screening_tls_certfile is None or settings.screening_tls_keyfile is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.screening_tls_certfile, settings.screening_tls_keyfile)
    return context


def own_url(settings: Settings) -> str:
    """How other workers reach this one's API."""
    if settings.screening_url:
        return settings.screening_url.rstrip("/")
    scheme = "https" if settings.screening_tls_certfile is not None else "http"
    return f"{scheme}://{settings.screening_host}:{settings.screening_port}"


async def forward_with(
    session: aiohttp.ClientSession, timeout: float, url: str, method: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    """Send one request with ``session``; its status and body (what :meth:`ScreeningBackend.forward` does)."""
    async with session.request(
        method, url, data=body or None, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as response:
        return response.status, await response.read()


__all__ = ["ROUTED_HEADER", "ScreeningBackend", "UnavailableError", "build_screening_app", "own_url", "server_ssl"]
