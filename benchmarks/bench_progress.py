"""Benchmark: what levelcare's progress display and logging cost a whole `levelcare run`.

    uv run --frozen python benchmarks/bench_progress.py INPUT_DIR [--reps 1] [--keep DIR]

Runs ``levelcare run --input INPUT_DIR`` (embedded Prefect, a fresh warehouse each time) with
the progress hooks as shipped, and with ``pipelines.progress.status`` and ``.line`` replaced by
no-ops before anything imports them, alternating the two; prints seconds per run and the
median ratio (the budget is 1.02). Also prints the cost of one ``status`` call off a terminal.
A script, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys
if sys.argv[1] == "off":
    from pipelines import progress
    progress.status = lambda *a, **k: None
    progress.line = lambda *a, **k: None
sys.argv = ["levelcare", *sys.argv[2:]]
from pipelines.cli import entrypoint
entrypoint()
"""


def _run(variant: str, input_dir: Path, work: Path) -> float:
    out, wh = work / f"out-{variant}", work / f"{variant}.duckdb"
    for p in (wh, Path(f"{wh}.wal")):
        p.unlink(missing_ok=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, variant, "--warehouse", str(wh), "run", "--input",
                           str(input_dir), "--out", str(out), "--format", "html"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{variant}: exit {done.returncode}: {done.stderr[-2000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input_dir", type=Path)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--keep", metavar="DIR")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from pipelines import progress

    n = 100_000
    t = time.perf_counter()
    for i in range(n):
        progress.status("analyze", f"comparisons iop vs residential: {i}/24 populations fitted")
    print(f"one status call off a terminal: {(time.perf_counter() - t) / n * 1e6:.1f} us")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lc-bench-progress-"))
    work.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[float]] = {"on": [], "off": []}
    for rep in range(args.reps):
        for variant in ("on", "off"):
            runs[variant].append(_run(variant, args.input_dir, work))
            print(f"rep {rep + 1} progress {variant:<3}: {runs[variant][-1]:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"median: with progress {med['on']:.1f} s, without {med['off']:.1f} s, "
          f"ratio {med['on'] / med['off']:.3f} (budget 1.02)")


if __name__ == "__main__":
    main()
