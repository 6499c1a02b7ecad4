"""JSON bytes held for long are held at their own size (orjson's results keep a 4 KiB buffer)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import orjson

from streams.core.stored_json import dumps_to_keep
from streams.core.synthetic import synthetic_events


def held_bytes_each(make: Callable[[int], Any], count: int = 2_000) -> float:
    """Bytes allocated per object for ``count`` objects made by ``make`` and still held."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make(n) for n in range(count)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(kept) == count
    return held / count


def test_the_copy_is_the_same_json() -> None:
    value = {"version": 2, "address": "0xab", "waiting": [[1, {"amount": "1.5"}]]}
    assert dumps_to_keep(value) == orjson.dumps(value)
    assert orjson.loads(dumps_to_keep(value)) == value


def test_a_held_result_costs_its_length_not_orjsons_buffer() -> None:
    # The premise: orjson's own result holds about 4 KiB for a few bytes of JSON. If a
    # release of orjson stops doing that, this says so and the copy can go.
    assert held_bytes_each(lambda n: orjson.dumps({"n": n})) > 2_000
    assert held_bytes_each(lambda n: dumps_to_keep({"n": n})) < 200


def test_synthetic_lines_are_held_at_their_own_size() -> None:
    # Benches hold a million of them (make bench's driver held 4 GB of orjson's buffers).
    lines = synthetic_events(2_000, seed=1, accounts=100)
    assert held_bytes_each(lambda n: next(lines)) < 1_000
