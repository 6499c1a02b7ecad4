"""The commit protocol without Kafka or Faust: fakes that fail, or hold, at each step."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from streams.core.screening import Outcome, Record
from streams.shell.commit import Batch, BatchStatus, Change, CommitPipeline


class Step(asyncio.Event):
    """A gate a fake write waits at, until the test opens it."""


class Fakes:
    """Outputs, state table and consumer that log every call in one list, in order."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.table: dict[bytes, bytes] = {}
        self.acked: list[int] = []
        self.fail_at: str | None = None
        self.gates: dict[str, Step] = {}
        self.forgotten = 0
        self.in_flight_seen: list[list[Change]] = []

    async def _step(self, name: str, tag: str) -> None:
        gate = self.gates.get(name)
        if gate is not None:
            await gate.wait()
        if self.fail_at == name:
            raise RuntimeError(f"{name} refused")
        self.log.append(f"{name}:{tag}")

    async def emit_many(self, outcomes: Sequence[Outcome]) -> None:
        await self._step("outputs", ",".join(str(o.record.offset) for o in outcomes))

    async def write_changelog(self, changes: Sequence[Change]) -> None:
        await self._step("changelog", ",".join(key.decode() for _, key, _ in changes))

    def apply(self, changes: Sequence[Change], in_flight: Sequence[Change] = ()) -> None:
        self.log.append("apply:" + ",".join(key.decode() for _, key, _ in changes))
        self.in_flight_seen.append(list(in_flight))
        for _, key, value in changes:
            if value is None:
                self.table.pop(key, None)
            else:
                self.table[key] = value

    def forget(self) -> None:
        self.forgotten += 1

    def ack_records(self, records: Sequence[Record]) -> None:
        self.log.append("ack:" + ",".join(str(r.offset) for r in records))
        self.acked.extend(r.offset for r in records)


def batch_of(*offsets: int) -> tuple[list[Outcome], list[Change]]:
    outcomes = [Outcome(Record("deposits", 0, offset, b"a", b"{}")) for offset in offsets]
    changes: list[Change] = [(0, f"acct-{offset}".encode(), b"{}") for offset in offsets]
    return outcomes, changes


def pipeline(fakes: Fakes, completed: list[Batch] | None = None) -> CommitPipeline:
    done = completed if completed is not None else []
    return CommitPipeline(fakes, fakes, fakes, on_complete=done.append)


async def test_steps_run_in_protocol_order() -> None:
    fakes = Fakes()
    done: list[Batch] = []
    commit = pipeline(fakes, done)
    batch = await commit.submit(*batch_of(1, 2))
    await commit.drain()
    assert fakes.log == ["outputs:1,2", "changelog:acct-1,acct-2", "apply:acct-1,acct-2", "ack:1,2"]
    assert batch.status is BatchStatus.COMPLETE and done == [batch]
    assert fakes.table == {b"acct-1": b"{}", b"acct-2": b"{}"}


@pytest.mark.parametrize("step", ["outputs", "changelog"])
async def test_a_failed_write_acknowledges_nothing(step: str) -> None:
    fakes = Fakes()
    fakes.fail_at = step
    commit = pipeline(fakes)
    batch = await commit.submit(*batch_of(1))
    await commit.drain()
    assert batch.status is BatchStatus.FAILED and isinstance(batch.error, RuntimeError)
    assert fakes.acked == [] and fakes.table == {}
    assert not any(entry.startswith(("apply", "ack")) for entry in fakes.log)


async def test_a_batch_after_a_failed_one_is_not_acknowledged_either() -> None:
    """Acks stay contiguous: a later batch must not commit offsets past a failed one."""
    fakes = Fakes()
    fakes.fail_at = "changelog"
    commit = pipeline(fakes)
    first = await commit.submit(*batch_of(1))
    await asyncio.sleep(0.01)
    fakes.fail_at = None
    second = await commit.submit(*batch_of(2))
    await commit.drain()
    assert first.status is BatchStatus.FAILED and second.status is BatchStatus.FAILED
    assert fakes.acked == []
    assert fakes.log == ["outputs:1", "outputs:2"]  # the second one's alerts are out: a replay dedupes them


@pytest.mark.parametrize("held", ["outputs", "changelog"])
async def test_a_rebalance_abandons_the_batch_in_flight(held: str) -> None:
    fakes = Fakes()
    gate = fakes.gates[held] = Step()
    commit = pipeline(fakes)
    batch = await commit.submit(*batch_of(1))
    await asyncio.sleep(0)
    assert commit.in_flight is batch
    commit.abandon()
    gate.set()
    await commit.drain()
    await asyncio.sleep(0)
    assert batch.status is BatchStatus.ABANDONED
    assert fakes.acked == [] and fakes.table == {} and fakes.forgotten == 1
    assert commit.in_flight is None


async def test_an_older_batch_still_running_at_a_rebalance_writes_no_changelog() -> None:
    """Only the newest batch's task is cancelled; the one before it stops at its next step.

    Its changelog record would reach partitions another worker may own by then, after
    that worker has read them.
    """
    fakes = Fakes()
    gate = fakes.gates["outputs"] = Step()
    commit = pipeline(fakes)
    first = await commit.submit(*batch_of(1))
    second = asyncio.ensure_future(commit.submit(*batch_of(2)))
    await asyncio.sleep(0)
    commit.abandon()
    gate.set()
    await asyncio.gather(second, return_exceptions=True)
    await asyncio.sleep(0.01)
    assert first.status is BatchStatus.ABANDONED
    assert not any(entry.startswith(("changelog", "apply", "ack")) for entry in fakes.log), fakes.log


async def test_a_rebalance_after_the_changelog_write_began_stops_before_state_and_acks() -> None:
    """The write cannot be called back, but nothing is applied or acknowledged after it."""

    class Late(Fakes):
        async def write_changelog(self, changes: Sequence[Change]) -> None:
            commit.abandon()  # the rebalance starts while the changelog is being written
            await super().write_changelog(changes)

    fakes = Late()
    commit = pipeline(fakes)
    await commit.submit(*batch_of(1))
    await asyncio.sleep(0.01)
    assert fakes.acked == [] and fakes.table == {}


async def test_next_batch_screens_while_outputs_of_this_one_wait() -> None:
    """One batch deep: submit returns before the batch is complete, and waits for the one before."""
    fakes = Fakes()
    gate = fakes.gates["changelog"] = Step()
    commit = pipeline(fakes)
    first = await commit.submit(*batch_of(1))
    assert first.status in (BatchStatus.SCREENED, BatchStatus.OUTPUTS_ACKED)
    second_submit = asyncio.ensure_future(commit.submit(*batch_of(2)))
    await asyncio.sleep(0.01)
    assert not second_submit.done()  # the first batch is not complete yet
    assert fakes.log == ["outputs:1", "outputs:2"]  # but the second one's outputs are already going out
    gate.set()
    second = await second_submit
    await commit.drain()
    assert fakes.log == [
        "outputs:1",
        "outputs:2",
        "changelog:acct-1",
        "apply:acct-1",
        "ack:1",
        "changelog:acct-2",
        "apply:acct-2",
        "ack:2",
    ]
    assert second.status is BatchStatus.COMPLETE


async def test_state_of_a_newer_batch_is_kept_cached_when_an_older_one_is_applied() -> None:
    fakes = Fakes()
    gate = fakes.gates["changelog"] = Step()
    commit = pipeline(fakes)
    await commit.submit(*batch_of(1))
    second_submit = asyncio.ensure_future(commit.submit(*batch_of(2)))
    await asyncio.sleep(0.01)
    gate.set()
    await second_submit
    await commit.drain()
    assert fakes.in_flight_seen[0] == [(0, b"acct-2", b"{}")]  # batch 2 was newer than the table
    assert fakes.in_flight_seen[1] == []


async def test_drain_waits_for_the_batch_in_flight() -> None:
    fakes = Fakes()
    gate = fakes.gates["outputs"] = Step()
    commit = pipeline(fakes)
    batch = await commit.submit(*batch_of(7))
    asyncio.get_running_loop().call_later(0.05, gate.set)
    await commit.drain(timeout=5)
    assert batch.status is BatchStatus.COMPLETE and fakes.acked == [7]


async def test_a_new_generation_after_a_rebalance_completes_normally() -> None:
    fakes = Fakes()
    gate = fakes.gates["outputs"] = Step()
    commit = pipeline(fakes)
    old = await commit.submit(*batch_of(1))
    commit.abandon()
    gate.set()
    new = await commit.submit(*batch_of(1))  # the same record, read again from the committed offset
    await commit.drain()
    assert old.status is BatchStatus.ABANDONED and new.status is BatchStatus.COMPLETE
    assert fakes.acked == [1]
