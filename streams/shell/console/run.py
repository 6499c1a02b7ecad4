"""Start the console: read the topics, serve the page, stop cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from streams.core.rules.loader import load_ruleset
from streams.core.triage import AlertQueue
from streams.shell.console.actions import AllowlistAction
from streams.shell.console.auth import ConsoleAuth
from streams.shell.console.feed import ConsoleFeed, PageHub
from streams.shell.console.server import make_app, tls_context
from streams.shell.settings import Settings

log = logging.getLogger(__name__)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run the console until ``stop`` is set (or the process is told to stop)."""
    try:
        auth = ConsoleAuth(settings)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"sentinel console: {exc}") from None
    ruleset = load_ruleset(settings.rule_paths)
    queue, hub = AlertQueue(), PageHub()
    feed = ConsoleFeed(settings, queue, hub)
    app = make_app(auth, queue, feed, hub, AllowlistAction(settings, ruleset))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await feed.start()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = tls_context(
        str(settings.console_tls_certfile) if settings.console_tls_certfile else None,
        str(settings.console_tls_keyfile) if settings.console_tls_keyfile else None,
    )
    site = web.TCPSite(runner, settings.console_host, settings.console_port, ssl_context=context)
    await site.start()
    scheme = "https" if context else "http"
    print(f"console: {scheme}://{settings.console_host}:{settings.console_port}/", flush=True)
    try:
        await feed.caught_up.wait()
        print(f"console: ready, {len(queue)} alerts read ({queue.unreadable} unreadable)", flush=True)
        await stop.wait()
    finally:
        hub.close_all()  # open update streams would hold the shutdown for a minute
        await runner.cleanup()
        await feed.stop()
