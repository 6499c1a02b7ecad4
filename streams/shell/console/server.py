"""The console's HTTP routes: the page, its JSON, live updates, sign-in and actions.

Pages (``/``, ``/alerts/{id}``, ``/accounts/{id}``) are one static HTML file whose script
fetches JSON and writes every value from an alert as text (``textContent``, SVG text
nodes), never as markup: summaries and addresses come from events, that is from outside.
The Content-Security-Policy allows scripts and styles from this console only, so no
inline script runs even if markup were ever injected. Every route but ``/health``, the
sign-in page and the static files needs a user; actions need the CSRF token besides.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from aiokafka.errors import KafkaError

from streams.core.triage import AlertQueue, QueueFilter, TriageError, facet_values
from streams.shell.console.actions import (
    ActionRefusedError,
    AllowlistAction,
    describe_change,
    disposition_from_request,
    evidence_addresses,
)
from streams.shell.console.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    ConsoleAuth,
    csrf_ok,
    new_csrf_token,
)
from streams.shell.console.feed import ConsoleFeed, PageHub

log = logging.getLogger(__name__)

STATIC = resources.files("streams.shell.console") / "static"
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self';"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
MAX_BODY = 16_384
HEARTBEAT_SECONDS = 15.0
_OPEN = {"/health", "/login", "/static/console.css", "/static/login.css"}

AUTH_KEY = web.AppKey("auth", ConsoleAuth)
QUEUE_KEY = web.AppKey("queue", AlertQueue)
FEED_KEY = web.AppKey("feed", ConsoleFeed)
HUB_KEY = web.AppKey("hub", PageHub)
ALLOW_KEY = web.AppKey("allow", AllowlistAction)
USER = web.RequestKey("user", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    auth: ConsoleAuth, queue: AlertQueue, feed: ConsoleFeed, hub: PageHub, allow: AllowlistAction
) -> web.Application:
    """The console's aiohttp application (the feed is started and stopped by the caller)."""
    app = web.Application(middlewares=[_guard], client_max_size=MAX_BODY)
    app[AUTH_KEY], app[QUEUE_KEY], app[FEED_KEY], app[HUB_KEY], app[ALLOW_KEY] = auth, queue, feed, hub, allow
    app.router.add_get("/health", health)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/static/{name}", static)
    for path in ("/", "/alerts/{alert_id}", "/accounts/{account_id}"):
        app.router.add_get(path, page)
    app.router.add_get("/api/queue", api_queue)
    app.router.add_get("/api/alerts/{alert_id}", api_alert)
    app.router.add_get("/api/accounts/{account_id}", api_account)
    app.router.add_get("/api/updates", api_updates)
    app.router.add_post("/api/alerts/{alert_id}/disposition", api_disposition)
    app.router.add_post("/api/alerts/{alert_id}/allowlist", api_allowlist)
    return app


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate, check CSRF on actions, and put the security headers on every answer."""
    try:
        response = await _checked(request, handler)
    except web.HTTPException as exc:  # redirects and refusals: raised, as aiohttp wants them
        exc.headers.update(SECURITY_HEADERS)
        raise
    if response.prepared:  # a stream (the updates) sent its own headers before its first byte
        return response
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"
    if CSRF_COOKIE not in request.cookies and isinstance(response, web.Response):
        # Readable by the page's script (it sends it back in a header), by no other site.
        response.set_cookie(CSRF_COOKIE, new_csrf_token(), samesite="Strict", secure=request.secure, path="/")
    return response


async def _checked(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in _OPEN:
        return await handler(request)
    # The headers as aiohttp gives them: names match in any case (HTTP/2 proxies lower-case them).
    user = request.app[AUTH_KEY].user(request.cookies, request.headers)
    if user is None:
        if request.path.startswith("/api/"):
            return _json({"error": "unauthenticated", "detail": "sign in first"}, 401)
        raise web.HTTPSeeOther("/login")
    request[USER] = user
    if request.method == "POST":
        if not csrf_ok(request.cookies, request.headers):
            return _json({"error": "csrf", "detail": "missing or wrong CSRF token: reload the page"}, 403)
        origin = request.headers.get("Origin")
        # Host only, not scheme: behind a proxy that ends TLS the console itself sees http.
        hosts = {request.host, request.headers.get("X-Forwarded-Host")}
        if origin is not None and urlsplit(origin).netloc not in hosts:
            return _json({"error": "csrf", "detail": "the request comes from another site"}, 403)
    return await handler(request)


async def health(request: web.Request) -> web.Response:
    """Liveness and readiness: ready once the history present at start is read."""
    ready = request.app[FEED_KEY].caught_up.is_set()
    return _json({"ready": ready, "alerts": len(request.app[QUEUE_KEY])}, 200 if ready else 503)


async def login_page(request: web.Request) -> web.StreamResponse:
    """The sign-in form (tokens mode); with a proxy, straight to the queue."""
    if request.app[AUTH_KEY].mode == "proxy":
        raise web.HTTPSeeOther("/")
    return _file("login.html")


async def login(request: web.Request) -> web.StreamResponse:
    """Exchange a token for a session cookie."""
    auth = request.app[AUTH_KEY]
    if auth.mode == "proxy":
        raise web.HTTPSeeOther("/")
    form = await request.post()
    token = form.get("token")
    session_id = auth.sign_in(token) if isinstance(token, str) else None
    if session_id is None:
        log.info("console: a sign-in with an unknown token was refused")
        raise web.HTTPSeeOther("/login?failed=1")
    signed_in = web.HTTPSeeOther("/")
    signed_in.set_cookie(
        SESSION_COOKIE, session_id, httponly=True, samesite="Strict", secure=request.secure, max_age=SESSION_SECONDS
    )
    raise signed_in


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session."""
    request.app[AUTH_KEY].sign_out(request.cookies.get(SESSION_COOKIE))
    signed_out = web.HTTPSeeOther("/login")
    signed_out.del_cookie(SESSION_COOKIE)
    raise signed_out


async def static(request: web.Request) -> web.StreamResponse:
    """The page's own script and style sheets (and nothing else)."""
    name = request.match_info["name"]
    if name not in {"console.js", "console.css", "login.css"}:
        raise web.HTTPNotFound()
    return _file(name)


async def page(request: web.Request) -> web.StreamResponse:
    """The one page; its script shows the queue, an alert or an account from the URL."""
    return _file("console.html")


async def api_queue(request: web.Request) -> web.Response:
    """The queue: filters from the query, one page of rows, total and counts per facet value."""
    query = request.query
    try:
        wanted = QueueFilter.from_query(query)
        offset, limit = int(query.get("offset", "0")), int(query.get("limit", "200"))
    except (TriageError, ValueError) as exc:
        return _json({"error": "invalid_query", "detail": str(exc)}, 400)
    order = "time" if query.get("order") == "time" else "severity"
    queue = request.app[QUEUE_KEY]
    result = queue.select(wanted, order=order, offset=max(0, offset), limit=min(max(1, limit), 1000))
    return _json(
        {
            "rows": result.rows,
            "total": result.total,
            "counts": result.counts,
            "facets": facet_values(),
            "alerts": len(queue),
            "unreadable": queue.unreadable,
            "unreadable_dispositions": request.app[FEED_KEY].unreadable_dispositions,
            "user": request[USER],
        }
    )


async def api_alert(request: web.Request) -> web.Response:
    """One alert whole, its disposition history, and the addresses an allowlist entry may name."""
    item = request.app[QUEUE_KEY].get(request.match_info["alert_id"])
    if item is None:
        return _json({"error": "not_found", "detail": "no such alert in this console's history"}, 404)
    rules = {r.spec.id: r.spec for r in request.app[ALLOW_KEY].ruleset.rules}
    spec = rules.get(item.alert["rule_id"])
    return _json(
        {
            **item.detail(),
            "addresses": evidence_addresses(item.alert),
            "overridable": spec.overridable if spec is not None else None,
            "user": request[USER],
        }
    )


async def api_account(request: web.Request) -> web.Response:
    """Every alert of one account with its status and latest disposition, newest first."""
    items = request.app[QUEUE_KEY].of_account(request.match_info["account_id"])
    rows = [{**item.row(), "decided": item.history[-1].as_json_dict() if item.history else None} for item in items]
    return _json({"rows": rows, "user": request[USER]})


async def api_updates(request: web.Request) -> web.StreamResponse:
    """Server-sent events: each new alert and disposition, as it is read from the topics."""
    hub = request.app[HUB_KEY]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    response.headers.update(SECURITY_HEADERS)
    await response.prepare(request)
    updates = hub.open()
    try:
        await response.write(b": connected\n\n")
        while True:
            try:
                update = await asyncio.wait_for(updates.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if update is None:  # fell behind: the page reconnects and reloads
                break
            await response.write(b"data: " + orjson.dumps(update) + b"\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.close(updates)
    return response


async def api_disposition(request: web.Request) -> web.Response:
    """Set an alert's disposition (status and note); answers once the topic holds it."""
    item, body = await _item_and_body(request)
    try:
        disposition = disposition_from_request(item, body, request[USER], datetime.now(UTC))
    except ActionRefusedError as exc:
        return _json({"error": "refused", "detail": exc.message}, exc.status)
    try:
        await request.app[FEED_KEY].decide(disposition)
    except (KafkaError, TimeoutError) as exc:
        log.warning("console: a disposition of alert %s was not confirmed: %r", item.alert_id, exc)
        detail = "the broker did not confirm it in time: reload the alert to see whether it was saved"
        return _json({"error": "unavailable", "detail": detail}, 503)
    log.info("console: %s set alert %s to %s", request[USER], item.alert_id, disposition.status)
    return _json({"status": disposition.status, "history": item.detail()["history"]})


async def api_allowlist(request: web.Request) -> web.Response:
    """Make an allowlist entry from an alert (refused for rules that are not overridable)."""
    item, body = await _item_and_body(request)
    action = request.app[ALLOW_KEY]
    try:
        change = action.change_for(item, body, request[USER], datetime.now(UTC))
        await action.publish(change)
    except ActionRefusedError as exc:
        return _json({"error": "refused", "detail": exc.message}, exc.status)
    except KafkaError as exc:
        log.warning("console: an allowlist entry from alert %s was not written: %r", item.alert_id, exc)
        return _json({"error": "unavailable", "detail": "the allowlist topic could not be written; try again"}, 503)
    log.info("console: %s added allowlist entry %s from alert %s", request[USER], change.entry_id, item.alert_id)
    return _json(describe_change(change))


async def _item_and_body(request: web.Request) -> tuple[Any, dict[str, Any]]:
    item = request.app[QUEUE_KEY].get(request.match_info["alert_id"])
    if item is None:
        raise web.HTTPNotFound(text='{"error":"not_found"}', content_type="application/json")
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text='{"error":"send JSON"}', content_type="application/json")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise web.HTTPBadRequest(text='{"error":"invalid_json"}', content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error":"expected a JSON object"}', content_type="application/json")
    return item, body


def _file(name: str) -> web.Response:
    suffix = name[name.rindex(".") :]
    return web.Response(body=(STATIC / name).read_bytes(), content_type=_TYPES[suffix], charset="utf-8")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def tls_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    """A server TLS context if a certificate is configured."""
    if certfile is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context
