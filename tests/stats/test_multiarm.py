"""g-computation and AIPW with three arms against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import expit

from pipelines.stats.aipw import aipw
from pipelines.stats.design import with_column
from pipelines.stats.gcomp import gcomp
from pipelines.stats.multiarm import multiarm_effects
from pipelines.stats.propensity import fit_multinomial_propensity, fit_propensity

ARMS = ("residential", "iop", "php")


@pytest.fixture(scope="module")
def three_arms():
    rng = np.random.default_rng(3)
    n = 4_000
    x = rng.normal(size=n)
    s = rng.random(n) < 0.4
    X = np.column_stack([np.ones(n), x, s]).astype(float)
    L = np.column_stack([np.zeros(n), 0.3 - 0.5 * x, -0.2 + 0.4 * s])
    P = np.exp(L) / np.exp(L).sum(1, keepdims=True)
    c = (rng.random(n)[:, None] > P.cumsum(1)[:, :-1]).sum(1)
    y = (rng.random(n) < expit(-0.2 + 0.5 * x + 0.3 * (c == 1) - 0.2 * (c == 2) * x)).astype(float)
    return X, c, y


def test_gcomp_three_arms_is_per_arm_statsmodels_models_standardized(three_arms):
    X, c, y = three_arms
    got = multiarm_effects(y, X, c, ARMS, "gcomp")
    fits = [sm.GLM(y[c == k], X[c == k], family=sm.families.Binomial()).fit(tol=1e-12, cov_type="HC0")
            for k in range(3)]
    m = [f.predict(X) for f in fits]
    n = y.size
    for k, arm in ((1, "iop"), (2, "php")):
        rd = got[arm].rd
        assert rd.estimate == pytest.approx(m[k].mean() - m[0].mean(), abs=1e-9)
        # delta method: each arm model's HC0 covariance (disjoint rows: independent) plus the
        # variance of averaging the predicted difference over the sample
        var = (m[k] - m[0]).var() / n
        for j, sign in ((k, 1.0), (0, -1.0)):
            grad = sign * (X * (m[j] * (1 - m[j]))[:, None]).mean(0)
            var += grad @ fits[j].cov_params() @ grad
        assert rd.se == pytest.approx(math.sqrt(var), rel=1e-3)
        assert rd.n_arm == int((c == k).sum()) and rd.n_reference == int((c == 0).sum())


def test_aipw_three_arms_against_its_influence_function(three_arms):
    X, c, y = three_arms
    pm = fit_multinomial_propensity(X, c, ARMS)
    got = multiarm_effects(y, X, c, ARMS, "aipw", propensity=pm)
    e = sm.MNLogit(c, X).fit(disp=0, tol=1e-12).predict(X)
    m = [sm.Logit(y[c == k], X[c == k]).fit(disp=0, tol=1e-12).predict(X) for k in range(3)]
    phi = [m[k] + (c == k) * (y - m[k]) / e[:, k] for k in range(3)]
    for k, arm in ((1, "iop"), (2, "php")):
        d = phi[k] - phi[0]
        assert got[arm].rd.estimate == pytest.approx(d.mean(), abs=1e-7)
        # both models correct: the nuisance terms vanish asymptotically
        assert got[arm].rd.se == pytest.approx(d.std() / math.sqrt(y.size), rel=0.03)


def test_two_arms_reduce_to_the_binary_estimators(three_arms):
    X, c, y = three_arms
    keep = c < 2
    X2, c2, y2 = X[keep], c[keep], y[keep]
    Xa = with_column(X2, c2.astype(float))
    pm = fit_multinomial_propensity(X2, c2, ARMS[:2])
    multi = multiarm_effects(y2, X2, c2, ARMS[:2], "aipw", propensity=pm)["iop"].rd
    binary = aipw(y2, Xa, fit_propensity(X2, c2.astype(float))).rd
    assert (multi.estimate, multi.se) == pytest.approx((binary.estimate, binary.se), rel=1e-7)
    multi = multiarm_effects(y2, X2, c2, ARMS[:2], "gcomp")["iop"].rd
    binary = gcomp(y2, Xa).rd
    assert (multi.estimate, multi.se) == pytest.approx((binary.estimate, binary.se), rel=1e-9)
