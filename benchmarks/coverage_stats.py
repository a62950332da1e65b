"""Coverage and bias of the estimators against known truth (tests/stats/simulate.py).

    uv run --frozen python benchmarks/coverage_stats.py [--reps 200] [--n 2000] [--seed 1]

Prints, per estimator, the mean estimate, the true value of its estimand, the bias (in
percentage points), the empirical standard error, the mean sandwich standard error and
the share of 95% intervals that cover the truth.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "stats"))

import simulate

METHODS = ("crude", "gcomp", "iptw_ate", "iptw_att", "overlap", "aipw")
TARGET = {
    "crude": "ate",
    "gcomp": "ate",
    "iptw_ate": "ate",
    "iptw_att": "att",
    "overlap": "ato",
    "aipw": "ate",
}


def replicate(n: int, rng: np.random.Generator) -> dict[str, tuple[float, float, float, float]]:
    """(estimate, ci_low, ci_high, se) per method for one simulated data set."""
    from pipelines.stats.adjusted import ADJUSTED_METHODS, estimate, fit_outcome, prepare
    from pipelines.stats.design import build_design
    from pipelines.stats.proportions import risk_difference

    df = simulate.confounded(n, rng)
    a = df["arm"].to_numpy().astype(bool)
    y = df["y"].to_numpy().astype(float)
    out = {}
    c = risk_difference(int(y[a].sum()), int(a.sum()), int(y[~a].sum()), int((~a).sum()))
    out["crude"] = (c.estimate, c.ci_low, c.ci_high, float("nan"))
    pop = prepare(build_design(df, ("x1", "x2", "x3")), a)
    fit = fit_outcome(pop, y)
    for m in ADJUSTED_METHODS:
        e = estimate(pop, y, m, outcome=fit).rd
        out[m] = (e.estimate, e.ci_low, e.ci_high, e.se)
    return out


def run(reps: int, n: int, seed: int) -> dict[str, dict[str, float]]:
    truth = simulate.truth()
    rng = np.random.default_rng(seed)
    rows = [replicate(n, rng) for _ in range(reps)]
    summary = {}
    for m in METHODS:
        est = np.array([r[m] for r in rows])
        t = getattr(truth, TARGET[m])
        summary[m] = {
            "truth": t,
            "mean": float(est[:, 0].mean()),
            "bias_pp": float(100 * (est[:, 0].mean() - t)),
            "empirical_se": float(est[:, 0].std(ddof=1)),
            "mean_se": float(np.nanmean(est[:, 3])) if m != "crude" else float("nan"),
            "coverage": float(np.mean((est[:, 1] <= t) & (t <= est[:, 2]))),
        }
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    t0 = time.perf_counter()
    s = run(args.reps, args.n, args.seed)
    print(f"{args.reps} replicates of n = {args.n} ({time.perf_counter() - t0:.1f} s)")
    print(
        f"{'method':10} {'truth':>8} {'mean':>8} {'bias pp':>8} {'emp se':>8} {'mean se':>8} {'coverage':>9}"
    )
    for m, r in s.items():
        print(
            f"{m:10} {r['truth']:8.4f} {r['mean']:8.4f} {r['bias_pp']:8.2f} {r['empirical_se']:8.4f}"
            f" {r['mean_se']:8.4f} {r['coverage']:9.3f}"
        )


if __name__ == "__main__":
    main()
