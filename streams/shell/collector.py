"""The worker's full garbage collections, on a fixed interval (see :mod:`streams.shell.memory`)."""

from __future__ import annotations

import logging
from typing import Any

import mode

from streams.shell import metrics
from streams.shell.memory import collect_fully

log = logging.getLogger(__name__)


class FullCollections(mode.Service):
    """Runs a full collection every ``interval`` seconds; CPython's automatic ones are off."""

    def __init__(self, interval: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.interval = interval

    @mode.Service.task
    async def _collect(self) -> None:
        while not self.should_stop:
            await self.sleep(self.interval)
            if self.should_stop:
                break
            freed, seconds = collect_fully()
            metrics.FULL_COLLECTION_SECONDS.observe(seconds)
            log.info("full garbage collection: %d objects freed in %.0f ms", freed, seconds * 1000)
