"""The variance rule: person-level sandwich with site as a fixed effect unless there are
at least 30 clusters; its standard errors against a bootstrap on data shaped like a program's."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import simulate
from scipy.special import expit

from pipelines.analysis.comparisons import compare
from pipelines.stats.adjusted import estimate, fit_outcome, prepare
from pipelines.stats.design import build_design

SHARES = (0.40, 0.25, 0.12, 0.08, 0.06, 0.05, 0.03, 0.01)  # 8 sites of very different sizes


def _program(n: int, rng: np.random.Generator) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    site = rng.choice(len(SHARES), size=n, p=SHARES)
    sev = rng.normal(size=n)
    shift = np.linspace(-0.5, 0.5, len(SHARES))[site]
    a = rng.random(n) < expit(0.2 - 0.8 * sev + shift)
    y = (rng.random(n) < expit(0.8 - 0.5 * sev + shift + (0.3 - 0.4 * sev) * a)).astype(float)
    frame = pl.DataFrame({"use_days_admit": sev, "site_id": np.char.add("s", site.astype(str))})
    return frame, a, y


def _fits(frame, a, y):
    pop = prepare(build_design(frame, ("use_days_admit", "site_id")), a)
    out = fit_outcome(pop, y)
    return {m: estimate(pop, y, m, outcome=out).rd for m in ("gcomp", "aipw", "iptw_ate")}


def test_person_level_standard_errors_agree_with_a_bootstrap_of_a_small_program():
    # 3,000 episodes at 8 sites (two with ~1-3% of them); site is a fixed effect. The
    # nonparametric bootstrap (resampling people, 200 replicates, the whole estimator refitted)
    # is an independent estimate of each estimator's standard error.
    rng = np.random.default_rng(2026)
    frame, a, y = _program(3_000, rng)
    got = _fits(frame, a, y)
    boot = {m: [] for m in got}
    for _ in range(200):
        i = rng.integers(0, y.size, y.size)
        for m, e in _fits(frame[i], a[i], y[i]).items():
            boot[m].append(e.estimate)
    for m, e in got.items():
        assert e.variance == "HC0 sandwich" and e.df is None
        sd = float(np.std(boot[m], ddof=1))
        # the bootstrap SD of 200 replicates is itself uncertain by ~5%: 15% is ~3 of its SEs
        assert e.se == pytest.approx(sd, rel=0.15), m


def test_rows_say_which_variance_they_used():
    frame = simulate.analysis_frame(6_000, 2, seed=5, n_sites=8)
    defs = simulate.definitions(2)
    few = compare(frame, defs, methods=("crude", "iptw_ate", "aipw"))
    adjusted = few.comparisons.filter(pl.col("method") != "crude", pl.col("estimate").is_not_null())
    assert set(adjusted["variance"]) == {"HC0 sandwich"}
    assert "8 site_id clusters are fewer than the 30" in few.variance
    # the same data with the threshold lowered to 5: cluster-robust, CR2, t(7) quantiles
    many = compare(frame, defs, methods=("crude", "iptw_ate", "aipw"), min_clusters=5)
    adjusted = many.comparisons.filter(pl.col("method") != "crude", pl.col("estimate").is_not_null())
    assert set(adjusted["variance"]) == {"CR2, 8 clusters, t(7)"}
    assert many.variance.startswith("cluster-robust (CR2, t(7) quantiles): 8 site_id clusters")
    # crude rows keep their own small-sample intervals (Newcombe / Katz): no sandwich
    assert few.comparisons.filter(pl.col("method") == "crude")["variance"].null_count() == \
        few.comparisons.filter(pl.col("method") == "crude").height
