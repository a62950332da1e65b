"""Benchmark of the statistics stage: compare() over N synthetic episodes and ~25 definitions.

    uv run --frozen python benchmarks/bench_stats.py [--n 1700000] [--definitions 25] [--skip-baseline]
        [--blas-threads 1] [--arms iop,php,residential [--multiarm]]

Prints seconds per stage of :func:`pipelines.analysis.comparisons.compare` (crude + gcomp,
IPTW ATE, IPTW ATT, overlap, AIPW with balance and diagnostics, follow-up estimates for the
follow-up definitions), the peak resident memory, and a baseline: the time to fit the same
logistic models (one propensity model per distinct population, one outcome model per arm and
definition, one follow-up model per follow-up definition) directly with statsmodels
``Logit`` on in-memory arrays. The target is compare <= 1.5 x baseline.

OpenBLAS threads are set before numpy loads (``--blas-threads``, default 1): on a shared
machine whose other processes already use the cores, multi-threaded OpenBLAS spin-waits and
the X'WX products ran 6-25 times slower than single-threaded in our measurements.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # must precede the numpy import
    _threads = sys.argv[sys.argv.index("--blas-threads") + 1] if "--blas-threads" in sys.argv else "1"
    os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines import heap

heap.configure()  # as the levelcare command does, before any thread (importing pipelines does not)

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "stats"))

import simulate


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux


def baseline(frame, definitions) -> tuple[float, int]:
    """statsmodels Logit fits of the same models on the same design (seconds, number of fits)."""
    import polars as pl
    import statsmodels.api as sm

    from pipelines.analysis.comparison_plan import arm_mask, mask_key, plan_tasks
    from pipelines.stats.design import DEFAULT_COVARIATES, build_design, subset, with_column

    in_arm = arm_mask(frame, "iop")
    keep = in_arm | arm_mask(frame, "residential")
    sub = frame.filter(pl.Series(keep))
    a = in_arm[keep].astype(float)
    design = build_design(sub, DEFAULT_COVARIATES, compact=False)  # statsmodels takes dense float64
    t0 = time.perf_counter()
    fits = 0
    groups: dict[str, list] = {}
    for t in plan_tasks(sub, definitions):
        groups.setdefault(mask_key(t.mask), []).append(t)
    for tasks in groups.values():
        mask = tasks[0].mask
        d = design if mask.all() else subset(design, mask)
        am = a[mask]
        sm.Logit(am, d.matrix).fit(disp=0)
        fits += 1
        Xa = with_column(d.matrix, am)
        for t in tasks:
            y = np.nan_to_num(t.y[mask])
            if t.kind == "followup":
                sm.Logit(t.reached[mask].astype(float), Xa).fit(disp=0)
                fits += 1
            else:  # one outcome model per arm (g-computation and AIPW)
                on = am.astype(bool)
                for rows in (on, ~on):
                    sm.Logit(y[rows], d.matrix[rows]).fit(disp=0)
                    fits += 1
    return time.perf_counter() - t0, fits


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_700_000)
    p.add_argument("--definitions", type=int, default=25)
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--multiarm", action="store_true",
                   help="with --arms, also g-computation and AIPW over all the arms (analyze --multiarm-outcome-models)")
    p.add_argument("--arms", default=None,
                   help="comma-separated levels for the multi-arm rows, as analyze passes them (e.g. iop,php,residential)")
    p.add_argument("--blas-threads", default="1", help="OpenBLAS threads (set before numpy loads)")
    args = p.parse_args()

    import polars as pl  # noqa: F401

    from pipelines.analysis.comparisons import compare

    t0 = time.perf_counter()
    frame = simulate.analysis_frame(args.n, args.definitions)
    defs = simulate.definitions(args.definitions)
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, cores {os.cpu_count()}")
    print(
        f"synthetic frame: {frame.height:,} episodes, {len(defs)} definitions ({time.perf_counter() - t0:.1f} s, not counted)"
    )
    t0 = time.perf_counter()
    res = compare(frame, defs, arms=tuple(args.arms.split(",")) if args.arms else None,
                  multiarm_outcomes=args.multiarm)
    total = time.perf_counter() - t0
    n_arm = res.comparisons.filter(res.comparisons["method"] == "crude")["n_arm"].max()
    print(
        f"comparison population: {res.n:,} (iop {n_arm:,}); rows: {res.comparisons.height} comparisons, "
        f"{res.balance.height} balance, {res.diagnostics.height} diagnostics"
    )
    for stage, s in sorted(res.timings.items(), key=lambda kv: -kv[1]):
        print(f"  {stage:24} {s:8.2f} s")
    print(f"compare total            {total:8.2f} s   peak RSS {peak_rss_gib():.2f} GiB")
    if not args.skip_baseline:
        base, fits = baseline(frame, defs)
        print(f"statsmodels Logit, same {fits} fits on in-memory arrays: {base:.2f} s")
        print(f"compare / baseline = {total / base:.2f} (target <= 1.5)   peak RSS {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
