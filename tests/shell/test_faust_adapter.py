"""The one module that touches Faust's private names fails loudly when Faust changes them."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from aiokafka.structs import ConsumerRecord
from faust.tables import TableManager
from faust.transport.consumer import Fetcher
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.shell.faust_adapter import (
    PRIVATE_NAMES,
    BatchConsumer,
    BatchTransport,
    PromptTableManager,
    check_faust_internals,
    table_bytes,
)
from tests.shell import built_app


def test_the_installed_faust_has_every_private_name_the_adapter_uses() -> None:
    worker = built_app()
    consumer = worker.consumer  # built lazily, without connecting
    assert isinstance(consumer, BatchConsumer)
    assert isinstance(worker.transport, BatchTransport) and worker.transport.receiver is worker
    check_faust_internals(consumer)
    assert table_bytes(worker.state_table) == {}
    assert worker.committed_offset(TP("deposits", 0)) is None


@pytest.mark.parametrize(("owner", "name", "kind"), [n for n in PRIVATE_NAMES if n[2] == "method"])
def test_a_missing_method_is_named_at_start_up(
    monkeypatch: pytest.MonkeyPatch, owner: type, name: str, kind: str
) -> None:
    for cls in owner.__mro__:  # wherever it is defined, overridden or inherited
        if name in vars(cls):
            monkeypatch.delattr(cls, name)
    with pytest.raises(RuntimeError, match=name):
        check_faust_internals()


def test_a_missing_instance_attribute_is_named() -> None:
    consumer = built_app().consumer
    del consumer._read_offset  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="_read_offset"):
        check_faust_internals(consumer)


def test_the_batch_loop_overrides_the_method_faust_calls() -> None:
    """Faust's fetcher calls _drain_messages; if it stopped doing so, our loop would never run."""
    assert BatchConsumer._drain_messages is not faust_aiokafka.Consumer._drain_messages
    assert "consumer._drain_messages(self)" in inspect.getsource(Fetcher)


def test_tables_are_registered_without_fausts_pause_and_faust_still_pauses_as_copied() -> None:
    worker = built_app()
    assert isinstance(worker.tables, PromptTableManager)
    # What PromptTableManager.on_start copies, less the pause: if Faust's start changes, look again.
    steps = [line.strip() for line in inspect.getsource(TableManager.on_start).splitlines()]
    assert steps[-4:] == [
        "await self.sleep(1.0)",
        "if not self.should_stop:",
        "await self._update_channels()",
        "await self.recovery.start()",
    ]


class _Fetcher:
    """What the batch loop reads of Faust's Fetcher: whether it was told to stop."""

    def __init__(self) -> None:
        self._stopped = asyncio.Event()


def _input(topic: str, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, offset, 0, 0, b"acct", b"{}", None, 4, 2, ())


def test_input_fetched_before_a_rebalance_is_dropped_and_read_again_after_a_seek(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rebalance that begins while a poll is being collected (here: while Faust takes a
    changelog record) must not let that poll's input be screened: the batches before it
    were abandoned, so it would run against state that lacks them. The input is dropped,
    and once the rebalance is over the consumer seeks to the committed offsets first."""
    worker = built_app()
    consumer = worker.consumer
    assert isinstance(consumer, BatchConsumer)
    deposits = worker.settings.deposits_topic
    changelog = worker.state_table.changelog_topic.get_topic_name()
    fetcher = _Fetcher()
    screened: list[list[int]] = []
    seeks: list[bool] = []

    polls = iter(
        [
            {TP(deposits, 0): [_input(deposits, 0), _input(deposits, 1)], TP(changelog, 0): [_input(changelog, 7)]},
            {TP(deposits, 0): [_input(deposits, 2)]},  # polled while the rebalance is under way
            {TP(deposits, 0): [_input(deposits, 2)]},  # the rebalance is over: seek first
            {TP(deposits, 0): [_input(deposits, 0), _input(deposits, 1)]},  # read again after the seek
        ]
    )
    calls = 0

    async def next_records(timeout: float) -> tuple[object, None]:
        nonlocal calls
        calls += 1
        if calls == 3:
            worker.rebalancing = False  # Faust's on_rebalance_end
        polled = next(polls, None)
        if polled is None:
            fetcher._stopped.set()
        return polled, None

    async def on_changelog_record(message: object) -> None:
        # Taking a changelog record yields to the event loop; a rebalance begins then.
        await asyncio.sleep(0)
        worker.rebalancing = True  # Faust's on_rebalance_start
        worker.rebalancing_count += 1

    async def screen(records: list[ConsumerRecord[bytes, bytes]]) -> None:
        screened.append([r.offset for r in records])

    async def perform_seek() -> None:
        seeks.append(worker.rebalancing)
        consumer._read_offset.clear()

    monkeypatch.setattr(consumer, "_wait_next_records", next_records)
    monkeypatch.setattr(consumer, "callback", on_changelog_record)
    monkeypatch.setattr(consumer, "perform_seek", perform_seek)
    monkeypatch.setattr(worker, "screen_batch", screen)
    worker.rebalancing = False
    # On the consumer's own loop: Faust's services wait on futures bound to it.
    consumer.loop.run_until_complete(asyncio.wait_for(consumer._drain_messages(fetcher), 10))
    assert seeks == [False], "one seek, once the rebalance was over"
    assert screened == [[0, 1]], "only what was read after the seek is screened"


def test_the_fetch_wait_is_set_where_aiokafka_reads_it() -> None:
    """aiokafka hands ``_fetch_max_wait_ms`` to its fetcher at start: if it is renamed, say so."""
    from aiokafka import AIOKafkaConsumer

    from streams.shell.faust_adapter import BatchConsumerThread, set_fetch_wait

    async def build() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", fetch_max_wait_ms=1500)

    consumer = asyncio.run(build())
    set_fetch_wait(consumer, 100)
    assert consumer._fetch_max_wait_ms == 100  # the name the adapter writes is the one aiokafka reads
    with pytest.raises(RuntimeError, match="no _fetch_max_wait_ms"):
        set_fetch_wait(object(), 100)
    assert BatchConsumer._new_consumer_thread is not faust_aiokafka.Consumer._new_consumer_thread
    assert issubclass(BatchConsumerThread, faust_aiokafka.AIOKafkaConsumerThread)
