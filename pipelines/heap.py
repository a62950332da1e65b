"""How the C heap serves numpy's large arrays (glibc only; elsewhere nothing changes).

numpy takes every array from the C allocator. glibc maps each block above its mmap threshold
(adaptive, at most 32 MiB) afresh from the kernel and unmaps it when it is freed, and a thread
other than the main one draws from its own arena, whose heaps hold at most 64 MiB: a larger
block is always mapped afresh. The statistics at national scale create and free 100+ MiB
vectors (one float64 per row of a 14 M-row population) thousands of times, on two threads, so
every one of them is page-faulted in again, the kernel zeroing each page. Measured at 25 M
episodes: 945 s of system time beside 4,269 s of user time, 2,802 s wall (benchmarks/README.md).

``configure()``, run once when the package is imported (before any thread allocates), asks
glibc for one arena (every thread draws from the main heap, where a freed block is reused as
it is), for blocks up to ``MMAP_THRESHOLD`` from that heap, and to give the top of the heap
back to the kernel only beyond ``TRIM_THRESHOLD`` free. ``release()`` hands the free memory
back after the statistics. DuckDB and polars bring their own allocator (jemalloc); they are
not affected. A user's own glibc settings (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``) win: then nothing is changed.
"""

from __future__ import annotations

import os
from functools import cache

MMAP_THRESHOLD = 512 * 2**20
TRIM_THRESHOLD = 256 * 2**20
USER_SETTINGS = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8

_configured = False


@cache
def _libc():
    """glibc's handle, or None on another C library or platform."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
    except (AttributeError, ValueError, OSError):  # not a glibc system
        return None
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def configure(environ=os.environ) -> bool:
    """Apply the settings above once; True when they are in force (now or from an earlier call)."""
    global _configured
    if _configured:
        return True
    if any(environ.get(v) for v in USER_SETTINGS):
        return False
    libc = _libc()
    if libc is None:
        return False
    _configured = all(libc.mallopt(param, value) == 1 for param, value in (
        (M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
    return _configured


def release() -> None:
    """Give the heap's free memory back to the kernel (after a large computation)."""
    if _configured:
        _libc().malloc_trim(0)
