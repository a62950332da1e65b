"""Indirect standardization (pipelines.stats.benchmark) against independent implementations
(statsmodels, scipy) and hand arithmetic, and the O/E interval's coverage on program-shaped data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit

from pipelines.stats import benchmark as bm


def _patterns(rng, n, beta, offset=0.0, hetero=0.0):
    """n rows on three categorical covariates (3, 4 and 2 levels), aggregated to patterns:
    (design, successes, trials, true probability of the reference model per pattern)."""
    a = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    b = rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])
    c = rng.choice(2, n, p=[0.6, 0.4])
    X = np.column_stack([np.ones(n), a == 1, a == 2, b == 1, b == 2, b == 3, c == 1]).astype(float)
    eta = X @ beta
    y = rng.random(n) < expit(eta + offset + hetero * rng.standard_normal(n))
    key = a * 8 + b * 2 + c
    keys, inverse = np.unique(key, return_inverse=True)
    trials = np.bincount(inverse)
    succ = np.bincount(inverse, weights=y).astype(int)
    first = np.array([np.flatnonzero(inverse == i)[0] for i in range(len(keys))])
    return X[first], succ, trials, expit(eta[first])


BETA = np.array([-0.2, 0.5, -0.6, 0.3, -0.4, 0.8, -0.5])


def test_reference_fit_matches_statsmodels_binomial_glm():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(1)
    X, s, t, _ = _patterns(rng, 20_000, BETA)
    fit = bm.fit_reference(X, s, t)
    glm = sm.GLM(np.column_stack([s, t - s]), X, family=sm.families.Binomial()).fit()
    assert fit.converged
    np.testing.assert_allclose(fit.params, glm.params, atol=1e-7)
    np.testing.assert_allclose(fit.cov, glm.cov_params(), rtol=1e-5)
    assert fit.rate == pytest.approx(s.sum() / t.sum())


def test_expected_and_its_variance_against_a_parametric_bootstrap():
    """E = sum n p; Var(E) from the coefficients (delta method) agrees with the spread of E over
    refits of the reference model to data drawn from it."""
    rng = np.random.default_rng(2)
    X, s, t, _ = _patterns(rng, 8_000, BETA)
    fit = bm.fit_reference(X, s, t)
    Xp, sp, tp, _ = _patterns(np.random.default_rng(3), 1_500, BETA)
    scored = bm.score(Xp, tp, sp, fit)
    assert scored.expected == pytest.approx(float(tp @ expit(Xp @ fit.params)))
    assert scored.observed == sp.sum() and scored.n == tp.sum()
    p_hat = expit(X @ fit.params)
    draws = []
    for _ in range(300):
        s_b = rng.binomial(t, p_hat)
        draws.append(float(tp @ expit(Xp @ bm.fit_reference(X, s_b, t).params)))
    assert math.sqrt(scored.var_expected) == pytest.approx(np.std(draws, ddof=1), rel=0.15)


def test_offset_solves_the_standardization_equation_and_half_corrects_extremes():
    rng = np.random.default_rng(4)
    X, s, t, _ = _patterns(rng, 10_000, BETA)
    fit = bm.fit_reference(X, s, t)
    Xp, sp, tp, _ = _patterns(rng, 600, BETA, offset=0.4)
    sc = bm.score(Xp, tp, sp, fit)
    d = bm.offset(sc)
    assert float(tp @ expit(Xp @ fit.params + d)) == pytest.approx(sp.sum(), rel=1e-9)
    none = bm.score(Xp, tp, np.zeros_like(sp), fit)
    assert float(tp @ expit(Xp @ fit.params + bm.offset(none))) == pytest.approx(0.5, rel=1e-6)
    r = bm.oe_ratio(none)
    assert r.oe == 0 and r.low == 0 < r.high  # the estimate is inside its own interval
    every = bm.score(Xp, tp, tp, fit)
    r = bm.oe_ratio(every)
    assert r.low < r.high == pytest.approx(tp.sum() / every.expected) and r.oe == r.high


def test_c_statistic_equals_mann_whitney_on_the_rows():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(5)
    p = rng.choice([0.2, 0.35, 0.5, 0.7], 40)
    s = rng.integers(0, 20, 40)
    f = rng.integers(0, 20, 40)
    rows_s = np.repeat(p, s)
    rows_f = np.repeat(p, f)
    u = mannwhitneyu(rows_s, rows_f).statistic
    assert bm.c_statistic(p, s, f) == pytest.approx(u / (len(rows_s) * len(rows_f)), rel=1e-12)
    assert bm.c_statistic(p, s, np.zeros(40)) is None


def test_calibration_against_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(6)
    eta = rng.normal(0, 1, 300)
    t = rng.integers(1, 30, 300)
    s = rng.binomial(t, expit(0.2 + 0.7 * eta))
    cal = bm.calibration(eta, s, t)
    endog = np.column_stack([s, t - s])
    slope = sm.GLM(endog, sm.add_constant(eta), family=sm.families.Binomial()).fit()
    inter = sm.GLM(endog, np.ones((300, 1)), family=sm.families.Binomial(), offset=eta).fit()
    assert cal.slope == pytest.approx(slope.params[1], abs=1e-6)
    assert cal.intercept == pytest.approx(inter.params[0], abs=1e-6)
    assert cal.in_the_large == pytest.approx(s.sum() / t.sum() - (t @ expit(eta)) / t.sum())
    assert [b[0] for b in cal.bins] == list(range(1, 11))
    assert sum(b[1] for b in cal.bins) == t.sum()
    assert all(a[2] <= b[2] for a, b in zip(cal.bins, cal.bins[1:], strict=False))


def test_dersimonian_laird_by_hand():
    # y = (0.1, 0.5, -0.3), v = (0.04, 0.01, 0.02): w = 25, 100, 50; mean = (2.5+50-15)/175
    y, v = np.array([0.1, 0.5, -0.3]), np.array([0.04, 0.01, 0.02])
    mean = 37.5 / 175
    q = 25 * (0.1 - mean) ** 2 + 100 * (0.5 - mean) ** 2 + 50 * (-0.3 - mean) ** 2
    c = 175 - (625 + 10000 + 2500) / 175
    assert bm.dersimonian_laird(y, v) == pytest.approx((q - 2) / c)
    assert bm.dersimonian_laird(np.array([0.1, 0.1]), np.array([0.04, 0.01])) == 0.0


def test_funnel_limits_and_verdicts_by_hand():
    low, high = bm.funnel_limits(np.array([100.0]), 0.4, 1.96)
    half = 1.96 * math.sqrt(100 * 0.6) / 100
    assert low[0] == pytest.approx(1 - half) and high[0] == pytest.approx(1 + half)
    assert bm.verdict(1.02, 1.3) == "better than expected"
    assert bm.verdict(0.7, 0.98) == "worse than expected"
    assert bm.verdict(0.9, 1.1) == "as expected"


def _program_replicate(rng, fit, offsets, sizes, hetero):
    sites = []
    for d, n in zip(offsets, sizes, strict=True):
        X, s, t, p_true = _patterns(rng, n, BETA, offset=d, hetero=hetero)
        sites.append((bm.score(X, t, s, fit), X, t, p_true, d))
    return sites


@pytest.mark.parametrize("hetero", [0.0, 0.8])
def test_oe_interval_covers_the_sites_true_ratio(hetero):
    """Few sites of a few hundred episodes, site effects that differ between people (a person's
    log-odds shift ~ N(site offset, hetero^2)), a national model re-fitted each replicate: the 95%
    interval covers each site's population O/E (its expected successes under its own true model
    over those under the national one) at close to 95%."""
    rng = np.random.default_rng(7 + int(hetero * 10))
    offsets, sizes = [0.5, 0.0, -0.4, 0.2], [150, 300, 500, 900]
    z = rng.standard_normal(200_000)
    hits = total = 0
    for _ in range(150):
        X, s, t, _ = _patterns(rng, 20_000, BETA)
        fit = bm.fit_reference(X, s, t)
        for sc, Xp, tp, _, d in _program_replicate(rng, fit, offsets, sizes, hetero):
            eta = Xp @ BETA
            # population O/E: mean over the person-level shift distribution, by Monte Carlo
            q = expit(eta[:, None] + d + hetero * z[None, :2000]).mean(axis=1) if hetero else expit(eta + d)
            truth = float(tp @ q) / float(tp @ expit(eta))
            r = bm.oe_ratio(sc)
            hits += r.low <= truth <= r.high
            total += 1
    coverage = hits / total
    assert 0.92 <= coverage <= 0.98, coverage


def test_shrinkage_pulls_toward_one_and_never_past_it():
    rng = np.random.default_rng(11)
    X, s, t, _ = _patterns(rng, 30_000, BETA)
    fit = bm.fit_reference(X, s, t)
    sites = [sc for sc, *_ in _program_replicate(rng, fit, [0.6, 0.0, -0.6, 0.0, 0.3], [80, 120, 100, 2000, 60], 0.0)]
    raw = [bm.oe_ratio(sc) for sc in sites]
    shrunk = bm.shrink(sites)
    for r, k in zip(raw, shrunk, strict=True):
        assert abs(math.log(k.oe)) <= abs(math.log(r.oe)) + 1e-12
        assert (k.oe - 1) * (r.oe - 1) >= 0  # same side of 1
        assert k.high - k.low <= r.high - r.low + 1e-12
    # identical sites: tau^2 = 0, every site shrunk to the national rate
    same = [sites[3], sites[3]]
    assert all(k.oe == pytest.approx(1.0) for k in bm.shrink(same))
