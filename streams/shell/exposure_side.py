"""The worker's exposure side: chain transfers and exposure checks, with their state in a Faust table.

Exposure is state by address, not by account (see :mod:`streams.core.exposure_screening`).
It lives with the ``chain-transfers`` topic, whose records are keyed by chain: all the
transfers of a chain are on one partition, in the order the chain made them, so one
worker follows a chain's funds hop after hop in order, and more chains spread over more
partitions and workers. A deposit (keyed by account) that an exposure rule looks at is
passed to that partition through a repartition topic, ``<app id>-exposure-checks``, keyed
by the deposit's chain: Kafka Streams' way to join a stream with a table keyed otherwise,
with nothing of our own in between. Both topics have the input topics' partition count,
so the group gives a partition of each, and of the ``exposure-state`` table, to one worker.

The table holds one entry per rule and address (:mod:`streams.core.exposure_format`) and is
written like the account state: by a :class:`~streams.shell.commit.CommitPipeline` of its
own, alerts first, then the changelog, then the table, then the input offsets. A
rebalance drops the decoded graphs; the first batch after it decodes them again from the
table, which Faust has by then rebuilt from the changelog for the partitions this worker
owns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, MutableMapping, Sequence

from streams.core.events import Event, stand_alone_json, wall_clock
from streams.core.exposure_format import decode_entry, encode_entry, entry_key, entry_partition
from streams.core.exposure_screening import ExposureScreening
from streams.core.rules.engine import Ruleset
from streams.core.rules.exposure_rule import ExposureStore
from streams.core.screening import Outcome, Record
from streams.shell import metrics
from streams.shell.commit import Batch, Change, CommitPipeline
from streams.shell.faust_adapter import BatchDeliveryApp, table_bytes
from streams.shell.settings import Settings
from streams.shell.sink import AlertSink
from streams.shell.state_table import put_changes

log = logging.getLogger(__name__)


class ExposureTableStore:
    """The exposure graphs decoded from a table of bytes, and the changes a batch makes to them."""

    def __init__(self, table: MutableMapping[bytes, bytes], screening: ExposureScreening) -> None:
        self.table = table
        self.screening = screening
        #: Entries the decoded graphs hold (or a batch not yet durable wrote): (rule id, address) -> partition.
        self._by_entry: dict[tuple[str, str], int] = {}
        #: The decoded graphs are not (or no longer) the table's: decode before the next batch.
        self.stale = True

    def rebuild(self, owned: Collection[int]) -> None:
        """Decode the entries of the ``owned`` partitions into a fresh store (after a rebalance or a reload)."""
        screening = self.screening
        store = ExposureStore(remember_deposits=True)
        rules = screening.ruleset.exposure_rules
        configs = {rule.spec.id: rule.config for rule in rules}
        states = {rule.spec.id: store.of(rule.spec.id) for rule in rules}
        self._by_entry.clear()
        unreadable = 0
        for key, raw in self.table.items():
            try:
                partition = entry_partition(raw)
                if partition not in owned:
                    continue
                decode_entry(raw, configs, states)
            except (ValueError, KeyError, TypeError) as exc:
                unreadable += 1
                log.error("exposure state entry %r cannot be read, left as it is: %s", key[:80], exc)
                continue
            rule_id, _, address = key.partition(b"\x00")
            self._by_entry[(rule_id.decode(), address.decode())] = partition
        screening.exposure = store
        screening.touched.clear()
        self.stale = False
        exposed = sum(len(state.graph.exposed) for state in states.values())
        log.info("exposure state of partitions %s: %d exposed addresses", sorted(owned), exposed)
        if unreadable:
            metrics.EXPOSURE_UNREADABLE.inc(unreadable)

    def encode(self) -> list[Change]:
        """The changelog records of every entry the screened records touched (a tombstone for an emptied one)."""
        screening = self.screening
        store = screening.exposure
        changes: list[Change] = []
        for (rule_id, address), partition in screening.touched.items():
            key = entry_key(rule_id, address)
            value = encode_entry(store.of(rule_id), rule_id, address, partition)
            if value is None:
                held = self._by_entry.pop((rule_id, address), None)
                if held is None:
                    continue  # the usual transfer: nothing held of its receiver before or now
                partition = held  # the tombstone goes where the entry is
            else:
                self._by_entry[(rule_id, address)] = partition
            changes.append((partition, key, value))
        screening.touched.clear()
        return changes

    def expire(self) -> list[Change]:
        """Tombstones and trimmed entries for exposures and waiting deposits past their time."""
        if self.screening.expire(self._by_entry):
            return self.encode()
        return []

    def apply(self, changes: Sequence[Change], in_flight: Sequence[Change] = ()) -> None:
        """Put durable changes in the table (the decoded graphs already hold them)."""
        put_changes(self.table, changes)

    def forget(self) -> None:
        """A rebalance: the graphs hold changes that may never become durable; decode again."""
        self.stale = True


class _ExposureOutputs:
    """The sink's outputs, with this side's changelog topic."""

    def __init__(self, sink: AlertSink, changelog_topic: str) -> None:
        self._sink = sink
        self._topic = changelog_topic

    async def emit_many(self, outcomes: Sequence[Outcome]) -> None:
        await self._sink.emit_many(outcomes)

    async def write_changelog(self, changes: Sequence[Change]) -> None:
        await self._sink.write_many(self._topic, changes)


class ExposureSide:
    """Screens the worker's partitions of chain transfers and exposure checks (see the module doc)."""

    def __init__(
        self,
        app: BatchDeliveryApp,
        settings: Settings,
        sink: AlertSink,
        ruleset: Ruleset,
        *,
        changelog_configs: dict[str, str],
        on_complete: Callable[[Batch], None],
    ) -> None:
        self.app = app
        self.settings = settings
        self.transfers_topic = settings.transfers_topic
        self.checks_topic = settings.exposure_checks_topic
        self.topics = frozenset({self.transfers_topic, self.checks_topic})
        self.table = app.Table(
            "exposure-state",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.topic_partitions,
            help="Exposure rules' state by rule and address (JSON, see streams.core.exposure_format).",
            extra_topic_configs=changelog_configs,
        )
        self.screening = ExposureScreening(
            ruleset,
            {self.transfers_topic: "transfer"},  # checks carry deposits and withdrawals, each with its type
            clock=wall_clock,
            observer=metrics.PrometheusObserver(),
        )
        self.store = ExposureTableStore(table_bytes(self.table), self.screening)
        outputs = _ExposureOutputs(sink, self.table.changelog_topic.get_topic_name())
        self.pipeline = CommitPipeline(outputs, self.store, app, on_complete=on_complete)
        self._next_sweep = 0.0

    def install(self, ruleset: Ruleset) -> None:
        """A new ruleset: its exposure rules' graphs are decoded again from the table (between two batches)."""
        self.screening.ruleset = ruleset
        self.store.stale = True

    async def screen_batch(self, records: list[Record]) -> None:
        """Screen the exposure side's records of one poll batch and hand them to its pipeline."""
        if self.store.stale:
            self.store.rebuild(self.owned())
        outcomes = [self.screening.screen_one(record) for record in records]
        changes = self.store.encode()
        if self._sweep_due():
            changes += self.store.expire()
        await self.pipeline.submit(outcomes, changes)

    def pass_on(self, outcomes: Sequence[Outcome], ruleset: Ruleset) -> None:
        """Give each screened deposit or withdrawal an exposure rule looks at its check (see :func:`pass_on_checks`)."""
        pass_on_checks(outcomes, ruleset, self.checks_topic)

    def owned(self) -> set[int]:
        """The partitions of the transfers topic this worker owns now."""
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.transfers_topic}

    def _sweep_due(self) -> bool:
        interval = self.settings.state_sweep_interval
        now = asyncio.get_running_loop().time()
        if not interval or now < self._next_sweep:
            return False
        self._next_sweep = now + interval
        return True


def pass_on_checks(outcomes: Sequence[Outcome], ruleset: Ruleset, topic: str) -> None:
    """Add to each outcome whose event an exposure rule looks at its check for ``topic``, keyed by chain.

    A resend (a duplicate) or a dead letter is not passed on; a record screened again
    after a crash is, and the exposure side remembers a deposit once. The check is the
    event's :func:`~streams.core.events.stand_alone_json`: on its own topic a deposit need
    not say it is one, and the checks topic carries both types.
    """
    for outcome in outcomes:
        event = outcome.event
        if (
            isinstance(event, Event)
            and not outcome.duplicate
            and outcome.dead_letter is None
            and ruleset.exposure_checked(event.type)
        ):
            outcome.forwards.append((topic, event.chain.encode(), stand_alone_json(event)))
