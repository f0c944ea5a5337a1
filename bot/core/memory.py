"""Giving freed memory back to the system: a first poll cycle of 100,000 Spaces builds and frees more than the
bot keeps (bench/poll.py: RSS 300 MB, of which 110 MB live).

CPython frees what such a cycle built, but glibc's allocator keeps freed pages: in one heap per thread that
allocated (the poll's 16 reader threads each had theirs), and, once a large block was freed, it serves the next
large ones (a 100,000-entry dict's table) from the heap instead of a mapping it could unmap. `tune()` (at start-up)
asks for fewer heaps and a fixed mapping threshold; `give_back()` returns the free pages after a large cycle.
Elsewhere (musl, macOS) both do nothing.
"""

from __future__ import annotations

import ctypes
import functools

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 2                     # heaps shared by all threads (glibc's default: 8 per core)
MMAP_THRESHOLD = 128 * 1024    # glibc's initial value, kept fixed: larger blocks are mapped, and unmapped when freed


@functools.cache
def _libc():
    """The C library the process runs on (its symbols are the process's own: no search, no subprocess)."""
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def tune() -> bool:
    """At start-up, before the worker threads: fewer heaps, large blocks always mapped. False if not glibc."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None or getattr(libc, "malloc_trim", None) is None:
        return False
    return bool(mallopt(M_ARENA_MAX, ARENAS)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def give_back() -> bool:
    """Return the C heaps' free pages to the system; False where that is not possible."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:
        return False
    trim(0)
    return True
