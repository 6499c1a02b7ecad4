"""The worker's hot-reload triggers as a service: the control topic, SIGHUP and a poll of the rule files.

What a reload does (load whole or keep the last good ruleset) is :mod:`streams.shell.reload`;
this service only watches for the triggers while the worker runs, and takes the bundle
already published on the control topic before the first record is screened. Which bundles
it trusts is :func:`control_trust` (signatures: :mod:`streams.shell.signing`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.shell import clients
from streams.shell.reload import BUNDLE_KEY, RulesReloader
from streams.shell.settings import Settings
from streams.shell.signing import ControlTrust, load_public_keys

log = logging.getLogger(__name__)


def control_trust(settings: Settings) -> ControlTrust:
    """The keys (and the unsigned-bundle setting) a worker checks control-topic bundles with.

    Raises :class:`streams.shell.signing.KeyFileError` for a missing or unreadable key file.
    """
    return ControlTrust(load_public_keys(settings.control_key_paths), settings.control_accept_unsigned)


class ControlService(mode.Service):
    """Hot reload: the control topic, SIGHUP and a poll of the rule files (see streams.shell.reload)."""

    def __init__(self, settings: Settings, reloader: RulesReloader, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.reloader = reloader
        self._background: list[asyncio.Task[None]] = []
        #: Made at start; a worker that fails to start stops services that never started.
        self._control: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.reloader.reload_files)
        if settings.control_topic:
            self._say_what_is_trusted()
            # Take the published bundle, if any, before the first record is screened.
            self._control = control = clients.consumer(settings)
            await control.start()
            await self._catch_up_control(control)
            self._background.append(asyncio.create_task(self._follow_control(control)))
        if settings.reload_interval > 0:
            self._background.append(asyncio.create_task(self._poll_files(settings.reload_interval)))

    async def on_stop(self) -> None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._control is not None:
            await self._control.stop()

    def _say_what_is_trusted(self) -> None:
        topic = self.settings.control_topic
        if self.settings.control_accept_unsigned:
            log.warning(
                "ACCEPTING UNSIGNED rule bundles from %s (SENTINEL_CONTROL_ACCEPT_UNSIGNED): anyone who can write"
                " that topic can replace this worker's rules. For a local demo only.",
                topic,
            )
        elif not self.settings.control_key_paths:
            log.warning(
                "no public keys configured (SENTINEL_CONTROL_PUBLIC_KEYS): every bundle on %s will be rejected",
                topic,
            )

    async def _poll_files(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reloader.check_files()

    async def _assign_control(self, control: AIOKafkaConsumer) -> int | None:
        """Read the control topic from its beginning: its end offset now (None: no such topic yet)."""
        topic = self.settings.control_topic
        if topic not in await control.topics():
            return None  # not created yet: `sentinel topics create` or `sentinel rules publish` make it
        partition = TopicPartition(topic, 0)
        end = await clients.end_offset_before_assigning(control, partition)
        control.assign([partition])
        await control.seek_to_beginning(partition)
        return end

    async def _catch_up_control(self, control: AIOKafkaConsumer) -> None:
        end = await self._assign_control(control)
        if end is None:
            return
        partition = TopicPartition(self.settings.control_topic, 0)
        bundles: list[bytes] = []
        while await control.position(partition) < end:
            for records in (await control.getmany(timeout_ms=1000)).values():
                bundles.extend(r.value for r in records if r.key == BUNDLE_KEY and r.value)
        # Every bundle still on the topic, not just the last: a replayed old one must not win.
        self.reloader.apply_latest(bundles)

    async def _follow_control(self, control: AIOKafkaConsumer) -> None:
        while not control.assignment() and await self._assign_control(control) is None:
            await asyncio.sleep(5)
        while True:
            for records in (await control.getmany(timeout_ms=1000)).values():
                self.reloader.apply_latest([r.value for r in records if r.key == BUNDLE_KEY and r.value])
