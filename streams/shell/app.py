"""The worker: a Faust app that screens deposits and withdrawals and emits freeze alerts.

Quick start (see README.md)::

    make run                      # local broker, worker, demo feed, alerts on screen
    sentinel worker               # just the worker, against $KAFKA_BOOTSTRAP_SERVERS

How records flow: Faust's consumer hands each poll batch of the input topics (partitioned
by account) to :meth:`SentinelApp.screen_batch` (see :mod:`streams.shell.faust_adapter`: Faust's
per-record stream path is the bottleneck, not the engine).
:class:`~streams.core.screening.Screening` decodes and evaluates every record of the batch
(the same path ``backtest`` takes), and :class:`~streams.shell.commit.CommitPipeline` carries
the batch through the at-least-once protocol: :class:`~streams.shell.sink.AlertSink` writes the
alerts and dead letters and waits for the broker's acknowledgement, then the touched
state documents go to the changelog-backed table, and only then are the records
acknowledged, so Faust commits an input offset only once its output and its state are safe.

The batch is screened sequentially by one coroutine, so no record overtakes another of
its account and no offset is committed past a record still in flight (faust-streaming
#606). Every record yields an outcome inside our own try/except, so a record whose
processing failed is never skipped silently on restart (faust-streaming #315): it is in
the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import mode
from aiokafka.structs import ConsumerRecord

from streams.core.allowlist import Allowlist
from streams.core.compact_lists import changed_counts
from streams.core.events import wall_clock
from streams.core.rules.engine import Ruleset
from streams.core.rules.exposure_rule import ExposureStore
from streams.core.rules.loader import load_ruleset
from streams.core.screening import Screening
from streams.shell import metrics
from streams.shell.allowlist_feed import AllowlistFeed
from streams.shell.collector import FullCollections
from streams.shell.commit import Batch, Change, CommitPipeline
from streams.shell.control import ControlService, control_trust
from streams.shell.exposure_side import ExposureSide
from streams.shell.faust_adapter import BatchDeliveryApp, check_faust_internals, table_bytes
from streams.shell.memory import pace_worker_collections, settle_long_lived
from streams.shell.records import record_of
from streams.shell.reload import RulesReloader
from streams.shell.screening_api import own_url
from streams.shell.screening_service import ScreeningService
from streams.shell.security import faust_credentials
from streams.shell.settings import Settings
from streams.shell.sink import AlertSink
from streams.shell.state_table import TableStore
from streams.shell.topics import CHANGELOG_TOPIC_CONFIGS, ensure_topic, exposure_topic_specs
from streams.shell.web import WebService

log = logging.getLogger(__name__)

#: Exit status of a worker that stopped making progress (see SentinelApp._check_progress).
STALLED_EXIT_CODE = 75
#: Accounts the state sweep looks at per batch, so that a sweep of a large table never
#: holds the event loop for long. Measured here with 1,000,000 accounts: 17 ms a slice (60 ms
#: the first, which copies the key list), against 0.6 s for the whole table at once.
SWEEP_SLICE = 20_000


class _SinkService(mode.Service):
    """Starts the alert producer before the consumer and stops it after the last batch."""

    def __init__(self, app: SentinelApp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sentinel = app

    async def on_start(self) -> None:
        for spec in exposure_topic_specs(self.sentinel.settings):
            await ensure_topic(self.sentinel.settings, spec)  # before Faust subscribes to them
        await self.sentinel.sink.start()

    async def on_stop(self) -> None:
        await self.sentinel.finish_in_flight()
        await self.sentinel.sink.stop()


class SentinelApp(BatchDeliveryApp):
    """The Faust app, holding the running ruleset, the alert producer and the commit pipeline."""

    def __init__(self, settings: Settings, ruleset: Ruleset) -> None:
        check_faust_internals()
        super().__init__(
            settings.app_id,
            broker=[f"kafka://{server}" for server in settings.bootstrap_list],
            broker_credentials=faust_credentials(settings),
            # Values are decoded by our own code, so bad input becomes a dead letter
            # instead of an exception inside Faust's deserialiser; the state table's
            # keys and values are bytes we encode ourselves too.
            key_serializer="raw",
            value_serializer="raw",
            topic_partitions=settings.topic_partitions,
            consumer_auto_offset_reset="earliest",
            # Input arrives in poll batches (see streams.shell.faust_adapter); bigger ones amortise more.
            broker_max_poll_records=settings.max_poll_records,
            producer_acks=-1,
            web_enabled=False,
            datadir=settings.data_dir,
            store="memory://",
            topic_replication_factor=settings.replication_factor,
            # A killed worker's partitions move to the others after this long, not Faust's 60 s.
            broker_session_timeout=settings.session_timeout,
            broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
            # A worker killed during a rebalance holds the group up for this long (Faust: 60 s).
            broker_rebalance_timeout=max(20.0, 2 * settings.session_timeout),
            # What Faust's table router gives the other workers: the screening API's address.
            canonical_url=own_url(settings) if settings.screening_port else None,
        )
        self.settings = settings
        # Windows, sequences and suppression periods of stateful rules. In memory, rebuilt
        # from its compacted changelog topic when a worker starts or takes a partition over.
        self.state_table = self.Table(
            "rule-state",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.topic_partitions,
            help="Per-account state of stateful rules (versioned header + JSON, see streams.shell.state_table).",
            extra_topic_configs=CHANGELOG_TOPIC_CONFIGS,
        )
        # The bytes inside the table's in-memory store: Faust fills them on recovery; the
        # commit pipeline writes them, and the changelog, itself (see streams.shell.commit).
        self.state_store = TableStore(table_bytes(self.state_table), max_cached=settings.state_cache_accounts)
        #: ``state_store.decoded`` when the metrics were last updated.
        self._decoded_reported = 0
        self.screening = Screening(
            ruleset,
            settings.topic_event_types,
            clock=wall_clock,
            state=self.state_store,
            observer=metrics.PrometheusObserver(),
            # Exposure rules are screened where the exposure state is (the exposure side):
            # here they find nothing, and no deposit is remembered.
            exposure=ExposureStore(remember_deposits=False),
        )
        self.sink = AlertSink(settings, changelog_topic=self.state_table.changelog_topic.get_topic_name())
        self.commit_pipeline = CommitPipeline(self.sink, self.state_store, self, on_complete=self._count_batch)
        self.exposure_side = (
            ExposureSide(
                self,
                settings,
                self.sink,
                ruleset,
                changelog_configs=CHANGELOG_TOPIC_CONFIGS,
                on_complete=self._count_batch,
            )
            if settings.transfers_topic
            else None
        )
        self.batch_receiver = self
        self._sink_service = _SinkService(self)
        trust = control_trust(settings)
        self.reloader: RulesReloader = RulesReloader(
            settings.rule_paths,
            self._install_ruleset,
            on_result=lambda result: metrics.RULES_RELOADS.labels(result.outcome, result.source).inc(),
            bundle_dir=Path(settings.data_dir) / "bundles",
            trust=trust,
            mark_file=Path(settings.data_dir) / "control-mark.json",
        )
        self._reload_service = ControlService(settings, self.reloader)
        self._allowlist_feed = (
            AllowlistFeed(settings, trust, self._install_allowlist) if settings.allowlist_topic else None
        )
        self._web_service = (
            WebService(settings.metrics_host, settings.metrics_port, self.readiness) if settings.metrics_port else None
        )
        self._screening_api = ScreeningService(self, settings) if settings.screening_port else None
        interval = settings.full_collection_interval
        self._collections = [FullCollections(interval)] if interval else []
        self.timer(5.0, name="sentinel-gauges")(self._update_gauges)
        self._screened = self._last_screened = 0
        #: The latest event time screened per input partition (epoch ms): the clock that
        #: decides when an idle account's state has expired.
        self._event_clocks: dict[int, int] = {}
        self._next_sweep = 0.0
        self._progress_at: float | None = None
        self.deposits = self.topic(settings.deposits_topic, key_type=bytes, value_type=bytes)
        self.withdrawals = self.topic(settings.withdrawals_topic, key_type=bytes, value_type=bytes)
        # Subscribed, but read by screen_batch rather than by agents (streams.shell.faust_adapter).
        self.batch_topics = frozenset({settings.deposits_topic, settings.withdrawals_topic})
        self.topics.add(self.deposits)
        self.topics.add(self.withdrawals)
        if self.exposure_side is not None:
            self.batch_topics |= self.exposure_side.topics
            for name in sorted(self.exposure_side.topics):
                self.topics.add(self.topic(name, key_type=bytes, value_type=bytes))
        metrics.publish_ruleset(ruleset)

    def on_init_dependencies(self) -> Iterable[mode.ServiceT]:
        """Start the web server, the alert producer and the reloader before Faust's consumer."""
        web = [s for s in (self._web_service, self._screening_api) if s is not None]
        allowlist = [self._allowlist_feed] if self._allowlist_feed is not None else []
        own = [*web, self._sink_service, self._reload_service, *allowlist, *self._collections]
        return [*own, *super().on_init_dependencies()]

    def readiness(self) -> dict[str, bool]:
        """What must hold before this worker screens records (``/readyz``)."""
        return {
            "rules_loaded": bool(self.screening.ruleset.rules),
            "partitions_assigned": bool(self.consumer.assignment()),
            "recovery_complete": self.recovery_completed(),
            "not_rebalancing": not self.rebalancing,
            **({"screening_api": self._screening_api.serving} if self._screening_api is not None else {}),
        }

    def on_rebalance_start(self) -> None:
        """Count rebalances; abandon the batches in flight and drop decoded state.

        Faust calls this from its consumer thread (the aiokafka rebalance listener runs
        there), while batches are screened and carried on the event loop's thread. So the
        pipeline is abandoned on the event loop, between two of its steps, never in the
        middle of screening a batch: a batch whose screening a rebalance interrupted would
        otherwise lose the decoded documents it had changed yet be carried to the end.
        Faust's ``rebalancing`` flag is set here at once, which is what the batch consumer
        checks before it hands a poll batch over (see ``streams.shell.faust_adapter``).
        """
        metrics.REBALANCES.inc()
        super().on_rebalance_start()
        self.loop.call_soon_threadsafe(self.commit_pipeline.abandon)
        if self.exposure_side is not None:
            self.loop.call_soon_threadsafe(self.exposure_side.pipeline.abandon)

    async def _update_gauges(self) -> None:
        """Consumer lag per input partition, as this worker sees it, state size, and the decoded-state cache."""
        inputs = set(self.settings.topic_event_types)
        metrics.CONSUMER_LAG.clear()  # partitions moved away must not linger
        total_lag = 0
        for tp in self.consumer.assignment():
            if tp.topic not in inputs:
                continue
            highwater = self.consumer.highwater(tp)
            committed = self.committed_offset(tp)
            if highwater is not None:
                lag = max(0, highwater - (committed or 0))
                total_lag += lag
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
        metrics.STATE_KEYS.set(len(self.state_table))
        decoded = self.state_store.decoded
        metrics.STATE_CACHED.set(self.state_store.cached)
        metrics.STATE_DECODED.inc(decoded - self._decoded_reported)
        self._decoded_reported = decoded
        if self.exposure_side is not None:
            store = self.exposure_side.screening.exposure
            metrics.EXPOSED_ADDRESSES.set(sum(len(state.graph.exposed) for state in store.rules.values()))
        self._check_progress(total_lag)

    def _check_progress(self, lag: int) -> None:
        """Exit if records wait and none was screened for ``stall_timeout`` seconds.

        Seen once in fault injection: after a kill -9 and restart, a worker reported ready
        with its partitions assigned and then fetched nothing. Nothing is lost by exiting
        (offsets are committed only for screened records); the supervisor restarts it.
        A failing alert produce is not a stall: it holds input back on purpose.
        """
        timeout = self.settings.stall_timeout
        screened = self._screened
        now = asyncio.get_running_loop().time()
        if (
            self._progress_at is None
            or lag == 0
            or screened != self._last_screened
            or self.rebalancing
            or self.sink.retrying
        ):
            self._last_screened, self._progress_at = screened, now
            return
        if timeout and now - self._progress_at > timeout:
            log.error("no record screened for %.0fs while %d wait; exiting so the worker is restarted", timeout, lag)
            os._exit(STALLED_EXIT_CODE)  # from a timer, only a hard exit ends the process

    def _install_allowlist(self, allowlist: Allowlist) -> None:
        # On the event loop, between two records, like a ruleset swap.
        self.screening.allowlist = allowlist

    def _install_ruleset(self, ruleset: Ruleset, source: str) -> None:
        # Between two records (this runs on the event loop), so no record sees two rulesets.
        previous = self.screening.ruleset
        self.screening.ruleset = ruleset
        if self.exposure_side is not None:
            self.exposure_side.install(ruleset)
        metrics.publish_ruleset(ruleset)
        for list_id, new in ruleset.lists.items():
            old = previous.lists.get(list_id)
            if old is None or old.digest == new.digest:
                continue
            added, removed = changed_counts(old.entries, new.entries)
            metrics.LIST_CHANGES.labels(list_id, "added").inc(added)
            metrics.LIST_CHANGES.labels(list_id, "removed").inc(removed)
            log.warning(
                "list %s changed (%s): version %s -> %s, %d added, %d removed, %d addresses",
                list_id,
                source,
                old.info.version,
                new.info.version,
                added,
                removed,
                len(new),
            )

    async def screen_batch(self, records: list[ConsumerRecord]) -> None:
        """Screen one poll batch, then hand its outcomes to the commit pipeline.

        Screening the next batch overlaps the outputs of this one (a pipeline one batch
        deep): this returns once the *previous* batch is complete.
        """
        exposure_side = self.exposure_side
        if exposure_side is not None:
            theirs = [record_of(m) for m in records if m.topic in exposure_side.topics]
            if theirs:
                records = [m for m in records if m.topic not in exposure_side.topics]
                await exposure_side.screen_batch(theirs)
            if not records:
                return
        screen_one = self.screening.screen_one
        outcomes = [screen_one(record_of(message)) for message in records]
        if exposure_side is not None:
            exposure_side.pass_on(outcomes, self.screening.ruleset)
        clocks = self._event_clocks
        for outcome in outcomes:
            event = outcome.event
            if event is not None and event.epoch_ms > clocks.get(outcome.record.partition, -1):
                clocks[outcome.record.partition] = event.epoch_ms
        # The state as this batch leaves it, encoded now: the next batch changes the documents.
        changes = self.state_store.encode()
        if self.state_store.sweeping or self._sweep_due():
            changes += self._expired_state(changes)
        await self.commit_pipeline.submit(outcomes, changes)

    def _sweep_due(self) -> bool:
        interval = self.settings.state_sweep_interval
        now = asyncio.get_running_loop().time()
        if not interval or now < self._next_sweep:
            return False
        self._next_sweep = now + interval
        return True

    def _expired_state(self, changes: list[Change]) -> list[Change]:
        """Tombstones for idle accounts on this worker's partitions (they go with ``changes``)."""
        inputs = self.batch_topics
        owned = {tp.partition for tp in self.consumer.assignment() if tp.topic in inputs}
        # Not an account this batch or the one still in flight changed: the table has
        # an older document of it than the changelog will.
        in_flight = self.commit_pipeline.in_flight
        busy = {key for _, key, _ in changes}
        busy.update(key for _, key, _ in (in_flight.changes if in_flight is not None else ()))
        horizon = self.screening.state_horizon_ms
        expired = self.state_store.expired(self._event_clocks, horizon, owned, busy, limit=SWEEP_SLICE)
        if expired:
            metrics.STATE_EXPIRED.inc(len(expired))
            log.info("deleting the rule state of %d idle accounts", len(expired))
        return expired

    async def finish_in_flight(self, timeout: float = 10.0) -> None:
        """Let the batch in flight complete before the producer stops (a graceful stop)."""
        await self.commit_pipeline.drain(timeout)
        if self.exposure_side is not None:
            await self.exposure_side.pipeline.drain(timeout)

    def _count_batch(self, batch: Batch) -> None:
        counts = Counter((outcome.record.topic, outcome.result) for outcome in batch.outcomes)
        for (topic, result), count in counts.items():
            metrics.EVENTS.labels(topic, result).inc(count)
        self._screened += len(batch.outcomes)


def create_app(settings: Settings | None = None) -> SentinelApp:
    """Build the worker app from settings (the environment by default)."""
    settings = settings or Settings()
    ruleset = load_ruleset(settings.rule_paths)
    settle_long_lived()
    if settings.full_collection_interval:
        pace_worker_collections()
    log.info("loaded ruleset %s: %d rules from %s", ruleset.version, len(ruleset.rules), ", ".join(ruleset.files))
    return SentinelApp(settings, ruleset)


def run_worker(settings: Settings | None = None) -> None:
    """Run a worker until SIGINT/SIGTERM."""
    from faust.worker import Worker

    app = create_app(settings)
    Worker(app, loglevel=app.settings.log_level, quiet=True).execute_from_commandline()
