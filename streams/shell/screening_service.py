"""The screening API inside a worker: where its state, routing and audit come from, and its server.

:class:`WorkerBackend` answers :class:`~streams.shell.screening_api.ScreeningBackend` from a
running :class:`~streams.shell.app.SentinelApp`: the rules and allowlist in force, the
account's state from the state table (read, copied, never written), the owner of an
account or chain from Faust's table router, the audit record through the worker's
producer. :class:`ScreeningService` serves the API for as long as the worker runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import mode
from aiohttp import web

from streams.core.allowlist import Allowlist
from streams.core.decisions import state_copy
from streams.core.events import wall_clock
from streams.core.rules.engine import Ruleset
from streams.core.rules.exposure_rule import ExposureStore
from streams.core.rules.state import AccountState
from streams.shell.screening_api import UnavailableError, build_screening_app, forward_with, own_url, server_ssl
from streams.shell.screening_auth import Callers
from streams.shell.settings import Settings
from streams.shell.topics import ensure_topic, screening_topic_spec

if TYPE_CHECKING:
    from streams.shell.app import SentinelApp

#: The worker's table names (see streams.shell.app and streams.shell.exposure_side).
STATE_TABLE, EXPOSURE_TABLE = "rule-state", "exposure-state"
MAX_OWNERS_CACHED = 100_000


class WorkerBackend:
    """The screening API's view of one worker (see the module doc)."""

    def __init__(self, app: SentinelApp, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self.url = own_url(settings)
        topic = settings.screening_decisions_topic
        self._audit = AuditBatcher(lambda records: app.sink.send_keyed(topic, records))
        #: Owners found by the router (a murmur2 hash and a lookup each), for the current assignment.
        self._owners: dict[tuple[str, bytes], str] = {}
        self._generation = -1

    @property
    def ruleset(self) -> Ruleset:
        """The rules the worker screens the stream with now."""
        return self.app.screening.ruleset

    @property
    def allowlist(self) -> Allowlist:
        """The allowlist the worker applies now."""
        return self.app.screening.allowlist

    def _owner(self, table: str, key: bytes) -> str | None:
        app = self.app
        if app.rebalancing or not app.recovery_completed():
            raise UnavailableError("the worker group is rebalancing or recovering its state")
        if app.consumer_generation_id != self._generation:  # a new assignment: owners may have moved
            self._owners.clear()
            self._generation = app.consumer_generation_id
        owner = self._owners.get((table, key))
        if owner is None:
            try:
                owner = str(app.router.key_store(table, key)).rstrip("/")
            except KeyError:
                raise UnavailableError("no worker holds this partition now") from None
            if len(self._owners) >= MAX_OWNERS_CACHED:
                self._owners.clear()
            self._owners[(table, key)] = owner
        return None if owner == self.url else owner

    def owner_of_account(self, account_id: str) -> str | None:
        """The URL of the worker that holds ``account_id``'s state; None for this one."""
        return self._owner(STATE_TABLE, account_id.encode())

    def account_state(self, account_id: str) -> AccountState:
        """A copy of the account's state as the stream has left it (the batch in flight included)."""
        found = self.app.state_store.peek(account_id)
        return AccountState() if found is None else state_copy(found)

    def owner_of_chain(self, chain: str) -> str | None:
        """The URL of the worker that follows ``chain``'s transfers; None for this one (or if none is followed)."""
        if self.app.exposure_side is None:
            return None
        return self._owner(EXPOSURE_TABLE, chain.encode())

    def exposure(self) -> ExposureStore | None:
        """This worker's exposure state."""
        side = self.app.exposure_side
        return None if side is None else side.screening.exposure

    async def audit(self, key: bytes, value: bytes) -> None:
        """Write one decision to the audit topic; raises if it is not acknowledged in time."""
        await asyncio.wait_for(self._audit.write(key, value), self.settings.screening_route_timeout)

    async def forward(self, url: str, method: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """Pass a request to another worker with Faust's HTTP client session."""
        return await forward_with(
            self.app.http_client, self.settings.screening_route_timeout, url, method, body, headers
        )


class AuditBatcher:
    """Audit records written in batches, without waiting to fill one.

    The first record goes out at once; records that arrive while a batch is in flight go
    out together as soon as it is acknowledged. At a low rate that is one record per
    produce request, as before; at a thousand requests a second it is one request for many,
    which is what keeps the producer from costing more than the screens (measured: a
    produce request per decision cost half a millisecond of CPU each).
    """

    def __init__(self, send_many: Callable[[list[tuple[bytes, bytes]]], Awaitable[None]]) -> None:
        self._send_many = send_many
        self._pending: list[tuple[bytes, bytes, asyncio.Future[None]]] = []
        self._flushing = False

    async def write(self, key: bytes, value: bytes) -> None:
        """Return once this record is acknowledged (raise what the send raised)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((key, value, done))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        await done

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._send_many([(key, value) for key, value, _ in batch])
                except Exception as exc:  # every waiter of the batch hears of it
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for _, _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._flushing = False


class ScreeningService(mode.Service):
    """Serves the screening API for as long as the worker runs."""

    def __init__(self, app: SentinelApp, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backend = WorkerBackend(app, settings)
        self.settings = settings
        self.callers = Callers.from_settings(settings)  # a bad tokens file stops the worker at start
        self._runner: web.ServerRunner | None = None
        self.serving = False

    async def on_start(self) -> None:
        """Bind the API's port (TLS if configured)."""
        s = self.settings
        await ensure_topic(s, screening_topic_spec(s))  # the audit topic: no decision without it
        handler = build_screening_app(self.backend, self.callers, s, wall_clock, self_url=self.backend.url)
        self._runner = web.ServerRunner(web.Server(handler, access_log=None))  # no access log: paths hold addresses
        await self._runner.setup()
        await web.TCPSite(self._runner, s.screening_host, s.screening_port, ssl_context=server_ssl(s)).start()
        self.serving = True
        self.log.info("screening API on %s (fail mode: %s)", self.backend.url, s.screening_fail_mode)

    async def on_stop(self) -> None:
        """Stop answering."""
        self.serving = False
        if self._runner is not None:
            await self._runner.cleanup()
