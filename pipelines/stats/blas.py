"""One BLAS thread for the statistics, unless the user chose a number.

The models' heavy products are X'WX of a tall, narrow design (n x ~40): OpenBLAS gains at
most the number of cores from threads there, but its threads spin-wait for each other, and on
a machine whose cores are shared (a flow worker, a server running other jobs) that makes the
products many times slower, in wall time and CPU time, than one thread (benchmarks/README.md,
Measurements: pipelines/stats/blas.py). One thread is also what
``OPENBLAS_NUM_THREADS=1`` gives, so results do not depend on it.

:func:`single_blas_thread` limits every BLAS library loaded in the process (numpy's and
scipy's bundled OpenBLAS, a system one, MKL or BLIS: those threadpoolctl finds) to one thread
for the duration and then restores each one's count. It does nothing when
``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` or ``LEVELCARE_BLAS_THREADS`` is set (the user's
choice stands). A BLAS library's thread count is one for the whole process, and the statistics
enter the block from several threads at once (their thread pool, inside an outer block): the
first entry limits, the last exit restores, whatever the order of the threads' exits.

threadpoolctl lets one thread only set the count of an OpenBLAS with its own threads (the
first that sets it, until a ``with threadpool_limits`` of its own ends); from any other its
calls silently do nothing. The entry and the last exit may be on different threads (the pool's
last task, a Prefect task's thread after the main thread's run), so each of them takes that
role for its call and leaves no thread holding it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_USER_SETTINGS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "LEVELCARE_BLAS_THREADS")
_lock = threading.Lock()
_depth = 0
_limits: Any = None  # threadpoolctl's limiter while _depth > 0: it holds the counts to restore


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the block with one BLAS thread (see the module docstring); nests, across threads too."""
    global _depth, _limits
    if any(os.environ.get(v) for v in _USER_SETTINGS):
        yield
        return
    with _lock:
        if _depth == 0:
            import numpy  # noqa: F401  loads numpy's OpenBLAS, so that it is found

            try:  # and scipy's, which statsmodels and scipy.linalg use, if it is not loaded yet
                import scipy.linalg  # noqa: F401
            except ImportError:
                pass
            from threadpoolctl import threadpool_limits

            # in force from here
            _limits = _as_controller(lambda: threadpool_limits(limits=1, user_api="blas"))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _as_controller(_limits.restore_original_limits)
                _limits = None


def _as_controller(call: Callable[[], Any]) -> Any:
    """``call()``, a threadpoolctl limit or restore, made by this thread as the one that sets
    OpenBLAS's count; afterwards no thread holds that role (see the module docstring)."""
    from threadpoolctl import OpenBLASController

    OpenBLASController.clear_controlling_thread(force=True)
    try:
        return call()
    finally:
        OpenBLASController.clear_controlling_thread(force=True)
