"""Adjusted estimators against reference values computed by a second route (results/make_reference.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.stats.adjusted import ADJUSTED_METHODS, estimate, fit_outcome, prepare
from pipelines.stats.design import build_design

RESULTS = Path(__file__).parent / "results"
REF = json.loads((RESULTS / "estimators.json").read_text())
TOL = REF["tolerance"]


@pytest.fixture(scope="module")
def effects():
    df = pl.read_csv(RESULTS / REF["data"])
    design = build_design(df, ("x1", "x2", "x3"))
    a = df["arm"].to_numpy().astype(bool)
    y = df["y"].to_numpy().astype(float)
    pop = prepare(design, a, max_weight=None)  # the references are untruncated
    out = fit_outcome(pop, y)
    return {m: estimate(pop, y, m, outcome=out) for m in ADJUSTED_METHODS}


@pytest.mark.parametrize("method", ADJUSTED_METHODS)
def test_point_estimates_match_closed_forms(effects, method):
    assert effects[method].rd.estimate == pytest.approx(REF["point"][method], abs=TOL["point"])


@pytest.mark.parametrize("method", ["iptw_ate", "iptw_att"])
def test_ipw_sandwich_matches_statsmodels_treatment_effect(effects, method):
    ref = REF["statsmodels_ipw"]
    assert effects[method].rd.estimate == pytest.approx(ref["point"][method], abs=TOL["point"])
    assert effects[method].rd.se == pytest.approx(ref["se"][method], rel=TOL["se_statsmodels"])


def test_gcomp_is_statsmodels_regression_adjustment(effects):
    # one outcome model per arm (statsmodels TreatmentEffect.ra, Stata teffects ra), not one
    # model with shared slopes: point estimate and GMM standard error
    ref = REF["statsmodels_ra"]
    assert effects["gcomp"].rd.estimate == pytest.approx(ref["point"], abs=1e-9)
    assert effects["gcomp"].rd.se == pytest.approx(ref["se"], rel=1e-4)


@pytest.mark.parametrize("method", ["gcomp", "aipw"])
def test_sandwich_close_to_closed_form_variance(effects, method):
    # gcomp: delta method with HC0 coefficients; AIPW: influence function without nuisance terms.
    assert effects[method].rd.se == pytest.approx(REF["se_second_route"][method], rel=TOL["se_closed_form"])


@pytest.mark.parametrize("method", ADJUSTED_METHODS)
def test_sandwich_close_to_bootstrap(effects, method):
    assert effects[method].rd.se == pytest.approx(REF["bootstrap_se"][method], rel=TOL["se_bootstrap"])


def test_rr_is_ratio_of_the_same_arm_risks(effects):
    for e in effects.values():
        assert e.rr.estimate == pytest.approx(e.rd.risk_arm / e.rd.risk_reference)
        assert e.rd.estimate == pytest.approx(e.rd.risk_arm - e.rd.risk_reference)
        assert e.rr.ci_low < e.rr.estimate < e.rr.ci_high


def test_cluster_robust_variance_by_hand():
    # With every person their own cluster, CR2's leverage is 1/n: n/(n-1) times the HC0 variance.
    from pipelines.stats.inference import variance

    rng = np.random.default_rng(0)
    c = rng.normal(size=50)
    assert variance(c, np.arange(50)) == pytest.approx(50 / 49 * np.sum(c**2))
    # Two clusters of 25: leverage 1/2 each, 2 * (sum_1^2 + sum_2^2) (= G/(G-1) when sizes are equal)
    cl = np.repeat([0, 1], 25)
    assert variance(c, cl) == pytest.approx(2 * (c[:25].sum() ** 2 + c[25:].sum() ** 2))


def test_cr2_of_a_mean_worked_by_hand():
    # y = 1 0 1 | 0 0 | 1 1 1 0 in clusters of 3, 2, 4: mean 5/9; cluster sums of y - 5/9 are
    # 1/3, -10/9 and 7/9; CR2 (Bell-McCaffrey) for an intercept-only model scales each by
    # (1 - n_g/n)^-1/2, so Var = (1/81) [ (1/9)/(2/3) + (100/81)/(7/9) + (49/81)/(5/9) ]
    #                          = (1/81) (1/6 + 100/63 + 49/45) = 1791 / 51030.
    from pipelines.stats.inference import variance

    y = np.array([1, 0, 1, 0, 0, 1, 1, 1, 0], dtype=float)
    cl = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    assert variance((y - 5 / 9) / 9, cl) == pytest.approx(1791 / 51030, rel=1e-12)


def _cr2_matrix(y, groups, w, cl):
    """CR2 covariance of WLS of y on the indicators of ``groups`` (no intercept), by its
    definition: V = M sum_g X_g' W_g^1/2 (I - B_g)^-1/2 W_g^1/2 e_g e_g' (...)' M with
    B_g = W_g^1/2 X_g M X_g' W_g^1/2 and M = (X'WX)^-1 (Bell & McCaffrey 2002; the symmetric
    form of clubSandwich), the matrix square root by eigendecomposition."""
    X = np.column_stack([(groups == k).astype(float) for k in (1, 0)])
    M = np.linalg.inv(X.T @ (w[:, None] * X))
    beta = M @ X.T @ (w * y)
    e = y - X @ beta
    meat = np.zeros((2, 2))
    for g in np.unique(cl):
        r = cl == g
        s = np.sqrt(w[r])
        Xg = X[r]
        B = (s[:, None] * Xg) @ M @ (Xg.T * s[None, :])
        vals, vecs = np.linalg.eigh(np.eye(r.sum()) - B)
        A = vecs @ np.diag(vals ** -0.5) @ vecs.T
        u = (Xg.T * s[None, :]) @ A @ (s * e[r])
        meat += np.outer(u, u)
    return beta, M @ meat @ M


def test_cr2_of_a_weighted_difference_matches_the_matrix_definition():
    # Hajek means of two arms with fixed weights (no nuisance model), 31 clusters of unequal
    # sizes: levelcare's CR2 (per-cluster sums scaled by each arm's leverage) against CR2 by its
    # matrix definition; the interval uses t(30) quantiles.
    from scipy import stats

    from pipelines.stats.inference import cluster_codes
    from pipelines.stats.ipw import weighted_effect

    rng = np.random.default_rng(4)
    sizes = rng.integers(3, 40, size=31)
    cl = np.repeat(np.arange(31), sizes)
    n = cl.size
    a = rng.random(n) < 0.4
    w = rng.uniform(0.5, 3.0, n)
    y = (rng.random(n) < 0.3 + 0.2 * a + 0.01 * (cl % 7)).astype(float)
    beta, V = _cr2_matrix(y, a.astype(int), w, cl)
    codes = cluster_codes(cl)
    assert codes is not None  # 31 clusters: at least MIN_CLUSTERS (30)
    eff = weighted_effect(y, a, ~a, w, method="x", target="ate", cluster=codes)
    se = float(np.sqrt(V[0, 0] + V[1, 1] - 2 * V[0, 1]))
    assert eff.rd.estimate == pytest.approx(beta[0] - beta[1], abs=1e-12)
    assert eff.rd.se == pytest.approx(se, rel=1e-9)
    assert eff.rd.df == 30 and eff.rd.variance == "CR2, 31 clusters, t(30)"
    q = stats.t.ppf(0.975, 30)
    assert eff.rd.ci_low == pytest.approx(eff.rd.estimate - q * se, rel=1e-9)
    # and without clusters: HC0, normal quantiles
    hc = weighted_effect(y, a, ~a, w, method="x", target="ate")
    assert hc.rd.df is None and hc.rd.variance == "HC0 sandwich"
    assert hc.rd.ci_high == pytest.approx(hc.rd.estimate + stats.norm.ppf(0.975) * hc.rd.se, rel=1e-12)


def test_few_clusters_get_the_person_level_sandwich():
    from pipelines.stats.inference import MIN_CLUSTERS, cluster_codes

    assert MIN_CLUSTERS == 30
    assert cluster_codes(np.array(["site-1"] * 5)) is None
    assert cluster_codes(np.array([f"s{k}" for k in range(8)] * 3)) is None  # 8 sites: HC0
    assert cluster_codes(np.array([f"s{k:02d}" for k in range(30)])) is not None
    np.testing.assert_array_equal(cluster_codes(np.array(["b", "a", "b"]), min_clusters=2), [1, 0, 1])
    # a single cluster never gives a cluster-robust variance (it would be 0)
    assert cluster_codes(np.array(["a", "a"]), min_clusters=1) is None
