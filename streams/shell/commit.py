"""The at-least-once commit protocol: one object that owns a batch from screening to offsets.

A screened batch of input records carries three things that must become durable in a
fixed order, so that a crash at any moment loses nothing and a replay raises the same
alerts (consumers dedupe on ``alert_id``):

1. **outputs produced** -- the batch's alerts and dead letters are written and the broker
   has acknowledged every one (``acks=all``);
2. **changelog written** -- the account states the batch changed are written to the state
   table's changelog topic and acknowledged; this waits for the batch before it to be
   complete, so an account's changelog records stay in batch order;
3. **state applied** -- those values are put in the in-memory table that recovery
   would have rebuilt from the changelog;
4. **offsets acked** -- the input records are acknowledged to the consumer, which commits
   offsets only up to the last contiguously acknowledged record.

Until step 4, the committed offsets are before the batch, and the durable state is the
one the batch first met: a worker that dies replays the batch against it. A rebalance
*abandons* every batch not yet complete: nothing more of it is written or acknowledged,
the decoded state is dropped, and whoever owns its partitions next reads them again from
the committed offsets. A batch whose writing fails with an error the sink does not
retry itself is *failed*: nothing of it is acknowledged, and neither is anything of a
later batch (its changelog waits for this one), so the worker stops making progress and
its stall check restarts it.

The pipeline is one batch deep: a batch's outputs are produced while the next batch is
screened, and :meth:`CommitPipeline.submit` returns once the batch *before* the one it
was given is complete. Nothing here imports Kafka or Faust: the worker passes in its
sink, its state table and its consumer (``tests/shell/test_commit.py`` passes fakes that fail
at each step).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from streams.core.screening import Outcome, Record

log = logging.getLogger(__name__)

#: One durable state change: (input partition, account id, encoded state or ``None`` to delete).
Change = tuple[int, bytes, bytes | None]


class BatchStatus(enum.Enum):
    """Where a batch is in the protocol; the last three are final."""

    SCREENED = "screened"
    OUTPUTS_ACKED = "outputs_acked"
    CHANGELOG_ACKED = "changelog_acked"
    COMPLETE = "complete"  # state applied and records acknowledged
    ABANDONED = "abandoned"  # a rebalance came first: nothing more written or acknowledged
    FAILED = "failed"  # a write failed: nothing acknowledged


class Outputs(Protocol):
    """Writes a batch's outputs and returns once the broker has acknowledged them."""

    async def emit_many(self, outcomes: Sequence[Outcome]) -> None:
        """Alerts and dead letters."""

    async def write_changelog(self, changes: Sequence[Change]) -> None:
        """State changes, to the changelog topic of the state table."""


class DurableState(Protocol):
    """The worker's state table as the protocol sees it."""

    def apply(self, changes: Sequence[Change], in_flight: Sequence[Change] = ()) -> None:
        """Put changes whose changelog records are acknowledged in the table."""

    def forget(self) -> None:
        """Drop decoded documents and unwritten changes (the table keeps what is durable)."""


class Offsets(Protocol):
    """The consumer, which commits an offset once every record before it is acknowledged."""

    def ack_records(self, records: Sequence[Record]) -> None:
        """Acknowledge these input records."""


@dataclass(eq=False)
class Batch:
    """One screened poll batch on its way through the protocol."""

    outcomes: list[Outcome]
    changes: list[Change]
    #: The pipeline's generation when the batch was screened; a rebalance starts a new one.
    generation: int
    status: BatchStatus = BatchStatus.SCREENED
    error: BaseException | None = field(default=None, repr=False)

    @property
    def records(self) -> list[Record]:
        """The input records of the batch, in the order they were screened."""
        return [outcome.record for outcome in self.outcomes]


class CommitPipeline:
    """Carries screened batches through the protocol, in order, one batch deep.

    ``on_complete`` is told of every batch that completes (the worker counts it).
    """

    def __init__(
        self,
        outputs: Outputs,
        state: DurableState,
        offsets: Offsets,
        on_complete: Callable[[Batch], None] = lambda batch: None,
    ) -> None:
        self._outputs = outputs
        self._state = state
        self._offsets = offsets
        self._on_complete = on_complete
        self.generation = 0
        #: The newest batch submitted, and the task carrying it.
        self._latest: Batch | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> Batch | None:
        """The newest batch, if it is not final yet."""
        latest = self._latest
        if latest is None or latest.status in (BatchStatus.COMPLETE, BatchStatus.ABANDONED, BatchStatus.FAILED):
            return None
        return latest

    async def submit(self, outcomes: list[Outcome], changes: list[Change]) -> Batch:
        """Start the protocol for a screened batch; return once the batch before it is complete.

        ``changes`` are the account states as this batch leaves them, already encoded (the
        next batch changes the live ones).
        """
        batch = Batch(outcomes, changes, self.generation)
        previous_task = self._task
        self._latest = batch
        self._task = task = asyncio.ensure_future(self._carry(batch, previous_task))
        task.add_done_callback(_retrieve)  # the outcome is in batch.status, and logged
        if previous_task is not None:
            try:
                await asyncio.shield(previous_task)
            except asyncio.CancelledError:
                if not previous_task.cancelled():
                    raise  # the caller is being cancelled (the worker stops)
            except Exception:  # noqa: S110 - recorded on that batch and logged by _carry
                pass
        return batch

    def abandon(self) -> None:
        """A rebalance started: abandon every batch not yet complete and drop decoded state.

        Call it on the event loop's thread (it cancels a task, and must not run in the
        middle of screening a batch).
        """
        self.generation += 1
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.in_flight is not None:
            # Cancelled before it ran, it would never say so itself; an older batch still
            # running finds the new generation before its next step.
            self.in_flight.status = BatchStatus.ABANDONED
        self._task = None
        self._state.forget()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait (up to ``timeout`` seconds) for the batch in flight to complete: a graceful stop."""
        if self._task is not None and not self._task.done():
            await asyncio.wait([self._task], timeout=timeout)

    async def _carry(self, batch: Batch, previous: asyncio.Task[None] | None) -> None:
        try:
            await self._outputs.emit_many(batch.outcomes)
            batch.status = BatchStatus.OUTPUTS_ACKED
            if previous is not None:
                await previous  # its failure is this batch's failure: acks must stay contiguous
            if self._abandoned(batch):
                return
            await self._outputs.write_changelog(batch.changes)
            batch.status = BatchStatus.CHANGELOG_ACKED
            if self._abandoned(batch):
                return
            # A newer batch's documents are not durable yet: the table must keep them cached.
            newer = self._latest if self._latest is not batch and self._latest is not None else None
            self._state.apply(batch.changes, newer.changes if newer is not None else ())
            self._offsets.ack_records(batch.records)
            batch.status = BatchStatus.COMPLETE
        except asyncio.CancelledError:
            batch.status = BatchStatus.ABANDONED
            raise
        except Exception as exc:
            batch.status, batch.error = BatchStatus.FAILED, exc
            log.error("completing a batch failed; its records will be read again", exc_info=exc)
            raise
        self._on_complete(batch)

    def _abandoned(self, batch: Batch) -> bool:
        """Whether a rebalance came since ``batch`` was screened (and mark it so)."""
        if batch.generation == self.generation:
            return False
        batch.status = BatchStatus.ABANDONED
        return True


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a carrying task's exception as seen: it is kept on its batch and was logged."""
    if not task.cancelled():
        task.exception()
