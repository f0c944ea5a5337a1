"""Giving freed memory back to the system after a cycle that allocated a lot.

A first poll cycle of 100,000 Spaces builds and drops hundreds of megabytes of short-lived objects (reads,
states, script arguments); CPython frees them, but glibc's allocator keeps most of the freed pages mapped, so
the process's resident size stays near that peak for its whole life (bench/poll.py: 262 MB, 198 MB after
`malloc_trim`). Where the C library has `malloc_trim` (glibc), it is called; elsewhere nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)
_trim = None


def _load_trim():
    global _trim
    if _trim is None:
        _trim = False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _trim = getattr(libc, "malloc_trim", None) or False
        except OSError:
            _trim = False
    return _trim


def give_back() -> bool:
    """Collect garbage cycles, then hand the allocator's free pages back to the system; False where it can't."""
    gc.collect()
    trim = _load_trim()
    if not trim:
        return False
    try:
        trim(0)
    except Exception:  # noqa: BLE001 — a C library that refuses: nothing is lost but the saving
        log.debug("malloc_trim failed", exc_info=True)
        return False
    return True
