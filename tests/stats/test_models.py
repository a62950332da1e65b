"""Logistic / multinomial fits, design matrices and propensity diagnostics against statsmodels and hand arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy.optimize import minimize
from scipy.special import expit, logsumexp

from pipelines.stats.adjusted import estimate, prepare
from pipelines.stats.design import build_design, start_from
from pipelines.stats.inference import Nuisance
from pipelines.stats.logistic import fit_logistic, fit_multinomial
from pipelines.stats.propensity import c_statistic, equipoise, fit_propensity, preference_score
from pipelines.stats.results import LogisticFit, NotEstimable


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    n = 3000
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.binomial(1, 0.3, n)])
    y = rng.binomial(1, expit(X @ [-0.4, 0.9, -0.6]))
    codes = np.argmax(X @ rng.normal(size=(3, 3)) + rng.gumbel(size=(n, 3)), axis=1)
    return np.asfortranarray(X), y.astype(float), codes


def test_logistic_matches_statsmodels(data):
    X, y, _ = data
    fit = fit_logistic(X, y)
    ref = sm.Logit(y, X).fit(disp=0, tol=1e-12)
    assert fit.converged
    np.testing.assert_allclose(fit.params, ref.params, atol=1e-7)
    np.testing.assert_allclose(np.sqrt(np.diag(np.linalg.inv(fit.information))), ref.bse, rtol=1e-6)


def test_multinomial_matches_statsmodels(data):
    X, _, codes = data
    fit = fit_multinomial(X, codes, 3)
    ref = sm.MNLogit(codes, X).fit(disp=0, method="newton", tol=1e-12)
    assert fit.converged
    np.testing.assert_allclose(fit.params, np.asarray(ref.params).T, atol=1e-6)
    np.testing.assert_allclose(fit.fitted, ref.predict(X), atol=1e-8)


def test_large_fits_with_a_warm_start_match_statsmodels():
    # Above 200,000 rows both fits start from a strided-subsample fit: the answer must still be
    # the full-data MLE (statsmodels Newton from zero, tol 1e-12, is the second implementation).
    rng = np.random.default_rng(5)
    n = 420_000
    X = np.asfortranarray(np.column_stack([np.ones(n), rng.normal(size=n), rng.binomial(1, 0.2, n),
                                           rng.binomial(1, 0.05, n)]))
    y = rng.binomial(1, expit(X @ [-1.2, 0.5, 0.8, -0.7])).astype(float)
    fit = fit_logistic(X, y)
    ref = sm.Logit(y, X).fit(disp=0, tol=1e-12)
    assert fit.converged
    np.testing.assert_allclose(fit.params, ref.params, atol=1e-7)
    # the information comes from the last Newton iteration, at coefficients one (tiny) step
    # before the final ones: standard errors agree to 1e-4 relative, not to the last digit
    np.testing.assert_allclose(np.sqrt(np.diag(np.linalg.inv(fit.information))), ref.bse, rtol=1e-4)
    codes = np.argmax(X @ rng.normal(size=(4, 3)) + rng.gumbel(size=(n, 3)), axis=1)
    mfit = fit_multinomial(X, codes, 3)
    mref = sm.MNLogit(codes, X).fit(disp=0, method="newton", tol=1e-12)
    assert mfit.converged
    np.testing.assert_allclose(mfit.params, np.asarray(mref.params).T, atol=1e-7)
    np.testing.assert_allclose(mfit.fitted, mref.predict(X), atol=1e-9)
    np.testing.assert_allclose(np.sqrt(np.diag(np.linalg.inv(mfit.information))),
                               np.asarray(mref.bse).T.ravel(), rtol=1e-4)


def test_start_from_places_coefficients_by_column_name():
    # by hand: "b" and the intercept carry over, "c" is new (0), "a" is not in the target
    start = start_from(np.array([0.5, 1.0, 2.0]), ("(intercept)", "a", "b"), ("(intercept)", "b", "c"))
    np.testing.assert_array_equal(start, [0.5, 2.0, 0.0])
    multi = start_from(np.array([[1.0, 2.0], [3.0, 4.0]]), ("x", "y"), ("y", "z"))
    np.testing.assert_array_equal(multi, [[2.0, 0.0], [4.0, 0.0]])


def test_fits_started_from_the_whole_sample_reach_the_subsets_own_mle(data):
    # compare() starts each population's propensity fit from the fit on every row; the answer
    # must be the population's own MLE (statsmodels on the population's rows, from zero)
    X, y, codes = data
    rows = X[:, 1] > -0.5  # a population selected on a covariate, as follow-up populations are
    whole = fit_logistic(X, y)
    fit = fit_logistic(np.asfortranarray(X[rows]), y[rows], start=whole.params)
    ref = sm.Logit(y[rows], X[rows]).fit(disp=0, tol=1e-12)
    assert fit.converged
    np.testing.assert_allclose(fit.params, ref.params, atol=1e-7)
    mwhole = fit_multinomial(X, codes, 3)
    # the subset drops the binary column: the start follows the columns by name
    cols = ("(intercept)", "x", "b")
    Xs = np.asfortranarray(X[rows][:, :2])
    start = start_from(mwhole.params, cols, cols[:2])
    mfit = fit_multinomial(Xs, codes[rows], 3, start=start)
    mref = sm.MNLogit(codes[rows], Xs).fit(disp=0, method="newton", tol=1e-12)
    assert mfit.converged
    np.testing.assert_allclose(mfit.params, np.asarray(mref.params).T, atol=1e-6)


def test_a_start_far_out_on_a_separated_level_does_not_derail_the_fit():
    # A demo's 354-person population (levelcare synth, 3000 records, seed 11) and the start
    # the fit on the whole comparison gave it: levels held there at -30 (absent from a
    # category) have one person here, in category 1, and no reference people. Started at -30,
    # Newton went to -4.7e12 and deviance 5,039. Such starts begin at 0 now: finite
    # coefficients, the fitted probabilities of a cold start, and the infimum of the deviance
    # that scipy's BFGS finds on the likelihood written out here (471.4276; no finite MLE).
    data = np.load(Path(__file__).parent / "results" / "multinomial_separated_start.npz")
    X, codes = np.asfortranarray(data["X"].astype(float)), data["codes"].astype(np.int64)
    started = fit_multinomial(X, codes, 3, start=data["start"])
    cold = fit_multinomial(X, codes, 3)
    assert started.converged and np.abs(started.params).max() <= 30.0
    np.testing.assert_allclose(started.fitted, cold.fitted, atol=1e-8)
    n, p = X.shape
    Y = np.eye(3)[codes]

    def deviance_and_gradient(b):
        eta = np.column_stack([np.zeros(n), X @ b.reshape(2, p).T])
        lse = logsumexp(eta, axis=1)
        P = np.exp(eta - lse[:, None])
        return 2 * float((lse - eta[np.arange(n), codes]).sum()), 2 * ((P - Y)[:, 1:].T @ X).ravel()

    bfgs = minimize(deviance_and_gradient, np.zeros(2 * p), jac=True, method="BFGS", options={"gtol": 1e-8})
    assert started.deviance == pytest.approx(bfgs.fun, abs=1e-4)


def test_the_correction_of_a_singular_information_is_the_minimum_norm_solution():
    # by hand: H = diag(2, 0) (the second coefficient carries no information), G = (4, 3):
    # J = (2, 0); each person's correction is x_i' J r_i
    fit = LogisticFit(params=np.zeros(2), fitted=np.full(3, 0.5), resid=np.array([0.5, -0.5, 0.25]),
                      information=np.diag([2.0, 0.0]), converged=True, iterations=1, deviance=0.0, n=3,
                      method="test")
    X = np.array([[1.0, 0.0], [1.0, 1.0], [3.0, 0.0]])
    np.testing.assert_allclose(Nuisance(X, fit).correction(np.array([4.0, 3.0])), [1.0, -1.0, 1.5])


def test_a_level_without_events_is_held_and_the_rest_is_the_mle_without_it():
    # Site 3 never has the outcome: its coefficient's MLE is -inf. The other coefficients'
    # MLE is then the fit on the rows outside site 3 without its column (statsmodels there).
    rng = np.random.default_rng(8)
    n = 6000
    site = rng.integers(0, 4, n)
    x = rng.normal(size=n)
    y = rng.binomial(1, expit(-0.5 + 0.8 * x + 0.4 * (site == 1)))
    y[site == 3] = 0
    X = np.asfortranarray(np.column_stack([np.ones(n), x, site == 1, site == 2, site == 3]).astype(float))
    fit = fit_logistic(X, y.astype(float))
    keep = site != 3
    ref = sm.Logit(y[keep], X[keep][:, :4]).fit(disp=0, tol=1e-12)
    assert fit.converged and fit.iterations <= 8
    np.testing.assert_allclose(fit.params[:4], ref.params, atol=1e-7)
    np.testing.assert_allclose(fit.fitted[keep], ref.predict(X[keep][:, :4]), atol=1e-9)
    assert fit.params[4] == -30.0 and fit.fitted[~keep].max() < 1e-12
    # (information of the last iteration, as above: agreement to 1e-4 relative)
    np.testing.assert_allclose(np.linalg.inv(fit.information)[:4, :4], np.asarray(ref.cov_params()), rtol=1e-4)


def test_a_category_absent_from_a_level_is_held_and_the_rest_maximizes_the_likelihood():
    # Site 2 has no one in category 2 (a site without a PHP programme): that coefficient's MLE
    # is -inf. The second implementation: scipy's BFGS on the multinomial log-likelihood with
    # that coefficient fixed at -30, the other seven free.
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    rng = np.random.default_rng(4)
    n = 5000
    site = rng.integers(0, 3, n)
    x = rng.normal(size=n)
    X = np.asfortranarray(np.column_stack([np.ones(n), x, site == 1, site == 2]).astype(float))
    codes = np.argmax(X @ np.array([[0, 0, 0], [0.2, 0.6, -0.4], [0, 0.5, 0.3], [0, -0.3, 0.0]])
                      + rng.gumbel(size=(n, 3)), axis=1)
    codes[(site == 2) & (codes == 2)] = 0
    fit = fit_multinomial(X, codes, 3)
    assert fit.converged and fit.iterations <= 10
    assert fit.params[1, 3] == -30.0

    def nll(theta):
        B = np.insert(theta, 7, -30.0).reshape(2, 4)
        eta = np.column_stack([np.zeros(n), X @ B.T])
        return -(eta[np.arange(n), codes] - logsumexp(eta, axis=1)).sum()

    ref = minimize(nll, np.zeros(7), method="BFGS", options={"gtol": 1e-9})
    np.testing.assert_allclose(np.delete(fit.params.ravel(), 7), ref.x, atol=2e-5)
    assert fit.fitted[site == 2, 2].max() < 1e-12


def test_separation_is_not_converged_and_not_estimable():
    x = np.r_[np.zeros(30), np.ones(30)]
    X = np.asfortranarray(np.column_stack([np.ones(60), x]))
    fit = fit_logistic(X, x)  # the covariate predicts the outcome perfectly
    assert not fit.converged
    frame = pl.DataFrame({"x": x > 0})
    pop = prepare(build_design(frame, ("x",)), x.astype(bool))
    eff = estimate(pop, np.r_[np.zeros(15), np.ones(15), np.zeros(15), np.ones(15)], "iptw_ate")
    assert isinstance(eff.rd, NotEstimable) and "propensity" in eff.rd.reason


def test_c_statistic_by_pair_counting():
    rng = np.random.default_rng(3)
    s = rng.integers(0, 5, 60).astype(float)  # many ties
    t = rng.random(60) < 0.4
    pairs = [(1.0 if a > b else 0.5 if a == b else 0.0) for a in s[t] for b in s[~t]]
    assert c_statistic(s, t) == pytest.approx(np.mean(pairs))


def test_preference_score_and_equipoise_by_hand():
    # Walker 2013: logit F = logit e - logit P; with P = 0.2, e = 0.2 gives F = 0.5.
    f = preference_score(np.array([0.2, 0.5, 0.05]), 0.2)
    assert f[0] == pytest.approx(0.5)
    assert f[1] == pytest.approx(1 / (1 + 0.25))  # odds 1 / odds 0.25 = 4 -> F = 0.8
    assert f[2] == pytest.approx((0.05 / 0.95 / 0.25) / (1 + 0.05 / 0.95 / 0.25))
    assert equipoise(np.array([0.29, 0.3, 0.5, 0.7, 0.71])) == pytest.approx(3 / 5)


def test_propensity_model_reports_diagnostics(data):
    X, y, _ = data
    pm = fit_propensity(X, y)
    assert pm.fit.converged and 0.5 < pm.c_statistic < 1
    assert pm.equipoise == pytest.approx(np.mean((pm.preference >= 0.3) & (pm.preference <= 0.7)))


def test_design_one_hot_missing_indicator_and_drops():
    frame = pl.DataFrame({
        "cat": ["a", "b", "a", None, "c", "a", "b", "a", "c", "a", "b", None],
        "num": [1.0, None, 3.0, 5.0, None, 3.0, 2.0, 4.0, 1.0, 6.0, 2.0, 3.0],
        "flag": [True, False, True, True, False, None, False, False, True, True, False, True],
        "const": [1] * 12,
        "empty": pl.Series([None] * 12, dtype=pl.Int64),
    })  # fmt: skip
    d = build_design(frame, ("cat", "num", "flag", "const", "empty", "absent"))
    assert d.references["cat"] == "a"  # most frequent level
    assert set(d.columns[1:4]) == {"cat=b", "cat=c", "cat=(missing)"}
    num = d.matrix[:, d.columns.index("num")]
    fill = (1 + 3 + 5 + 3 + 2 + 4 + 1 + 6 + 2 + 3) / 10
    assert num[1] == pytest.approx(fill) and num[4] == pytest.approx(fill)
    np.testing.assert_array_equal(d.matrix[:, d.columns.index("num__missing")], [0, 1, 0, 0, 1] + [0] * 7)
    reasons = dict(d.dropped)
    assert (
        reasons["const"] == "constant"
        and reasons["empty"] == "all missing"
        and reasons["absent"] == "not in frame"
    )
    # flag: 0/1 with mean fill (6 true of 11 observed) and an indicator for the missing value
    assert d.matrix[5, d.columns.index("flag")] == pytest.approx(6 / 11)
    assert d.matrix[5, d.columns.index("flag__missing")] == 1.0


def test_design_drops_collinear_columns():
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [2.0, 4.0, 6.0, 8.0]})
    d = build_design(frame, ("x", "y"))
    assert d.columns == ("(intercept)", "x") and ("y", "collinear with other columns") in d.dropped


def test_subset_drops_columns_constant_there_and_keeps_gram_exact():
    from pipelines.stats.design import subset

    rng = np.random.default_rng(1)
    n = 500
    frame = pl.DataFrame({"x": rng.normal(size=n), "g": rng.choice(["a", "b", "c"], n)})
    d = build_design(frame, ("x", "g"))
    gone = next(x for x in "abc" if x != d.references["g"])  # a non-reference level
    rows = frame["g"].to_numpy() != gone  # absent from the subset
    s = subset(d, rows)
    assert f"g={gone}" not in s.columns and (f"g={gone}", "constant or collinear in subset") in s.dropped
    np.testing.assert_allclose(s.gram, s.matrix.T @ s.matrix, rtol=1e-10, atol=1e-8)
    np.testing.assert_array_equal(s.matrix[:, s.columns.index("x")], frame["x"].to_numpy()[rows])


def test_the_deviance_is_minus_twice_the_log_likelihood_statsmodels_reports(data):
    X, y, _ = data
    f = np.random.default_rng(2).integers(1, 4, size=y.size).astype(float)
    fit = fit_logistic(X, y)
    weighted = fit_logistic(X, y, freq_weights=f)
    glm = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    glm_f = sm.GLM(y, X, family=sm.families.Binomial(), freq_weights=f).fit()
    assert fit.deviance == pytest.approx(-2 * glm.llf, rel=1e-10)
    assert weighted.deviance == pytest.approx(-2 * glm_f.llf, rel=1e-10)


def test_the_deviance_stays_finite_at_extreme_linear_predictors():
    # log(1 + e^eta) by hand at |eta| = 800, where e^eta overflows: 800 for eta = 800, e^-800 = 0
    # for eta = -800; a row y = 1 at eta = 800 and y = 0 at eta = -800 contributes 0, the others
    # 2 x 800 each
    from pipelines.stats.logistic import _binary_deviance

    eta = np.array([800.0, -800.0, 800.0, -800.0, 0.0])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    assert _binary_deviance(y, eta, None) == pytest.approx(2 * 800 + 2 * 800 + 2 * np.log(2), rel=1e-14)
    f = np.array([1.0, 1.0, 3.0, 0.5, 2.0])
    assert _binary_deviance(y, eta, f) == pytest.approx(3 * 1600 + 0.5 * 1600 + 2 * 2 * np.log(2), rel=1e-14)
