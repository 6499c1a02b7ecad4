"""Garbage-collector settings for the long-running and bulk commands.

Screening allocates a few short-lived objects per event while holding many long-lived
ones (address lists, per-account state). With CPython's default thresholds the cyclic
collector then runs every 700 allocations and repeatedly walks the long-lived objects:
measured on the default pack, that doubled the engine's time per event. The engine
makes no reference cycles of its own, so collecting less often costs little memory.
"""

from __future__ import annotations

import gc

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
