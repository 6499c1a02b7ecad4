"""The worker app's own wiring around Faust (no broker: the app is built, not started)."""

from __future__ import annotations

import asyncio
import threading

from tests.shell import built_app


def test_a_rebalance_begun_on_the_consumer_thread_abandons_batches_on_the_event_loop() -> None:
    """Faust calls on_rebalance_start from its consumer thread. The commit pipeline must be
    abandoned on the event loop, between two steps, never in the middle of screening a
    batch (which would drop the documents that batch changed yet carry it to the end);
    Faust's own flag, which the batch consumer checks, is set at once."""
    worker = built_app()
    pipeline = worker.commit_pipeline

    async def rebalance_from_another_thread() -> None:
        before = pipeline.generation
        thread = threading.Thread(target=worker.on_rebalance_start)
        thread.start()
        thread.join()
        assert worker.rebalancing
        assert pipeline.generation == before, "not abandoned from the consumer thread"
        await asyncio.sleep(0)  # the event loop runs what the consumer thread handed it
        assert pipeline.generation == before + 1

    worker.loop.run_until_complete(rebalance_from_another_thread())
