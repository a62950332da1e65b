"""pipelines.stats.blas: one BLAS thread inside single_blas_thread, the count as it was after,
nothing changed where the user chose a number. The counts are read by threadpoolctl.threadpool_info(),
apart from the limiter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy  # noqa: F401  numpy's OpenBLAS loaded, so that threadpool_info() sees it
import pytest
import scipy.linalg  # noqa: F401  and scipy's
from threadpoolctl import OpenBLASController, threadpool_info, threadpool_limits

from pipelines.stats.blas import _USER_SETTINGS, single_blas_thread


def blas_threads() -> list[int]:
    """The thread count of every BLAS library loaded in this process."""
    counts = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert counts, "no BLAS library found"
    return counts


@pytest.fixture
def two_threads(monkeypatch):
    """Every BLAS at two threads (not one, whatever the machine's cores), no user setting."""
    for name in _USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    # set as a finished ``with threadpool_limits`` leaves it: no thread keeps the right to set it
    limiter = threadpool_limits(limits=2, user_api="blas")
    OpenBLASController.clear_controlling_thread()
    try:
        if set(blas_threads()) != {2}:
            pytest.skip(f"this BLAS cannot run two threads: {blas_threads()}")
        yield
    finally:
        limiter.restore_original_limits()
        OpenBLASController.clear_controlling_thread()


def test_one_thread_inside_and_the_count_restored_after_nested(two_threads):
    with single_blas_thread():
        assert set(blas_threads()) == {1}
        with single_blas_thread():
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {1}  # the inner exit leaves the outer block's limit
    assert set(blas_threads()) == {2}


def test_exits_out_of_order_across_threads_restore_at_the_last(two_threads):
    """The statistics' pool threads enter inside the main thread's block and may leave after it:
    the count is one process-wide, so it stays one until the last exit."""
    entered, outer_left, seen = threading.Event(), threading.Event(), []

    def worker():
        with single_blas_thread():
            entered.set()
            outer_left.wait(10)
            seen.append(blas_threads())

    outer = single_blas_thread()
    outer.__enter__()
    t = threading.Thread(target=worker)
    t.start()
    assert entered.wait(10)
    outer.__exit__(None, None, None)
    assert set(blas_threads()) == {1}  # the worker is still inside
    outer_left.set()
    t.join(10)
    assert seen and set(seen[0]) == {1}
    assert set(blas_threads()) == {2}


def test_a_block_on_another_thread_does_not_keep_the_next_one_from_limiting(two_threads):
    """A Prefect task's thread runs the statistics and lives on; the next run, on another thread,
    still gets one thread (threadpoolctl lets one thread only set OpenBLAS's count)."""
    done, finish, seen = threading.Event(), threading.Event(), []

    def task():
        with single_blas_thread():
            seen.append(blas_threads())
        done.set()
        finish.wait(10)  # alive, as a pool's thread stays

    t = threading.Thread(target=task)
    t.start()
    try:
        assert done.wait(10)
        assert set(seen[0]) == {1} and set(blas_threads()) == {2}
        with single_blas_thread():
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {2}
    finally:
        finish.set()
        t.join(10)


@pytest.mark.parametrize("name", ["OMP_NUM_THREADS", "LEVELCARE_BLAS_THREADS"])
def test_a_user_setting_stands(two_threads, monkeypatch, name):
    monkeypatch.setenv(name, "2")
    with single_blas_thread():
        assert set(blas_threads()) == {2}
    assert set(blas_threads()) == {2}


CHILD = r"""
import hashlib, json
import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_info
from pipelines.stats.blas import single_blas_thread

def counts():
    return sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})

x = np.random.default_rng(3).standard_normal((100_000, 40))
w = np.random.default_rng(4).random(100_000)
before = counts()
with single_blas_thread():
    inside = counts()
    xtwx = x.T @ (x * w[:, None])  # the models' heavy product
print(json.dumps({"before": before, "inside": inside, "after": counts(),
                  "xtwx": hashlib.sha256(xtwx.tobytes()).hexdigest()}))
"""


def _child(**env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k not in _USER_SETTINGS}
    out = subprocess.run([sys.executable, "-c", CHILD], env={**environ, **env}, check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS takes at most one thread per core")
def test_openblas_num_threads_from_the_user_is_left_as_it_is_and_results_do_not_depend_on_it():
    # OpenBLAS reads OPENBLAS_NUM_THREADS when it loads: a fresh interpreter each
    chosen = _child(OPENBLAS_NUM_THREADS="2")
    assert chosen["before"] == chosen["inside"] == chosen["after"] == [2], chosen  # not limited to 1
    one = _child(OPENBLAS_NUM_THREADS="1")
    limited = _child()
    assert limited["inside"] == [1] and limited["before"] == limited["after"] != [1], limited
    # one thread as the user would set it: the same bytes
    assert limited["xtwx"] == one["xtwx"]
