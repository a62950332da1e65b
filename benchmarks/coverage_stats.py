"""Coverage, bias and standard errors of the comparison estimators against known truth.

    uv run --frozen python benchmarks/coverage_stats.py --scenario all --reps 500 --n 2000 --n 20000
        [--seed 1] [--workers 1] [--min-clusters G] [--json PATH]

Each replicate draws a data set from a scenario of tests/stats/simulate.py and runs it through
``pipelines.analysis.comparisons.compare`` as an analysis does (the scenario's covariates, site
as a covariate and as the cluster column when there is one); the rows' own estimate, ci_low,
ci_high and se are read, never recomputed. Scenarios:

* ``confounded``: a small, strongly confounded data set (simulate.confounded).
* ``severity``: the IOP effect changes sign with severity (helps mild, harms severe), true ATE
  about -2.2 pp, confounded by severity.
* ``sites``: 8 sites of 40% to 1% of admissions, site differences in case mix, IOP share,
  outcome and effect; ``site_id`` a fixed-effect covariate (and compare's cluster column).
* ``followup``: a 90-day follow-up outcome, ~30% not reached, reaching dependent on covariates
  and arm (missing at random). ``ipw_followup`` is held to the targets; the complete-case and
  ITT rows (IPTW-ATE) are printed beside it but estimate other things (the ATE among the
  people reached, success *and* reached) and are not held to the ATE; the notes under the table
  give their bias and coverage against what they do estimate.
* ``three_arms``: IOP, PHP, residential. Multinomial IPTW-ATE of IOP and PHP against
  residential (the ATE over everyone), any other multi-arm rows compare() gives (e.g.
  g-computation / AIPW over the three arms, held to the same ATE), and each pair's adjusted
  estimators (on that pair's people: ATE, ATT and ATO of the pair).

Targets (for >= 500 replicates at n = 2,000 and 20,000), for every adjusted
estimator: coverage of the 95% interval in [93%, 97%], |mean bias| < 0.5 pp, mean reported SE
within 10% of the empirical SD of the estimates. Crude rows are shown, never held.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "stats"))

import simulate

SCENARIOS = ("confounded", "severity", "sites", "followup", "three_arms")
ADJUSTED = ("gcomp", "iptw_ate", "iptw_att", "overlap", "aipw")
METHOD_TARGET = {"crude": "ate", "gcomp": "ate", "iptw_ate": "ate", "iptw_att": "att", "overlap": "ato",
                 "aipw": "ate"}  # fmt: skip
COVERAGE_TARGET = (0.93, 0.97)
BIAS_TARGET_PP = 0.5
SE_RATIO_TARGET = 0.10


@dataclass(frozen=True)
class Estimator:
    """One row of the table: which compare() row it reads and what it is held to.

    ``key`` (call, arm, method, missing_data) picks the RD row of compare() call ``call``;
    ``truth`` the (arm, target) of the scenario's truth it is compared with; ``held``: held to
    the targets; ``own``: for rows not held, the truth of what they do estimate."""

    label: str
    key: tuple[int, str, str, str | None]
    truth: tuple[str, str]
    held: bool = True
    own: tuple[str, str] | None = None


def estimators(scenario: str, rows=None) -> tuple[Estimator, ...]:
    """The rows of ``scenario``'s table. With three arms, every method compare() gives over all
    three arms (iptw_ate_multinomial always; whatever other multi-arm estimators the library
    adds, found in ``rows``, compare()'s rows keyed (call, arm, method, missing_data), or in the
    ``labels`` of replicates already run) is held to the ATE over everyone."""
    if scenario == "three_arms":
        return _three_arms(rows or {})
    if scenario in ("confounded", "severity", "sites"):
        return tuple(
            Estimator(m, (0, "iop", m, None), ("iop", METHOD_TARGET[m]), m != "crude")
            for m in ("crude", *ADJUSTED)
        )
    if scenario == "followup":
        return (
            Estimator("ipw_followup", (0, "iop", "ipw_followup", "ipfw"), ("iop", "ate")),
            Estimator("iptw_ate, complete case", (0, "iop", "iptw_ate", "cc"), ("iop", "ate"), False, ("iop", "cc")),
            Estimator("iptw_ate, ITT (unreached = failure)", (0, "iop", "iptw_ate", "itt"), ("iop", "ate"), False,
                      ("iop", "itt")),
        )  # fmt: skip
    raise ValueError(f"unknown scenario {scenario!r}")


MULTIARM_LABEL = " vs residential: "


def _three_arms(found) -> tuple[Estimator, ...]:
    """Multi-arm rows (call 0, methods beyond the pairwise ones) per arm, then each pair's rows.
    ``found``: compare()'s rows keyed (call, arm, method, missing_data), or labels."""
    methods = {"iop": ["iptw_ate_multinomial"], "php": ["iptw_ate_multinomial"]}
    for key in found:
        if isinstance(key, str) and MULTIARM_LABEL in key:
            arm, method = key.split(MULTIARM_LABEL)
        elif isinstance(key, tuple) and key[0] == 0 and key[2] not in ("crude", *ADJUSTED):
            arm, method = key[1], key[2]
        else:
            continue
        if arm in methods and method not in methods[arm]:
            methods[arm].append(method)
    rows = [
        Estimator(f"{a}{MULTIARM_LABEL}{m}", (0, a, m, None), (a, "ate_all"))
        for a, ms in methods.items()
        for m in ms
    ]
    for call, a in enumerate(("iop", "php")):
        rows += [
            Estimator(
                f"{a} vs residential (pair): {m}", (call, a, m, None), (a, METHOD_TARGET[m]), m != "crude"
            )
            for m in ("crude", *ADJUSTED)
        ]
    return tuple(rows)


def truth(scenario: str) -> dict[tuple[str, str], float]:
    if scenario == "confounded":
        t = simulate.truth()
        return {("iop", "ate"): t.ate, ("iop", "att"): t.att, ("iop", "ato"): t.ato}
    return simulate.SCENARIOS[scenario]().truth()


def draw(scenario: str, n: int, rng: np.random.Generator):
    """(frame, definitions, covariates, compare() calls as (arm, arms)) for one replicate."""
    import polars as pl

    if scenario == "confounded":
        frame = simulate.confounded(n, rng)
        frame = frame.with_columns(
            pl.when(pl.col("arm") == 1)
            .then(pl.lit("iop"))
            .otherwise(pl.lit("residential"))
            .alias("level_group")
        )
        return frame, [simulate.Definition("y")], ("x1", "x2", "x3"), [("iop", None)]
    s = simulate.SCENARIOS[scenario]()
    frame = s.draw(n, rng)
    if s.reach is not None:
        # a follow-up interview outcome at 90 days, complete case as its own policy (compare adds
        # the ITT and ipw_followup rows for everyone due the interview)
        defs = [simulate.Definition("y", window_days=90, missing="exclude", followup="interview")]
    else:
        defs = [simulate.Definition("y")]
    if len(s.arms) > 2:
        calls = [("iop", s.arms), ("php", None)]
    else:
        calls = [("iop", None)]
    return frame, defs, s.covariates, calls


def replicate(scenario: str, n: int, seed: np.random.SeedSequence, min_clusters: int | None = None):
    """{label: (estimate, ci_low, ci_high, se, variance label)} of one replicate, and its seconds."""
    from pipelines.analysis.comparisons import compare

    t0 = time.perf_counter()
    frame, defs, covariates, calls = draw(scenario, n, np.random.default_rng(seed))
    extra = {} if min_clusters is None else {"min_clusters": min_clusters}
    rows = {}
    for call, (arm, arms) in enumerate(calls):
        try:
            r = compare(
                frame, defs, arm=arm, reference="residential", arms=arms, covariates=covariates,
                multiarm_outcomes=bool(arms), **extra
            )
        except Exception as exc:  # noqa: BLE001  a crash is a replicate without estimates, reported
            rows[("error", call)] = f"{type(exc).__name__}: {exc}"
            continue
        c = r.comparisons.filter(estimand="rd")
        if "variance" not in c.columns:
            c = c.with_columns(variance=None)
        for d in c.select(
            "arm", "method", "missing_data", "estimate", "ci_low", "ci_high", "se", "variance"
        ).rows():
            rows[(call, *d[:3])] = d[3:]
    out = {}
    for e in estimators(scenario, rows):
        est, lo, hi, se, var = rows.get(e.key, (None,) * 5)
        error = rows.get(("error", e.key[0]))
        out[e.label] = (*(math.nan if v is None else float(v) for v in (est, lo, hi, se)), var, error)
    return out, time.perf_counter() - t0


def _job(args):
    return args[0], args[1], *replicate(*args)


def _seeds(seed: int, scenario: str, n: int, reps: int) -> list[np.random.SeedSequence]:
    """Replicate r of (scenario, n) draws from the same stream however the work is split."""
    return np.random.SeedSequence([seed, SCENARIOS.index(scenario), n]).spawn(reps)


def simulate_all(
    scenarios, ns, reps: int, seed: int, workers: int = 1, min_clusters: int | None = None, progress=None
) -> dict[tuple[str, int], tuple[list[dict], list[float]]]:
    """Every replicate of every (scenario, n): {(scenario, n): (replicate rows, seconds each)}."""
    jobs = [(s, n, ss, min_clusters) for s in scenarios for n in ns for ss in _seeds(seed, s, n, reps)]
    results: dict[tuple[str, int], tuple[list[dict], list[float]]] = {
        (s, n): ([], []) for s in scenarios for n in ns
    }
    if workers <= 1:
        import pipelines.analysis.comparisons  # noqa: F401  (imported before the first replicate's clock)

        done = map(_job, jobs)
    else:
        import multiprocessing as mp

        # spawn, not fork: polars' and the statistics' thread pools do not survive a fork
        pool = mp.get_context("spawn").Pool(workers, initializer=_worker_init)
        done = pool.imap(_job, jobs, chunksize=4)
    try:
        for k, (s, n, out, secs) in enumerate(done, start=1):
            results[(s, n)][0].append(out)
            results[(s, n)][1].append(secs)
            if progress and (k % 50 == 0 or k == len(jobs)):
                progress(f"{k}/{len(jobs)} replicates")
    finally:
        if workers > 1:
            pool.close()
            pool.join()
    return results


def _worker_init() -> None:
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    import pipelines.analysis.comparisons  # noqa: F401  (imported before the first replicate's clock)


def summarize(scenario: str, rows: list[dict]) -> dict[str, dict]:
    """Per estimator: truth, mean, bias, empirical SD, mean SE, SE/SD, coverage, verdict (proportions;
    ``*_pp`` in percentage points)."""
    t = truth(scenario)
    out = {}
    missing = (math.nan,) * 4 + (None, None)
    for e in estimators(scenario, {label: None for r in rows for label in r}):
        got = [r.get(e.label, missing) for r in rows]  # a multi-arm row some replicates lack: not estimable
        a = np.array([g[:4] for g in got], dtype=float)
        variances = sorted({g[4] for g in got if g[4]})
        errors = [g[5] for g in got if g[5]]
        ok = ~np.isnan(a[:, 0])
        a = a[ok]
        tv = t[e.truth]
        s = {
            "label": e.label,
            "truth": tv,
            "held": e.held,
            "reps": len(rows),
            "estimable": int(ok.sum()),
            "variance": "; ".join(variances),
            "errors": len(errors),
            "error": errors[0] if errors else None,
        }
        if a.shape[0] < 2:
            out[e.label] = {**s, "verdict": "FAIL (not estimable)" if e.held else "not held"}
            continue
        sd = float(a[:, 0].std(ddof=1))
        mean_se = float(np.nanmean(a[:, 3])) if not np.isnan(a[:, 3]).all() else math.nan
        s.update(
            mean=float(a[:, 0].mean()),
            bias_pp=float(100 * (a[:, 0].mean() - tv)),
            empirical_se=sd,
            mean_se=mean_se,
            se_ratio=mean_se / sd if sd > 0 else math.nan,
            coverage=float(np.mean((a[:, 1] <= tv) & (tv <= a[:, 2]))),
        )
        if e.own is not None:
            to = t[e.own]
            s.update(own=e.own[1], own_truth=to, own_bias_pp=float(100 * (a[:, 0].mean() - to)),
                     own_coverage=float(np.mean((a[:, 1] <= to) & (to <= a[:, 2]))))  # fmt: skip
        s["verdict"] = verdict(s) if e.held else "not held"
        out[e.label] = s
    return out


def verdict(s: dict) -> str:
    failed = []
    if not COVERAGE_TARGET[0] <= s["coverage"] <= COVERAGE_TARGET[1]:
        failed.append("coverage")
    if not abs(s["bias_pp"]) < BIAS_TARGET_PP:
        failed.append("bias")
    if not abs(s["se_ratio"] - 1) <= SE_RATIO_TARGET:
        failed.append("SE")
    if s["estimable"] < s["reps"]:
        failed.append(f"{s['reps'] - s['estimable']} not estimable")
    return "PASS" if not failed else "FAIL (" + ", ".join(failed) + ")"


def run(reps: int, n: int, seed: int, scenario: str = "confounded", workers: int = 1) -> dict[str, dict]:
    """Summary per estimator of one scenario at one n (tests/stats/test_coverage.py)."""
    rows, _ = simulate_all([scenario], [n], reps, seed, workers)[(scenario, n)]
    return summarize(scenario, rows)


def _pp(x: float | None, digits: int = 2) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def table(summaries: dict[tuple[str, int], dict[str, dict]]) -> str:
    head = ("scenario", "n", "estimator", "truth (pp)", "mean (pp)", "bias (pp)", "emp. SD (pp)",
            "mean SE (pp)", "SE/SD", "coverage", "estimable", "verdict")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (scenario, n), summary in summaries.items():
        for s in summary.values():
            cells = (
                scenario, f"{n:,}", s["label"], _pp(s["truth"]), _pp(s.get("mean")),
                "" if "bias_pp" not in s else f"{s['bias_pp']:+.2f}", _pp(s.get("empirical_se")),
                _pp(s.get("mean_se")), "" if math.isnan(s.get("se_ratio", math.nan)) else f"{s['se_ratio']:.2f}",
                "" if "coverage" not in s else f"{100 * s['coverage']:.1f}%", f"{s['estimable']}/{s['reps']}",
                f"**{s['verdict']}**" if s["verdict"].startswith("FAIL") else s["verdict"],
            )  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes(summaries: dict[tuple[str, int], dict[str, dict]], reps: int) -> list[str]:
    out = []
    variances = sorted(
        {s["variance"] for summary in summaries.values() for s in summary.values() if s["variance"]}
    )
    if variances:
        out.append("Variance of the rows (compare()'s `variance` column): " + " / ".join(variances) + ".")
    mc = math.sqrt(0.95 * 0.05 / reps)
    out.append(
        f"Monte-Carlo SD of a 95% coverage over {reps} replicates: {100 * mc:.2f} pp (93-97% is 95% "
        f"+/- {2 / (100 * mc):.1f} SD); of SE/SD about {1 / math.sqrt(2 * (reps - 1)):.3f}."
    )
    for (scenario, n), summary in summaries.items():
        for s in summary.values():
            if "own" in s:
                out.append(
                    f"{scenario}, n = {n:,}, {s['label']}: not held to the ATE; it estimates the {s['own']} "
                    f"contrast ({_pp(s['own_truth'])} pp): bias {s['own_bias_pp']:+.2f} pp, coverage "
                    f"{100 * s['own_coverage']:.1f}% against that."
                )
    for (scenario, n), summary in summaries.items():
        crashed = {(s["errors"], s["error"]) for s in summary.values() if s["errors"]}
        for count, error in sorted(crashed):
            out.append(
                f"{scenario}, n = {n:,}: compare() raised in {count} replicates (counted not estimable): {error}"
            )
    out.append("Crude rows are unadjusted (shown against the ATE, not held).")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=(*SCENARIOS, "all"), action="append",
                   help="scenario (repeat for several; default all)")  # fmt: skip
    p.add_argument("--reps", type=int, default=500)
    p.add_argument("--n", type=int, action="append", help="sample size (repeat for several; default 2000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="processes (default 1: single-process)")
    p.add_argument("--min-clusters", type=int, default=None,
                   help="compare()'s min_clusters (default: the library's; 2 forces cluster-robust with 8 sites)")  # fmt: skip
    p.add_argument("--json", type=Path, help="also write the summaries here")
    args = p.parse_args()
    scenarios = list(dict.fromkeys(args.scenario or ["all"]))
    scenarios = list(SCENARIOS) if "all" in scenarios else scenarios
    ns = list(dict.fromkeys(args.n or [2000]))

    t0 = time.perf_counter()
    results = simulate_all(scenarios, ns, args.reps, args.seed, args.workers, args.min_clusters,
                           progress=lambda m: print(f"  {m} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr))  # fmt: skip
    wall = time.perf_counter() - t0
    summaries = {key: summarize(key[0], rows) for key, (rows, _) in results.items()}
    print(
        f"{args.reps} replicates per scenario and n, seed {args.seed}, {args.workers} worker(s), {wall:.0f} s"
    )
    print()
    print(table(summaries))
    print()
    for line in notes(summaries, args.reps):
        print(f"* {line}")
    print()
    print("Seconds per replicate (one process; compare() calls included):")
    for (scenario, n), (_, secs) in results.items():
        print(f"  {scenario:11} n = {n:>7,}: {np.mean(secs):.3f} s (median {np.median(secs):.3f})")
    held = [s for summary in summaries.values() for s in summary.values() if s["held"]]
    failed = [s for s in held if s["verdict"] != "PASS"]
    print(f"\n{len(held) - len(failed)} of {len(held)} held rows pass.")
    if args.json:
        payload = {
            "reps": args.reps, "seed": args.seed, "wall_seconds": wall,
            "rows": [{"scenario": k[0], "n": k[1], **s} for k, summary in summaries.items() for s in summary.values()],
            "seconds_per_replicate": {f"{k[0]}:{k[1]}": float(np.mean(v[1])) for k, v in results.items()},
        }  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=1, default=str))


if __name__ == "__main__":
    main()
