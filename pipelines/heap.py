"""How the C heap serves numpy's large arrays (glibc only; elsewhere nothing changes).

numpy takes every array from the C allocator. glibc maps each block above its mmap threshold
(adaptive, at most 32 MiB) afresh from the kernel and unmaps it when it is freed, and a thread
other than the main one draws from its own arena, whose heaps hold at most 64 MiB: a larger
block is always mapped afresh. The statistics at national scale create and free 100+ MiB
vectors (one float64 per row of a 14 M-row population) thousands of times, on two threads, so
every one of them is page-faulted in again, the kernel zeroing each page: at national scale a
large share of the statistics' CPU time (benchmarks/README.md, Measurements: pipelines/heap.py).

``configure()``, run once by the command line's entry point (``pipelines.cli.entrypoint``:
``levelcare`` and ``python -m pipelines``) before any thread allocates, asks glibc for one
arena (every thread draws from the main heap, where a freed block is reused as it is), for
blocks up to ``MMAP_THRESHOLD`` from that heap, and to give the top of the heap back to the
kernel only beyond ``TRIM_THRESHOLD`` free. ``release()`` hands the free memory back after the
statistics; ``trimmed()`` does so while they run, whenever more than ``TRIM_FREE_LIMIT`` is
free: the holes between live blocks are reused but stay resident, and at national scale they
add gigabytes to the statistics' peak.
DuckDB and polars bring their own allocator (jemalloc); they are not affected. A user's own
glibc settings (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``GLIBC_TUNABLES``) win: then nothing is changed (``trimmed()`` included). Importing ``pipelines``
changes nothing: a notebook, a Dask worker or a Prefect flow-run process that imports it keeps
glibc as it was (and ``trimmed()`` does nothing there) unless it calls ``configure()`` itself,
first thing, before it starts threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

MMAP_THRESHOLD = 512 * 2**20
TRIM_THRESHOLD = 256 * 2**20
USER_SETTINGS = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
# trimmed(): hand free heap back once more than this is free, looked at every TRIM_EVERY seconds
TRIM_FREE_LIMIT = 1 << 30
TRIM_EVERY = 1.0
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


def mallinfo():
    """The heap's counts now (glibc's ``struct mallinfo2``: ``arena`` its size, ``uordblks``
    the bytes in use, ``fordblks`` the bytes free), or None before glibc 2.33 / elsewhere."""
    info = _mallinfo2()
    return None if info is None else info()


def free_bytes() -> int | None:
    """Bytes free inside the heap as levelcare configured it, or None where it did not (another
    C library, or a user's own glibc settings) or cannot tell."""
    info = mallinfo() if _configured else None
    return None if info is None else int(info.fordblks)


@contextmanager
def trimmed(limit: int = TRIM_FREE_LIMIT, every: float = TRIM_EVERY) -> Iterator[None]:
    """While the block runs, a thread gives the heap's free memory back to the kernel each time
    more than ``limit`` bytes of it are free (looked at every ``every`` seconds).

    The heap reuses freed blocks, but blocks of many sizes freed in another order than they
    were taken leave holes between live ones, which stay resident. In the statistics at
    national scale the heap can hold more free than in use, and handing the holes back lowers the
    process's peak by gigabytes in the same wall time (benchmarks/README.md, Measurements:
    pipelines/heap.py). A hole handed back is faulted in again when it is reused (more system
    time), so nothing is done below ``limit``, which is above what the heap holds free at 1.7 M
    episodes. Results do not depend on it (byte-identical with and without). ``malloc_trim``
    leaves the holes free in the heap (``free_bytes`` does not fall); it takes their pages out
    of memory.
    """
    if free_bytes() is None:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(every):
            free = free_bytes()
            if free is not None and free > limit:
                release()

    watcher = threading.Thread(target=watch, name="levelcare-heap-trim", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


@cache
def _mallinfo2():
    """glibc's ``mallinfo2`` (2.33 and later), ready to call; None before."""
    import ctypes

    info = getattr(_libc(), "mallinfo2", None)
    if info is None:
        return None

    class MallInfo2(ctypes.Structure):  # struct mallinfo2 (malloc.h)
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
            "keepcost")]

    info.restype = MallInfo2
    info.argtypes = []
    return info
