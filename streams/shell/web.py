"""The worker's HTTP endpoints for operators: ``/metrics``, ``/healthz`` and ``/readyz``.

- ``/healthz`` (liveness): the event loop answers. A worker that stops answering should
  be restarted.
- ``/readyz`` (readiness): rules are loaded, the worker has partitions assigned, table
  recovery is complete and no rebalance is in progress. Until then it screens nothing,
  so it should not count as serving (and a rolling update should wait for it).
- ``/metrics``: Prometheus text format.

Served by aiohttp (already a dependency of faust-streaming), bound to
``SENTINEL_METRICS_HOST:SENTINEL_METRICS_PORT``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mode
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Check = Callable[[], dict[str, bool]]


def build_web_app(readiness: Check) -> web.Application:
    """The aiohttp application; ``readiness`` names each condition and whether it holds."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        conditions = readiness()
        ready = all(conditions.values())
        return web.json_response({"ready": ready, "conditions": conditions}, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class WebService(mode.Service):
    """Runs the endpoints for as long as the worker runs."""

    def __init__(self, host: str, port: int, readiness: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host, self.port, self.readiness = host, port, readiness
        self._runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        self._runner = web.AppRunner(build_web_app(self.readiness), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.log.info("metrics and health on http://%s:%d/{metrics,healthz,readyz}", self.host, self.port)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
