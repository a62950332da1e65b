"""Build a session-wide test resource once per test run, also when pytest-xdist splits the run.

Under ``pytest -n 2`` each worker is its own pytest session, so a session-scoped fixture would
be built once per worker. :func:`built_once` builds it in the folder all workers share
(the parent of each worker's base temp), under an exclusive ``fcntl`` lock: the first worker
builds and pickles the value, the others wait and load it.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], T]) -> T:
    """``build(folder)`` once per test run; every worker gets the same (unpickled) value."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this run
    done = root / f"built-{name}.pickle"
    with open(root / f"built-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes (or the worker dies)
        if done.exists():
            return pickle.loads(done.read_bytes())
        # a fresh folder per attempt: a worker whose build failed leaves its folder behind
        value = build(Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root)))
        done.write_bytes(pickle.dumps(value))
        return value
