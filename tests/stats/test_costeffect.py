"""Cost-effectiveness (pipelines.stats.costeffect) against hand arithmetic, statsmodels and a known truth.

Every expectation here is computed without the code under test: by hand, with statsmodels
(Logit, GLM Gamma with log link, TreatmentEffect), by a stacked M-estimation sandwich with a
numerical Jacobian, or from the potential-outcome means of a simulation.
"""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy import optimize, stats
from scipy.special import expit

from pipelines.stats.costeffect import METHODS, CostEffect, cost_effectiveness, dominance, fieller_interval
from pipelines.stats.design import build_design
from pipelines.stats.results import NotEstimable

Q95 = stats.norm.ppf(0.975)
NAMES = ("residential", "IOP")


def _gamma_glm(y, X):
    return sm.GLM(y, X, family=sm.families.Gamma(sm.families.links.Log())).fit(tol=1e-13, maxiter=200)


def _confounded(n: int, rng: np.random.Generator, *, cost_arm: float = -0.8, treat_z: float = -1.0):
    """Severity z drives both treatment (sicker people go residential; logit slope ``treat_z``) and cost.

    Cost ~ Gamma(shape 2) with mean exp(9 + cost_arm * arm + 0.5 z + 0.3 x); success
    ~ Bernoulli(expit(0.3 + 0.4 arm - 0.6 z)); x ~ Bernoulli(0.4) shifts treatment and cost.
    """
    z = rng.normal(size=n)
    x = rng.binomial(1, 0.4, n)
    a = rng.random(n) < expit(0.2 + treat_z * z + 0.3 * x)
    mean = np.exp(9.0 + cost_arm * a + 0.5 * z + 0.3 * x)
    cost = rng.gamma(2.0, mean / 2.0)
    eff = (rng.random(n) < expit(0.3 + 0.4 * a - 0.6 * z)).astype(float)
    return z, x, a, cost, eff


def _true_differences(cost_arm: float = -0.8) -> tuple[float, float]:
    """ATE of cost, exactly: E[exp(9 + b + 0.5 z + 0.3 x)] - E[exp(9 + 0.5 z + 0.3 x)]
    = e^9 (e^b - 1) E[e^{0.5 z}] E[e^{0.3 x}], z ~ N(0, 1), x ~ Bernoulli(0.4); ATE of success
    by Gauss-Hermite quadrature over z."""
    mgf = math.exp(0.5**2 / 2) * (0.6 + 0.4 * math.exp(0.3))
    dc = math.exp(9.0) * (math.exp(cost_arm) - 1.0) * mgf
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    de = float(weights @ (expit(0.7 - 0.6 * nodes) - expit(0.3 - 0.6 * nodes)))
    return dc, de


def _design(z, x, compact: bool | None = None):
    return build_design(pl.DataFrame({"z": z, "x": x.astype(bool)}), ("z", "x"), compact=compact)


def _by_method(results) -> dict[str, CostEffect]:
    return {r.method: r for r in results}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2026)
    z, x, a, cost, eff = _confounded(1500, rng)
    X = np.column_stack([np.ones(z.size), z, x])  # the test's own design: intercept, z, x
    res = _by_method(cost_effectiveness(cost, eff, a, _design(z, x), names=NAMES))
    return SimpleNamespace(z=z, x=x, a=a, cost=cost, eff=eff, X=X, res=res)


# 1. crude: hand arithmetic -------------------------------------------------------------------


def test_crude_by_hand():
    # IOP: costs 1200, 800, 3000, 1000 (mean 1500), successes 1, 0, 1, 1 (0.75)
    # residential: costs 5000, 4000, 6500 (mean 15500/3), successes 1, 0, 0 (1/3)
    cost = np.array([1200, 800, 3000, 1000, 5000, 4000, 6500], dtype=float)
    eff = np.array([1, 0, 1, 1, 1, 0, 0], dtype=float)
    a = np.array([True] * 4 + [False] * 3)
    design = build_design(pl.DataFrame({"k": [1.0] * 7}), ("k",))  # constant: intercept only
    res = _by_method(cost_effectiveness(cost, eff, a, design, wtp=(0, 10000), names=NAMES))
    r = res["crude"]
    dc = 1500 - 15500 / 3
    de = 0.75 - 1 / 3
    # Welch: s²/n per arm; deviations IOP -300, -700, 1500, -500; residential -500/3, -3500/3, 4000/3
    var_c = (300**2 + 700**2 + 1500**2 + 500**2) / 3 / 4 + (
        (500 / 3) ** 2 + (3500 / 3) ** 2 + (4000 / 3) ** 2
    ) / 2 / 3
    var_e = (3 * 0.25**2 + 0.75**2) / 3 / 4 + ((2 / 3) ** 2 + 2 * (1 / 3) ** 2) / 2 / 3
    cov = (-300 * 0.25 + 700 * 0.75 + 1500 * 0.25 - 500 * 0.25) / 3 / 4 + (
        -500 / 3 * 2 / 3 + 3500 / 3 / 3 - 4000 / 3 / 3
    ) / 2 / 3
    assert r.cost_difference == pytest.approx(dc, rel=1e-12)
    assert r.effect_difference == pytest.approx(de, rel=1e-12)
    assert (r.cost_ci_low, r.cost_ci_high) == pytest.approx(
        (dc - Q95 * math.sqrt(var_c), dc + Q95 * math.sqrt(var_c)), rel=1e-10
    )
    assert (r.effect_ci_low, r.effect_ci_high) == pytest.approx(
        (de - Q95 * math.sqrt(var_e), de + Q95 * math.sqrt(var_e)), rel=1e-10
    )
    assert r.cost_se == pytest.approx(math.sqrt(var_c), rel=1e-10)
    assert r.cost_effect_correlation == pytest.approx(cov / math.sqrt(var_c * var_e), rel=1e-10)
    assert r.icer == pytest.approx(dc / de, rel=1e-12)  # -8,800 a success
    assert r.icer == pytest.approx(-8800.0, rel=1e-12)
    lam, nmb, lo, hi = r.nmb[1]
    se_nmb = math.sqrt(lam**2 * var_e - 2 * lam * cov + var_c)
    assert lam == 10000
    assert nmb == pytest.approx(10000 * de - dc, rel=1e-12)
    assert (lo, hi) == pytest.approx((nmb - Q95 * se_nmb, nmb + Q95 * se_nmb), rel=1e-10)
    assert r.ceac[1] == pytest.approx((10000, stats.norm.cdf(nmb / se_nmb)), rel=1e-10)
    assert r.ceac[0] == pytest.approx((0, stats.norm.cdf(-dc / math.sqrt(var_c))), rel=1e-10)
    assert r.ci_method == "welch-normal" and r.cost_model == "none"
    assert (r.n_arm, r.n_reference, r.n_excluded) == (4, 3, 0)
    # de / se_e = 1.0 < 1.96: the success difference's interval includes 0, Fieller is unbounded
    assert r.icer_ci_low is None and r.icer_ci_high is None
    assert "unstable" in r.icer_note and "Fieller's interval is unbounded" in r.icer_note
    assert r.dominance.startswith("IOP costs less than residential and is no worse")
    # with the intercept alone, IPTW and AIPW (a Gamma GLM of the mean) reproduce the arm means
    for m in ("iptw_ate", "aipw"):
        assert res[m].cost_difference == pytest.approx(dc, rel=1e-9)
        assert res[m].effect_difference == pytest.approx(de, rel=1e-9)
    assert res["aipw"].cost_model == "gamma-log-glm"


# 2. AIPW against statsmodels ------------------------------------------------------------------


def test_aipw_matches_statsmodels(data):
    a, cost, eff, X, res = (data.a, data.cost, data.eff, data.X, data.res)
    e = sm.Logit(a.astype(float), X).fit(disp=0, tol=1e-12).predict(X)
    m1 = _gamma_glm(cost[a], X[a]).predict(X)
    m0 = _gamma_glm(cost[~a], X[~a]).predict(X)
    mu1 = np.mean(m1 + a * (cost - m1) / e)
    mu0 = np.mean(m0 + (~a) * (cost - m0) / (1 - e))
    r = res["aipw"]
    assert r.cost_arm == pytest.approx(mu1, rel=1e-6)
    assert r.cost_reference == pytest.approx(mu0, rel=1e-6)
    assert r.cost_difference == pytest.approx(mu1 - mu0, rel=1e-6)
    p1 = sm.Logit(eff[a], X[a]).fit(disp=0, tol=1e-12).predict(X)
    p0 = sm.Logit(eff[~a], X[~a]).fit(disp=0, tol=1e-12).predict(X)
    de = np.mean(p1 + a * (eff - p1) / e) - np.mean(p0 + (~a) * (eff - p0) / (1 - e))
    assert r.effect_difference == pytest.approx(de, rel=1e-6)
    assert r.icer == pytest.approx((mu1 - mu0) / de, rel=1e-6)


def _stacked_sandwich_se(cost, a, X) -> float:
    """SE of the AIPW cost difference from the stacked estimating equations (propensity score
    equations, each arm's Gamma log-link equations, the two AIPW means), with the Jacobian by
    central differences: A^-1 B A^-T / n."""
    n, p = X.shape
    af = a.astype(float)

    def psi(theta):
        beta, g1, g0, mu1, mu0 = theta[:p], theta[p : 2 * p], theta[2 * p : 3 * p], theta[-2], theta[-1]
        e = expit(X @ beta)
        m1, m0 = np.exp(X @ g1), np.exp(X @ g0)
        return np.column_stack(
            [
                X * (af - e)[:, None],
                X * (af * (cost - m1) / m1)[:, None],
                X * ((1 - af) * (cost - m0) / m0)[:, None],
                m1 + af * (cost - m1) / e - mu1,
                m0 + (1 - af) * (cost - m0) / (1 - e) - mu0,
            ]
        )

    beta = sm.Logit(af, X).fit(disp=0, tol=1e-12).params
    g1, g0 = _gamma_glm(cost[a], X[a]).params, _gamma_glm(cost[~a], X[~a]).params
    e = expit(X @ beta)
    m1, m0 = np.exp(X @ g1), np.exp(X @ g0)
    theta = np.concatenate(
        [beta, g1, g0, [np.mean(m1 + af * (cost - m1) / e), np.mean(m0 + (1 - af) * (cost - m0) / (1 - e))]]
    )
    k = theta.size
    J = np.empty((k, k))
    for j in range(k):
        h = 1e-6 * max(1.0, abs(theta[j]))
        up, dn = theta.copy(), theta.copy()
        up[j] += h
        dn[j] -= h
        J[:, j] = (psi(up).mean(axis=0) - psi(dn).mean(axis=0)) / (2 * h)
    P = psi(theta)
    B = P.T @ P / n
    Ainv = np.linalg.inv(J)
    V = Ainv @ B @ Ainv.T / n
    c = np.zeros(k)
    c[-2], c[-1] = 1.0, -1.0
    return float(math.sqrt(c @ V @ c))


def test_aipw_cost_se_matches_stacked_sandwich(data):
    # the module's bread for the cost models is X'X (expected information), the stacked
    # sandwich's the observed one: the same to O(n^-1/2) of the (small) cost-model term
    a, cost, X, res = (data.a, data.cost, data.X, data.res)
    assert res["aipw"].cost_se == pytest.approx(_stacked_sandwich_se(cost, a, X), rel=0.01)


# 3. IPTW against a hand Hájek mean ------------------------------------------------------------


def test_iptw_is_hajek_mean_with_statsmodels_propensity():
    z, x, a, cost, eff = _confounded(1500, np.random.default_rng(12), treat_z=-0.5)
    X = np.column_stack([np.ones(z.size), z, x])
    r = _by_method(cost_effectiveness(cost, eff, a, _design(z, x), names=NAMES))["iptw_ate"]
    e = sm.Logit(a.astype(float), X).fit(disp=0, tol=1e-12).predict(X)
    stabilized = np.where(a, a.mean() / e, (1 - a.mean()) / (1 - e))
    assert stabilized.max() < 10  # no weight reaches the cap of 10: plain 1/e and 1/(1-e) weights
    w1, w0 = a / e, (~a) / (1 - e)
    for y, got in ((cost, r.cost_difference), (eff, r.effect_difference)):
        assert got == pytest.approx((w1 @ y) / w1.sum() - (w0 @ y) / w0.sum(), rel=1e-6)
    assert r.ci_method == "influence-function-sandwich" and r.cost_model == "none"
    # the standard error with the propensity model's estimation: statsmodels' GMM
    from statsmodels.treatment.treatment_effects import TreatmentEffect

    te = TreatmentEffect(
        sm.OLS(cost, X), a.astype(int), results_select=sm.Logit(a.astype(float), X).fit(disp=0, tol=1e-12)
    )
    sm_res = te.ipw(return_results=True)
    assert r.cost_difference == pytest.approx(float(sm_res.effect[0]), rel=1e-6)
    assert r.cost_se == pytest.approx(float(sm_res.sd[0]), rel=1e-4)


def test_iptw_truncates_stabilized_weights_at_ten(data):
    a, cost, X, res = (data.a, data.cost, data.X, data.res)
    e = sm.Logit(a.astype(float), X).fit(disp=0, tol=1e-12).predict(X)
    w = np.minimum(np.where(a, a.mean() / e, (1 - a.mean()) / (1 - e)), 10.0)
    assert (w == 10.0).sum() > 0  # strong confounding: some weights are capped
    w1, w0 = np.where(a, w, 0.0), np.where(a, 0.0, w)
    r = res["iptw_ate"]
    assert r.cost_difference == pytest.approx((w1 @ cost) / w1.sum() - (w0 @ cost) / w0.sum(), rel=1e-6)
    assert f"{(w == 10.0).mean():.2%} of weights truncated at 10" in r.note


# 4. known truth: bias of crude, coverage of AIPW --------------------------------------------


def test_known_truth_crude_biased_aipw_covers():
    dc_true, de_true = _true_differences()
    z, x, a, cost, eff = _confounded(20_000, np.random.default_rng(11))
    res = _by_method(cost_effectiveness(cost, eff, a, _design(z, x), names=NAMES))
    crude, aipw = res["crude"], res["aipw"]
    # sicker people (higher cost) go residential: crude exaggerates IOP's saving
    assert crude.cost_ci_high < dc_true
    assert aipw.cost_ci_low < dc_true < aipw.cost_ci_high
    assert aipw.effect_ci_low < de_true < aipw.effect_ci_high
    assert res["iptw_ate"].cost_ci_low < dc_true < res["iptw_ate"].cost_ci_high
    assert aipw.dominance == "IOP costs less than residential and is more effective (dominant)"


def test_aipw_coverage_on_replicates():
    dc_true, de_true = _true_differences()
    rng = np.random.default_rng(7)
    covered_c = covered_e = 0
    reps = 100
    for _ in range(reps):
        z, x, a, cost, eff = _confounded(2000, rng)
        r = cost_effectiveness(cost, eff, a, _design(z, x), wtp=(10000,))[2]
        assert r.method == "aipw"
        covered_c += r.cost_ci_low < dc_true < r.cost_ci_high
        covered_e += r.effect_ci_low < de_true < r.effect_ci_high
    assert 0.88 <= covered_c / reps <= 0.99
    assert 0.88 <= covered_e / reps <= 0.99


# 5. Fieller -----------------------------------------------------------------------------------


def test_fieller_bounded_by_hand():
    dc, de, vc, ve, cov = 1000.0, 0.1, 200.0**2, 0.03**2, 2.0

    def excess(r):  # (dc - r de)² - q² var(dc - r de): <= 0 inside the interval
        return (dc - r * de) ** 2 - Q95**2 * (vc - 2 * r * cov + r * r * ve)

    est = dc / de
    lo = optimize.brentq(excess, -1e6, est)
    hi = optimize.brentq(excess, est, 1e6)
    got = fieller_interval(dc, de, vc, ve, cov)
    assert got[0] == pytest.approx(lo, rel=1e-9) and got[1] == pytest.approx(hi, rel=1e-9)
    assert got[2] is None
    # the closed form of Willan & O'Brien (1996) with the same numbers
    a_, b_, c_ = de**2 - Q95**2 * ve, dc * de - Q95**2 * cov, dc**2 - Q95**2 * vc
    assert got[0] == pytest.approx((b_ - math.sqrt(b_**2 - a_ * c_)) / a_, rel=1e-12)
    # the interval is not symmetric about the ICER (a Wald interval would be)
    assert hi - est > est - lo


def test_fieller_unbounded_cases():
    # de / se_e = 0.02 / 0.03 < 1.96: the effect is not distinguishable from 0
    lo, hi, note = fieller_interval(1000.0, 0.02, 200.0**2, 0.03**2, 0.0)
    assert lo is None and hi is None
    assert note.startswith("Fieller's interval is unbounded") and "half-lines" in note
    # the cost difference is not distinguishable from 0 either: the whole line
    lo, hi, note = fieller_interval(100.0, 0.02, 200.0**2, 0.03**2, 0.0)
    assert lo is None and hi is None and note.endswith("the whole line")


# 6. dominance words ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cost_ci, effect_ci, icer, words",
    [
        (
            (-900, -100),
            (0.02, 0.10),
            -8000.0,
            "IOP costs less than residential and is more effective (dominant)",
        ),
        (
            (100, 900),
            (-0.10, -0.02),
            -8000.0,
            "IOP costs more than residential and is less effective (dominated)",
        ),
        ((-900, -100), (-0.03, 0.05), -50000.0, "IOP costs less than residential and is no worse"),
        (
            (100, 900),
            (0.02, 0.10),
            8800.0,
            "IOP costs more than residential and is more effective: each extra success costs $8,800",
        ),
        (
            (-900, -100),
            (-0.10, -0.02),
            12500.0,
            "IOP costs less than residential and is less effective: each success given up saves $12,500",
        ),
        ((100, 900), (-0.03, 0.05), 50000.0, "IOP costs more than residential and is no better"),
        (
            (-100, 900),
            (0.02, 0.10),
            8000.0,
            "IOP is more effective than residential at no detectable difference",
        ),
        ((-100, 900), (-0.03, 0.05), 8000.0, "inconclusive"),
    ],
)
def test_dominance_words(cost_ci, effect_ci, icer, words):
    assert dominance(cost_ci, effect_ci, icer, NAMES).startswith(words)


# 7. not estimable -----------------------------------------------------------------------------


@pytest.mark.parametrize("n_arm", [0, 1])
def test_not_estimable_with_fewer_than_two_in_an_arm(n_arm):
    rng = np.random.default_rng(3)
    n = 40
    z = rng.normal(size=n)
    a = np.zeros(n, dtype=bool)
    a[:n_arm] = True
    cost = rng.gamma(2.0, 5000.0, n)
    eff = rng.binomial(1, 0.5, n).astype(float)
    out = cost_effectiveness(cost, eff, a, _design(z, z > 0), names=NAMES)
    assert [r.method for r in out] == list(METHODS)
    assert all(isinstance(r, NotEstimable) for r in out)
    assert "IOP has" in out[0].reason and out[0].n == n


def test_not_estimable_when_unknown_costs_leave_one_row():
    rng = np.random.default_rng(4)
    n = 40
    z = rng.normal(size=n)
    a = np.arange(n) < 3
    cost = rng.gamma(2.0, 5000.0, n)
    cost[:2] = np.nan  # two of the three IOP costs unknown
    eff = rng.binomial(1, 0.5, n).astype(float)
    out = cost_effectiveness(cost, eff, a, _design(z, z > 0), names=NAMES)
    assert all(isinstance(r, NotEstimable) for r in out)
    assert out[0].n == n - 2


# missing values, the propensity model, bootstrap, clusters, compact designs -----------------


def test_unknown_cost_and_effect_rows_left_out(data):
    z, x, a, cost, eff = (data.z, data.x, data.a, data.cost, data.eff)
    cost2, eff2 = cost.copy(), eff.copy()
    cost2[::10] = np.nan
    eff2[1::25] = np.nan
    used = ~np.isnan(cost2) & ~np.isnan(eff2)
    from pipelines.stats.propensity import fit_propensity

    design = _design(z, x)
    pm = fit_propensity(design.matrix, a.astype(float), ("IOP", "residential"))
    with_pm = _by_method(cost_effectiveness(cost2, eff2, a, design, propensity=pm, names=NAMES))
    on_rows = _by_method(
        cost_effectiveness(cost[used], eff[used], a[used], _design(z[used], x[used]), names=NAMES)
    )
    for m in METHODS:
        r = with_pm[m]
        assert r.n_excluded == int((~used).sum())
        assert r.n_arm + r.n_reference == int(used.sum())
        assert "150 rows with unknown cost and 60 with the success not evaluable" in r.note
        # the propensity model is refitted on the rows used: the same as the data of those rows
        assert r.cost_difference == pytest.approx(on_rows[m].cost_difference, rel=1e-7)
        assert r.cost_ci_low == pytest.approx(on_rows[m].cost_ci_low, rel=1e-6)
    assert "propensity model refitted" in with_pm["aipw"].note
    # a propensity model on all rows is used as it is when no row is left out
    given = _by_method(cost_effectiveness(cost, eff, a, design, propensity=pm, names=NAMES))
    assert given["aipw"].cost_difference == pytest.approx(data.res["aipw"].cost_difference, rel=1e-8)


def test_bootstrap_percentile_intervals(data):
    z, x, a, cost, eff, res = (data.z, data.x, data.a, data.cost, data.eff, data.res)
    out = _by_method(cost_effectiveness(cost, eff, a, _design(z, x), bootstrap=40, seed=5, names=NAMES))
    again = _by_method(cost_effectiveness(cost, eff, a, _design(z, x), bootstrap=40, seed=5, names=NAMES))
    for m in METHODS:
        r = out[m]
        assert r.ci_method == "bootstrap-percentile-B=40"
        assert r.cost_difference == res[m].cost_difference  # the point estimates are the data's
        assert r.cost_ci_low < r.cost_difference < r.cost_ci_high
        assert r.cost_se == pytest.approx(res[m].cost_se, rel=0.5)  # 40 replicates: a rough check
        assert all(0.0 <= p <= 1.0 for _, p in r.ceac)
        assert (r.cost_ci_low, r.effect_ci_high, r.ceac) == (
            again[m].cost_ci_low,
            again[m].effect_ci_high,
            again[m].ceac,
        )
    # NMB at wtp 0 is -ΔC: its percentile interval is the cost interval reversed
    r = out["aipw"]
    assert r.nmb[0][2:] == pytest.approx((-r.cost_ci_high, -r.cost_ci_low), rel=1e-9)


def test_cluster_robust_with_many_clusters_only(data):
    z, x, a, cost, eff, res = (data.z, data.x, data.a, data.cost, data.eff, data.res)
    rng = np.random.default_rng(9)
    many = rng.integers(0, 40, z.size)
    r = _by_method(cost_effectiveness(cost, eff, a, _design(z, x), cluster=many, names=NAMES))["aipw"]
    assert r.ci_method == "influence-function-cr2-40-clusters"
    assert r.cost_difference == res["aipw"].cost_difference
    few = _by_method(cost_effectiveness(cost, eff, a, _design(z, x), cluster=many % 5, names=NAMES))["aipw"]
    assert few.ci_method == "influence-function-sandwich" and "5 clusters" in few.note
    assert few.cost_ci_low == res["aipw"].cost_ci_low


def test_compact_design_gives_the_dense_results(data):
    z, x, a, cost, eff, res = (data.z, data.x, data.a, data.cost, data.eff, data.res)
    compact = _by_method(cost_effectiveness(cost, eff, a, _design(z, x, compact=True), names=NAMES))
    for m in METHODS:
        assert compact[m].cost_difference == pytest.approx(res[m].cost_difference, rel=1e-8)
        assert compact[m].effect_ci_high == pytest.approx(res[m].effect_ci_high, rel=1e-8)
        assert compact[m].icer_ci_low == pytest.approx(res[m].icer_ci_low, rel=1e-7)


def test_negative_costs_make_only_the_gamma_model_not_estimable(data):
    z, x, a, cost, eff = (data.z, data.x, data.a, data.cost, data.eff)
    out = _by_method(cost_effectiveness(np.where(np.arange(z.size) == 0, -50.0, cost), eff, a, _design(z, x)))
    assert isinstance(out["aipw"], NotEstimable) and "negative" in out["aipw"].reason
    assert isinstance(out["crude"], CostEffect) and isinstance(out["iptw_ate"], CostEffect)


def test_results_are_frozen(data):
    r = data.res["aipw"]
    with pytest.raises(AttributeError):
        r.icer = 0.0  # type: ignore[misc]
    assert replace(r, note="x").note == "x"
