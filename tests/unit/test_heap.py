"""pipelines.heap: large numpy blocks freed on a worker thread are reused, not mapped afresh;
the command line makes these settings, importing the package does not.

Each check runs in a fresh interpreter: the settings must be made before any thread allocates,
which a pytest worker has long done. The controls are the same child with a user's glibc setting,
which levelcare leaves alone, and one that only imports the package (as a notebook or a Dask
worker does): both keep the allocator as glibc ships it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pipelines.heap import USER_SETTINGS

pytestmark = pytest.mark.skipif(
    not (hasattr(os, "confstr") and os.confstr("CS_GNU_LIBC_VERSION")), reason="glibc only")

# how a child starts: through the command line (``python -m pipelines --version``, or the
# ``levelcare`` console script's entry point), or by importing the package and its CLI module only
STARTS = {
    "python -m pipelines": r"""
import runpy
argv, sys.argv = sys.argv, ["levelcare", "--version"]
try:
    runpy.run_module("pipelines", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
sys.argv = argv
""",
    "levelcare": r"""
from importlib.metadata import entry_points
(script,) = entry_points(group="console_scripts", name="levelcare")
argv, sys.argv = sys.argv, ["levelcare", "--version"]
try:
    script.load()()
except SystemExit:
    pass
sys.argv = argv
""",
    "import": r"""
import pipelines, pipelines.cli  # noqa: F401
""",
}

# what every child program starts with: the process started one way, and its resident bytes
PRELUDE = r"""
import json, resource, sys, threading, time
import numpy as np
{start}
from pipelines import heap

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()
"""

CHILD = PRELUDE + r"""
np._core.multiarray._set_madvise_hugepage(False)  # count 4 KiB pages, the same on any kernel
faults = []
def work():
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        block = np.ones(100 * 2**20 // 8)  # 100 MiB, written: every page is touched
        del block
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
t = threading.Thread(target=work)
t.start(); t.join()

# a 200 MiB hole below a live block: the heap's top cannot give it back, release() can
hole = np.ones(200 * 2**20 // 8)
above = np.ones(2**20 // 8)
del hole
before = rss()
heap.release()
print(json.dumps({"configured": heap._configured, "faults": faults[0], "released": before - rss()}))
"""


def _child(code: str = CHILD, *args: str, start: str = "python -m pipelines", **env: str) -> dict:
    """Run ``code`` in a fresh interpreter started by ``start`` (a key of STARTS; no glibc setting
    of the caller's, ``env`` added); its last line of output, as JSON."""
    environ = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    code = code.replace("{start}", STARTS[start])
    out = subprocess.run([sys.executable, "-c", code, *args], env={**environ, **env}, check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_worker_thread_reuses_freed_large_blocks_and_release_returns_them():
    tuned = _child()
    stock = _child(MALLOC_ARENA_MAX="8")  # a user's own setting: levelcare changes nothing
    assert tuned["configured"] is True and stock["configured"] is False
    # glibc as shipped maps each 100 MiB block afresh (20 times); tuned, only the first faults in
    assert tuned["faults"] * 5 < stock["faults"], (tuned, stock)
    # importing the package (and its CLI module) is not running the command: glibc as shipped
    imported = _child(start="import")
    assert imported["configured"] is False and tuned["faults"] * 5 < imported["faults"], (tuned, imported)
    # release() gives the 200 MiB hole back to the kernel (nothing to give when glibc unmapped it)
    assert tuned["released"] > 150 * 2**20, tuned


TRIM_CHILD = PRELUDE + r"""
limit = int(sys.argv[1])
with heap.trimmed(limit=limit, every=0.05):
    # 300 MiB of written blocks, every other one then freed: 150 MiB of holes between live blocks,
    # which the heap's top cannot give back
    blocks = [np.ones(10 * 2**20 // 8) for _ in range(30)]
    before = rss()  # nothing free yet: nothing to trim
    del blocks[::2]
    time.sleep(0.5)  # ten looks by the watcher
    during = rss()
print(json.dumps({"free": heap.free_bytes(), "released": before - during}))
"""


def test_trimmed_hands_back_free_heap_past_its_limit_only():
    # started as the console script is: its entry point makes the settings that trimmed() needs
    past = _child(TRIM_CHILD, str(64 * 2**20), start="levelcare")  # 150 MiB free: past the limit
    # within it: the holes stay (glibc keeps them for reuse)
    within = _child(TRIM_CHILD, str(1 << 30), start="levelcare")
    assert past["free"] > 140 * 2**20 and within["free"] > 140 * 2**20, (past, within)
    # trimming leaves the holes free in the heap (free stays) but takes their pages out of memory
    assert past["released"] > 120 * 2**20, past
    assert abs(within["released"]) < 20 * 2**20, within
