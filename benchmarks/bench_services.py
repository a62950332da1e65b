"""What dose, length of stay, cost, cost-effectiveness, family and aftercare add to an analysis.

Target: all of it adds under 30 s at 1.7 million episodes. Measured two ways on
copies of one warehouse:

* end to end: ``levelcare analyze`` and ``levelcare report`` of this checkout against a baseline
  checkout (``--baseline DIR``, e.g. a ``git worktree`` of the commit before the work), each in its
  own process on its own copy of the warehouse;
* the parts in this process: the service tables (SQL aggregates and their disclosure) and the
  adjusted analyses (cost-effectiveness, dose-response, family odds ratios) on the comparison's
  frame, design and propensity model.

    uv run --frozen python benchmarks/bench_services.py --warehouse /tmp/bench17/levelcare.duckdb \\
        [--baseline /tmp/levelcare-base] [--out /tmp/bench-services]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_cli(checkout: Path, warehouse: Path, out: Path, *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipelines", "--warehouse", str(warehouse), *args, "--out", str(out)],
                          cwd=checkout, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: {' '.join(args)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds


def end_to_end(checkout: Path, source: Path, work: Path, name: str) -> dict[str, float]:
    wh = work / f"{name}.duckdb"
    shutil.copy(source, wh)
    out = work / f"{name}-out"
    shutil.rmtree(out, ignore_errors=True)
    analyze = timed_cli(checkout, wh, out, "analyze")
    report = timed_cli(checkout, wh, out, "report")
    return {"analyze": analyze, "report": report}


def parts(source: Path, work: Path) -> dict[str, float]:
    import numpy as np
    import polars as pl

    from pipelines import marts
    from pipelines.analysis import services as svc
    from pipelines.analysis.comparative import statistics_frame
    from pipelines.analysis.comparison_plan import arm_mask
    from pipelines.definitions import registry
    from pipelines.stats.blas import single_blas_thread
    from pipelines.stats.design import DEFAULT_COVARIATES, build_design
    from pipelines.stats.propensity import fit_propensity
    from pipelines.warehouse import connect

    wh = work / "parts.duckdb"
    shutil.copy(source, wh)
    defs = registry.select(registry.load_registry(None), None)
    out: dict[str, float] = {}
    with connect(wh) as con:
        marts.build(con)
        t = time.perf_counter()
        svc.service_tables(con, "", [], "cms", defs)
        out["service tables (SQL + disclosure)"] = time.perf_counter() - t
        t = time.perf_counter()
        svc.family_rates(con, "", [], "cms", [d for d in defs if d.id in svc.SERVICE_DEFINITIONS])
        out["family rates"] = time.perf_counter() - t
        frame = statistics_frame(con, defs, ["iop", "residential"])
    in_arm = arm_mask(frame, "iop")
    in_ref = arm_mask(frame, "residential") & ~in_arm
    cols = [c for c in dict.fromkeys((*DEFAULT_COVARIATES, *svc.SERVICE_DEFINITIONS, *svc.SERVICE_COLUMNS))
            if c in frame.columns]
    sub = frame.select(cols).filter(pl.Series(in_arm | in_ref))
    treated = np.asarray(in_arm[in_arm | in_ref])
    with single_blas_thread():
        design = build_design(sub)
        model = fit_propensity(design.matrix, treated)
        t = time.perf_counter()
        svc.adjusted_services(sub, treated, design, model, defs, "iop", "residential")
        out[f"adjusted services ({sub.height:,} episodes compared)"] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warehouse", type=Path, required=True, help="an ingested warehouse (it is copied, not changed)")
    ap.add_argument("--baseline", type=Path, help="a checkout of levelcare before the service analyses")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench-services"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, seconds in parts(args.warehouse, args.out).items():
        print(f"{name:<55} {seconds:7.1f} s")
    now = end_to_end(ROOT, args.warehouse, args.out, "now")
    print(f"{'analyze (this checkout)':<55} {now['analyze']:7.1f} s")
    print(f"{'report (this checkout)':<55} {now['report']:7.1f} s")
    if args.baseline:
        base = end_to_end(args.baseline, args.warehouse, args.out, "base")
        print(f"{'analyze (baseline)':<55} {base['analyze']:7.1f} s")
        print(f"{'report (baseline)':<55} {base['report']:7.1f} s")
        added = now["analyze"] + now["report"] - base["analyze"] - base["report"]
        print(f"{'added by the service analyses (target < 30 s)':<55} {added:7.1f} s")


if __name__ == "__main__":
    main()
