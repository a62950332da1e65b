"""One BLAS thread for the statistics, unless the user chose a number.

The models' heavy products are X'WX of a tall, narrow design (n x ~40): OpenBLAS gains at
most the number of cores from threads there, but its threads spin-wait for each other, and on
a machine whose cores are shared (a flow worker, a server running other jobs) that made the
products 10-12 times slower in wall time and CPU time than one thread (400,000 x 45, load
average 6 on 2 cores: 45.7 s vs 4.4 s wall for ten products). One thread is also what
``OPENBLAS_NUM_THREADS=1`` gives, so results do not depend on it.

:func:`single_blas_thread` sets the thread count of every OpenBLAS library loaded in the
process (numpy's and scipy's bundled ones, a system one) to one for the duration and then
restores it. It does nothing when ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` or
``LEVELCARE_BLAS_THREADS`` is set (the user's choice stands), or when no OpenBLAS is found.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# (set, get) symbol pairs: numpy's ILP64 build, scipy's LP64 build, a plain OpenBLAS
_SYMBOLS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)
_USER_SETTINGS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "LEVELCARE_BLAS_THREADS")
_lock = threading.Lock()
_depth = 0
_saved: list[tuple[object, int]] = []


def _libraries() -> list[tuple[object, object]]:
    """(set, get) functions of every OpenBLAS mapped into this process."""
    paths: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                path = line.rsplit(" ", 1)[-1].strip()
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:  # not Linux: leave the BLAS as it is
        return []
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _SYMBOLS:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                found.append((getattr(lib, set_name), getattr(lib, get_name)))
                break
    return found


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the block with one OpenBLAS thread (see the module docstring); nests."""
    global _depth
    if any(os.environ.get(v) for v in _USER_SETTINGS):
        yield
        return
    import numpy  # noqa: F401  loads numpy's OpenBLAS, so that it is found

    try:  # and scipy's, which statsmodels and scipy.linalg use, if it is not loaded yet
        import scipy.linalg  # noqa: F401
    except ImportError:
        pass

    with _lock:
        if _depth == 0:
            _saved.clear()
            for set_threads, get_threads in _libraries():
                _saved.append((set_threads, int(get_threads())))
                set_threads(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for set_threads, threads in _saved:
                    set_threads(threads)
                _saved.clear()
