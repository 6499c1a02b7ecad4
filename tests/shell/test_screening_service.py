"""The screening API's audit batches: nothing waits to fill one, and a failure reaches every waiter."""

from __future__ import annotations

import asyncio

import pytest

from streams.shell.screening_service import AuditBatcher


async def test_records_arriving_during_a_send_go_out_together_next() -> None:
    sent: list[list[bytes]] = []
    release = asyncio.Event()

    async def send_many(records: list[tuple[bytes, bytes]]) -> None:
        sent.append([key for key, _ in records])
        if len(sent) == 1:
            await release.wait()  # the first batch is in flight while the others arrive

    batcher = AuditBatcher(send_many)
    first = asyncio.create_task(batcher.write(b"a", b"1"))
    await asyncio.sleep(0)
    others = [asyncio.create_task(batcher.write(k, b"2")) for k in (b"b", b"c", b"d")]
    await asyncio.sleep(0)
    assert sent == [[b"a"]] and not first.done()
    release.set()
    await asyncio.gather(first, *others)
    assert sent == [[b"a"], [b"b", b"c", b"d"]]
    await batcher.write(b"e", b"3")
    assert sent[-1] == [b"e"], "a record alone goes out at once"


async def test_a_failed_send_fails_every_record_of_its_batch() -> None:
    async def send_many(records: list[tuple[bytes, bytes]]) -> None:
        raise TimeoutError("broker down")

    batcher = AuditBatcher(send_many)
    results = await asyncio.gather(*(batcher.write(k, b"v") for k in (b"a", b"b")), return_exceptions=True)
    assert all(isinstance(r, TimeoutError) for r in results)
    with pytest.raises(TimeoutError):
        await batcher.write(b"c", b"v")
