"""Garbage-collector settings for the long-running and bulk commands.

Screening allocates a few short-lived objects per event while holding many long-lived
ones (address lists, per-account state). With CPython's default thresholds the cyclic
collector then runs every 700 allocations and repeatedly walks the long-lived objects:
measured on the default pack, that doubled the engine's time per event. The engine
makes no reference cycles of its own, so collecting less often costs little memory.

A worker also answers within milliseconds, so it must not stop for long either. A
collection of the middle generation walks every object that survived the young
collections since the last one (decoded account states, and every record of the batches
in flight), and a full collection walks everything the worker holds (a second or more
with a million accounts' state). Measured with a probe on ``gc.callbacks`` in a worker
draining 300,000 events with young collections every 5,000 allocations: 1,151 young and
104 middle collections took 2.9 s of its 17.7 s of CPU (17%; the middle ones 11-18 ms
each, pauses a record waits through) and found 3,560 objects in reference cycles in all;
under 1,000 screening requests a second, 6,200 in a minute. So
:func:`pace_worker_collections` turns CPython's automatic collections off altogether,
and the worker runs full collections on a fixed interval
(:class:`streams.shell.collector.FullCollections`): garbage with reference cycles (a few
thousand objects a minute) lives no longer than that interval, and the one pause comes at
a known rate.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: Allocations between young-generation collections (CPython's default is 700).
YOUNG_COLLECTION_THRESHOLD = 50_000


def settle_long_lived() -> None:
    """Exclude everything allocated so far (rules, lists) from collection; collect rarely.

    Call once the ruleset is loaded, before screening starts.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


def pace_worker_collections() -> None:
    """No automatic collections: the caller runs :func:`collect_fully` on its own schedule."""
    gc.disable()


@contextmanager
def offline_collections() -> Iterator[None]:
    """No automatic collections at all while a batch screening runs (``backtest``, ``rescreen``).

    The engine makes no reference cycles (a test screens a file with every kind of bad
    line and finds no cyclic garbage after it), so the cyclic collector frees nothing and
    only walks objects: every container that lives past a young collection is walked
    once or twice. Measured on the 1,000,000-event bench file: 7-8% of a backtest's CPU
    (46.3 / 48.3 s against 42.8 / 45.4 s), the same peak RSS. Memory is still freed as
    always, by reference counting. Before this, a backtest had only its full collections
    off: with idle accounts deleted as it goes, CPython's heuristic walked the whole heap
    again and again (2 of 2.5 s each in a 50 s run). Collections resume as they were after
    the block: what follows (reading topics with asyncio, say) may make cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def collect_fully() -> tuple[int, float]:
    """A full collection now: the objects it freed and the seconds it took."""
    started = time.perf_counter()
    freed = gc.collect()
    return freed, time.perf_counter() - started
