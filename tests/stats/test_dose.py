"""Dose–response (pipelines.stats.dose) against hand arithmetic, patsy, statsmodels and known truth.

Expectations come from outside the code under test: the spline at hand-computed points and
patsy's natural cubic spline basis (``cr``), statsmodels' ``Logit`` (HC0 covariance, score and
Hessian) for the slope, the Wald test and the standardized mean's standard error, and
simulations whose true log odds ratio per hour and standardized probabilities are known.
"""

from __future__ import annotations

import math

import numpy as np
import patsy
import polars as pl
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit

from pipelines.stats.design import build_design
from pipelines.stats.dose import (
    BandShares,
    DoseResponse,
    band_shares,
    default_knots,
    dose_response,
    rcs_basis,
)
from pipelines.stats.results import NotEstimable


def _frame(n: int, rng: np.random.Generator) -> pl.DataFrame:
    return pl.DataFrame({
        "z": rng.normal(size=n),
        "payer": rng.choice(["medicaid", "commercial", "self"], size=n, p=[0.5, 0.3, 0.2]),
    })  # fmt: skip


def _linear_data(n: int, seed: int):
    """logit P(y) = -0.5 + 0.8 z + 0.06 (hours - 14), hours ~ U(9, 19)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    hours = rng.uniform(9, 19, n)
    y = rng.binomial(1, expit(-0.5 + 0.8 * z + 0.06 * (hours - 14))).astype(float)
    return y, hours, z


def tilted_hours(y: np.ndarray, beta: float, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    """hours | y = 0 ~ U(lo, hi); hours | y = 1 has density proportional to exp(beta h) on [lo, hi]
    (inverse CDF). By Bayes, logit P(y = 1 | hours, z) = logit P(y = 1 | z) + beta hours + const."""
    u = rng.uniform(size=y.size)
    tilted = lo + np.log1p(u * math.expm1(beta * (hi - lo))) / beta
    return np.where(y == 1, tilted, lo + u * (hi - lo))


# -- 1. the spline basis ------------------------------------------------------------------------


def test_rcs_basis_by_hand():
    # knots 10, 14, 18: (x-10)+^3 - (x-14)+^3 (18-10)/(18-14) + (x-18)+^3 (14-10)/(18-14), / 8^2
    x = np.array([8.0, 12.0, 16.0, 20.0, 22.0, 24.0])
    expected = np.array([0.0, 8.0, 216.0 - 8.0 * 2, 1000.0 - 216.0 * 2 + 8.0, 1728.0 - 512.0 * 2 + 64.0,
                         2744.0 - 1000.0 * 2 + 216.0]) / 64.0
    B = rcs_basis(x, [10, 14, 18])
    assert B.shape == (6, 2)
    np.testing.assert_allclose(B[:, 0], x)
    np.testing.assert_allclose(B[:, 1], expected, rtol=0, atol=1e-12)
    # linear beyond the last knot: 9, 12, 15 at 20, 22, 24
    np.testing.assert_allclose(B[3:, 1], [9.0, 12.0, 15.0], atol=1e-12)


def test_rcs_basis_four_knots_by_hand():
    # knots 0, 1, 2, 4 at x = 3: term 1 = 3^3 - 1^3 (4-0)/(4-2) = 25, term 2 = 2^3 - 1^3 (4-1)/(4-2)
    # = 6.5; both / (4-0)^2
    B = rcs_basis(np.array([3.0]), [0, 1, 2, 4])
    np.testing.assert_allclose(B[0], [3.0, 25.0 / 16, 6.5 / 16], atol=1e-12)


def test_rcs_basis_spans_patsy_natural_spline():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(5, 25, 400), [10.0, 14.0, 18.0]])  # beyond the outer knots too
    ours = np.column_stack([np.ones(x.size), rcs_basis(x, [10, 14, 18])])
    cr = np.asarray(patsy.dmatrix("cr(x, knots=(14,), lower_bound=10, upper_bound=18) - 1", {"x": x}))
    # each basis is an exact linear combination of the other (the same 3-dimensional space)
    for a, b in ((ours, cr), (cr, ours)):
        coef = np.linalg.lstsq(a, b, rcond=None)[0]
        np.testing.assert_allclose(a @ coef, b, atol=1e-9)
    # hence the same fitted values of a logistic model
    y = rng.binomial(1, expit(-1 + 0.3 * np.sin(x / 3))).astype(float)
    f1 = sm.Logit(y, ours).fit(disp=0, tol=1e-12).predict()
    f2 = sm.Logit(y, cr).fit(disp=0, tol=1e-12).predict()
    np.testing.assert_allclose(f1, f2, atol=1e-8)


def test_rcs_basis_rejects_bad_knots():
    with pytest.raises(ValueError):
        rcs_basis(np.arange(5.0), [1, 2])
    with pytest.raises(ValueError):
        rcs_basis(np.arange(5.0), [1, 3, 3])


# -- 2. against statsmodels ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(11)
    n = 3000
    frame = _frame(n, rng)
    z = frame["z"].to_numpy()
    hours = np.round(rng.uniform(6, 22, n) + 1.5 * z, 1)
    lin = -0.4 + 0.7 * z + 0.05 * (hours - 14) - 0.03 * np.maximum(hours - 16, 0) ** 2
    y = rng.binomial(1, expit(lin + 0.4 * (frame["payer"].to_numpy() == "self"))).astype(float)
    design = build_design(frame, ["z", "payer"], compact=False)
    return y, hours, design, rng.integers(0, 40, n)


def test_slope_matches_statsmodels_hc0(small):
    y, hours, design, _ = small
    r = dose_response(y, hours, design)
    assert isinstance(r, DoseResponse)
    X = np.column_stack([np.asarray(design.matrix), hours])
    ref = sm.Logit(y, X).fit(disp=0, method="newton", tol=1e-12, maxiter=100, cov_type="HC0")
    assert r.log_odds_per_hour == pytest.approx(ref.params[-1], rel=1e-6, abs=1e-9)
    assert r.log_odds_per_hour_se == pytest.approx(ref.bse[-1], rel=1e-6)
    z = stats.norm.ppf(0.975)
    assert r.log_odds_per_hour_ci_low == pytest.approx(ref.params[-1] - z * ref.bse[-1], rel=1e-6)
    assert r.log_odds_per_hour_ci_high == pytest.approx(ref.params[-1] + z * ref.bse[-1], rel=1e-6)
    assert r.log_odds_per_hour_p_value == pytest.approx(ref.pvalues[-1], rel=1e-5)
    assert r.odds_ratio_per_hour == pytest.approx(math.exp(ref.params[-1]), rel=1e-6)
    assert r.method == "logistic-rcs3-standardized" and r.variance == "HC0 sandwich" and r.df is None
    assert r.n == y.size and r.events == int(y.sum())
    assert "not randomized" in r.note


def test_curve_and_nonlinearity_match_statsmodels(small):
    y, hours, design, _ = small
    grid = np.array([8.0, 12.0, 16.0, 20.0])
    r = dose_response(y, hours, design, grid=grid)
    knots = np.percentile(hours, [10, 50, 90])
    np.testing.assert_allclose(r.knots, knots)
    Xc = np.asarray(design.matrix)
    X = np.column_stack([Xc, rcs_basis(hours, knots)])
    p = Xc.shape[1]
    model = sm.Logit(y, X)
    ref = model.fit(disp=0, method="newton", tol=1e-12, maxiter=100, cov_type="HC0")
    b = ref.params
    # nonlinearity: Wald chi-square (1 df) of the nonlinear coefficient with the HC0 covariance
    wald = b[-1] ** 2 / ref.cov_params()[-1, -1]
    assert r.nonlinearity_statistic == pytest.approx(wald, rel=1e-6)
    assert r.nonlinearity_p_value == pytest.approx(stats.chi2.sf(wald, 1), rel=1e-5)
    assert r.nonlinearity_df == 1
    # standardized probability and its stacked-equation standard error, from statsmodels' score
    # and Hessian and a numerical gradient of the mean prediction
    scores = model.score_obs(b)
    H = -model.hessian(b)
    n = y.size
    for j, h in enumerate(grid):
        Xh = np.column_stack([Xc, np.repeat(rcs_basis(np.array([h]), knots), n, axis=0)])
        m = expit(Xh @ b)
        assert r.probability[j] == pytest.approx(m.mean(), rel=1e-7)
        eps = 1e-6
        grad = np.array([(expit(Xh @ (b + eps * e)).mean() - expit(Xh @ (b - eps * e)).mean()) / (2 * eps)
                         for e in np.eye(b.size)])
        c = (m - m.mean()) / n + scores @ np.linalg.solve(H, grad)
        se = math.sqrt(c @ c)
        assert r.se[j] == pytest.approx(se, rel=1e-5)
        half = stats.norm.ppf(0.975) * se / (m.mean() * (1 - m.mean()))
        lg = math.log(m.mean() / (1 - m.mean()))
        assert r.ci_low[j] == pytest.approx(expit(lg - half), rel=1e-5)
        assert r.ci_high[j] == pytest.approx(expit(lg + half), rel=1e-5)
    assert p + 2 == X.shape[1]
    assert "outside the observed hours" not in r.note  # 8..20 within the observed range


def test_four_knots_wald_matches_statsmodels(small):
    y, hours, design, _ = small
    knots = [8.0, 12.0, 16.0, 20.0]
    r = dose_response(y, hours, design, knots=knots, grid=[14.0, 40.0])
    assert r.method == "logistic-rcs4-standardized" and r.nonlinearity_df == 2
    X = np.column_stack([np.asarray(design.matrix), rcs_basis(hours, knots)])
    ref = sm.Logit(y, X).fit(disp=0, method="newton", tol=1e-12, maxiter=100, cov_type="HC0")
    R = np.zeros((2, X.shape[1]))
    R[0, -2] = R[1, -1] = 1.0
    w = ref.wald_test(R, scalar=True, use_f=False)
    assert r.nonlinearity_statistic == pytest.approx(float(w.statistic), rel=1e-6)
    assert r.nonlinearity_p_value == pytest.approx(float(w.pvalue), rel=1e-5)
    assert "1 grid values outside the observed hours" in r.note  # 40 hours a week: extrapolated
    assert not r.probability.flags.writeable
    with pytest.raises(ValueError):
        dose_response(y, hours, design, knots=[8.0, 12.0])


def test_cluster_robust_by_hand(small):
    y, hours, design, cluster = small
    r = dose_response(y, hours, design, cluster=cluster)
    assert r.variance == "CR2, 40 clusters, t(39)" and r.df == 39.0
    X = np.column_stack([np.asarray(design.matrix), hours])
    model = sm.Logit(y, X)
    b = model.fit(disp=0, method="newton", tol=1e-12, maxiter=100).params
    # each person's contribution to the slope, summed by cluster, scaled by (1 - n_g / n)^-1/2
    infl = model.score_obs(b) @ np.linalg.inv(-model.hessian(b))[:, -1]
    sums = np.array([infl[cluster == g].sum() / math.sqrt(1 - (cluster == g).mean()) for g in range(40)])
    se = math.sqrt(sums @ sums)
    assert r.log_odds_per_hour_se == pytest.approx(se, rel=1e-5)
    q = stats.t.ppf(0.975, 39)
    assert r.log_odds_per_hour_ci_high == pytest.approx(b[-1] + q * se, rel=1e-5)
    # too few clusters: the person-level sandwich (the variance rule of pipelines.stats.inference)
    few = dose_response(y, hours, design, cluster=cluster % 5)
    assert few.variance == "HC0 sandwich" and few.df is None


def test_compact_design_gives_the_same(small):
    y, hours, _, cluster = small
    rng = np.random.default_rng(11)
    frame = _frame(y.size, rng)
    dense = dose_response(y, hours, build_design(frame, ["z", "payer"], compact=False), cluster=cluster)
    compact = dose_response(y, hours, build_design(frame, ["z", "payer"], compact=True), cluster=cluster)
    for field in ("probability", "ci_low", "ci_high"):
        np.testing.assert_allclose(getattr(compact, field), getattr(dense, field), rtol=1e-8)
    assert compact.log_odds_per_hour_se == pytest.approx(dense.log_odds_per_hour_se, rel=1e-8)
    assert compact.nonlinearity_statistic == pytest.approx(dense.nonlinearity_statistic, rel=1e-6)


def test_grid_in_batches_gives_the_same(small, monkeypatch):
    from pipelines.stats import dose

    y, hours, design, cluster = small
    whole = dose_response(y, hours, design, cluster=cluster)
    monkeypatch.setattr(dose, "_GRID_CELLS", 3 * y.size)  # 3 grid points a batch (25 = 8 x 3 + 1)
    batched = dose_response(y, hours, design, cluster=cluster)
    for field in ("probability", "se", "ci_low", "ci_high"):
        np.testing.assert_allclose(getattr(batched, field), getattr(whole, field), rtol=1e-12)


def test_missing_rows_left_out(small):
    y, hours, design, _ = small
    y2, h2 = y.copy(), hours.copy()
    y2[:7] = np.nan
    h2[7:10] = np.nan
    r = dose_response(y2, h2, design)
    keep = np.ones(y.size, dtype=bool)
    keep[:10] = False
    X = np.column_stack([np.asarray(design.matrix)[keep], hours[keep]])
    ref = sm.Logit(y[keep], X).fit(disp=0, method="newton", tol=1e-12, cov_type="HC0")
    assert r.n == y.size - 10
    assert r.log_odds_per_hour == pytest.approx(ref.params[-1], rel=1e-6)
    assert r.log_odds_per_hour_se == pytest.approx(ref.bse[-1], rel=1e-6)
    assert "10 rows with missing outcome or hours left out" in r.note


# -- 3 and 4. known truth -----------------------------------------------------------------------


def test_linear_truth_recovered():
    y, hours, z = _linear_data(20_000, seed=2026)
    design = build_design(pl.DataFrame({"z": z}), ["z"])
    grid = np.array([10.0, 18.0])
    r = dose_response(y, hours, design, grid=grid)
    assert r.log_odds_per_hour_ci_low < 0.06 < r.log_odds_per_hour_ci_high
    for j, h in enumerate(grid):
        truth = expit(-0.5 + 0.8 * z + 0.06 * (h - 14)).mean()
        assert r.ci_low[j] < truth < r.ci_high[j]
    assert r.nonlinearity_p_value > 0.01
    # the curve rises with hours, and the default grid spans the 5th to 95th percentile
    default = dose_response(y, hours, design)
    assert default.grid.size == 25
    assert default.grid[0] == pytest.approx(np.percentile(hours, 5))
    assert default.grid[-1] == pytest.approx(np.percentile(hours, 95))
    assert default.probability[-1] > default.probability[0]
    assert np.all(default.ci_low < default.probability) and np.all(default.probability < default.ci_high)


def test_threshold_is_nonlinear():
    rng = np.random.default_rng(7)
    n = 20_000
    z = rng.normal(size=n)
    hours = rng.uniform(9, 19, n)
    # flat up to 13 hours, then rising (a threshold)
    y = rng.binomial(1, expit(-0.8 + 0.8 * z + 0.35 * np.maximum(hours - 13, 0))).astype(float)
    r = dose_response(y, hours, build_design(pl.DataFrame({"z": z}), ["z"]))
    assert r.nonlinearity_p_value < 1e-4


def test_tilted_generator_slope_recovered():
    rng = np.random.default_rng(42)
    n = 30_000
    z = rng.normal(size=n)
    y = rng.binomial(1, expit(-0.3 + 0.7 * z)).astype(float)
    hours = tilted_hours(y, 0.05, 9.0, 19.0, rng)
    assert hours.min() >= 9.0 and hours.max() <= 19.0
    r = dose_response(y, hours, build_design(pl.DataFrame({"z": z}), ["z"]))
    assert r.log_odds_per_hour_ci_low < 0.05 < r.log_odds_per_hour_ci_high
    assert r.log_odds_per_hour_ci_low > 0  # detected at this n (se ~ 0.004)


# -- 5. bands -----------------------------------------------------------------------------------


def test_band_shares_by_hand():
    hours = np.array([5.0, 8.9, 9.0, 12.0, 19.0, 19.0, 19.5, 25.0, np.nan])
    b = band_shares(hours, 9, 19)
    assert isinstance(b, BandShares)
    assert b.n == 8 and b.lower == 9.0 and b.upper == 19.0 and b.method == "wilson"
    assert (b.below.events, b.within.events, b.above.events) == (2, 4, 2)  # 9 and 19 are within
    assert (b.below.estimate, b.within.estimate, b.above.estimate) == (0.25, 0.5, 0.25)
    z = 1.959963984540054
    for share, k in ((b.within, 4), (b.below, 2)):
        p = k / 8
        centre = (p + z * z / 16) / (1 + z * z / 8)
        half = z * math.sqrt(p * (1 - p) / 8 + z * z / 256) / (1 + z * z / 8)
        assert share.ci_low == pytest.approx(centre - half, abs=1e-12)
        assert share.ci_high == pytest.approx(centre + half, abs=1e-12)
    php = band_shares(hours, 20, math.inf)
    assert (php.below.events, php.within.events, php.above.events) == (7, 1, 0)
    assert php.above.ci_low == 0.0
    with pytest.raises(ValueError):
        band_shares(hours, 19, 9)
    empty = band_shares(np.array([np.nan]), 9, 19)
    assert empty.n == 0 and isinstance(empty.within, NotEstimable)


# -- 6. not estimable ---------------------------------------------------------------------------


def _design(n: int) -> object:
    return build_design(pl.DataFrame({"z": np.random.default_rng(0).normal(size=n)}), ["z"])


def test_not_estimable():
    rng = np.random.default_rng(5)
    hours = rng.uniform(9, 19, 200)
    y = (rng.uniform(size=200) < 0.5).astype(float)
    d = _design(200)
    too_few = dose_response(y[:49], hours[:49], _design(49))
    assert isinstance(too_few, NotEstimable) and too_few.n == 49
    assert too_few.method == "logistic-rcs3-standardized"
    y_nan = y.copy()
    y_nan[:151] = np.nan  # 49 rows left
    assert isinstance(dose_response(y_nan, hours, d), NotEstimable)
    few_events = np.zeros(200)
    few_events[:9] = 1.0
    assert "9 events" in dose_response(few_events, hours, d).reason
    assert "9 non-events" in dose_response(1.0 - few_events, hours, d).reason
    four = np.resize([9.0, 12.0, 15.0, 18.0], 200)
    assert "4 distinct hours" in dose_response(y, four, d).reason
    # seven values, but the 10th, 50th and 90th percentiles all at 12
    lumpy = np.where(np.arange(200) < 190, 12.0, 12.0 + np.arange(200) % 5 + 1)
    lumpy[:10] = 9.0
    assert np.unique(lumpy).size == 7 and default_knots(lumpy).size == 1
    assert "distinct knots" in dose_response(y, lumpy, d).reason
    ok = dose_response(y, hours, d)
    assert isinstance(ok, DoseResponse)


def test_bad_inputs_raise():
    d = _design(100)
    h = np.linspace(9, 19, 100)
    with pytest.raises(ValueError):
        dose_response(np.full(100, 2.0), h, d)
    with pytest.raises(ValueError):
        dose_response(np.zeros(99), h[:99], d)
