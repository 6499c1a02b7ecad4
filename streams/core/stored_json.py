"""JSON bytes to be held for long (table values, caches), at their own size.

orjson returns a bytes object that keeps the whole buffer it wrote into, at least 4 KiB,
whatever the length of the JSON (``sys.getsizeof`` does not show it; ``tracemalloc``
does). For a result sent and dropped that costs nothing; for one held in a table of a
hundred thousand entries it is 400 MB for what takes 40. :func:`dumps_to_keep` returns an
exact-size copy.
"""

from __future__ import annotations

from typing import Any

import orjson


def dumps_to_keep(value: Any) -> bytes:
    """``orjson.dumps(value)`` copied to a bytes object of its own length (see the module's docstring)."""
    # bytes(memoryview(...)) copies; bytes(b), b[:] and b"" + b all return b itself.
    return bytes(memoryview(orjson.dumps(value)))
