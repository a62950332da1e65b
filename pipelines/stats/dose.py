"""Dose–response within a level of care: a binary outcome against scheduled hours per week.

Within intensive outpatient (IOP) episodes, how the probability of an outcome (e.g.
treatment completed) varies with the scheduled hours a week, adjusted for the usual baseline
covariates. One logistic model of the outcome on a restricted cubic spline of hours (3 knots
by default: the 10th, 50th and 90th percentiles, Harrell's defaults) plus the covariates of a
:class:`~pipelines.stats.results.Design`; the curve is the standardized (marginal) predicted
probability at each hours value h of a grid,

    P(h) = (1/n) sum_i expit(x_i' b + s(h)' g),

every person's covariates kept and their hours set to h (g-computation over a continuous
exposure). A second logistic model, linear in hours with the same covariates, gives the one
number summary: the log odds ratio per hour. :func:`band_shares` counts the episodes below,
within and above a band of hours (ASAM level 2.1: 9–19 hours a week; level 2.5, partial
hospitalization: 20 or more).

Notes
-----
* **Hours are not randomized.** People are scheduled more or fewer hours for reasons that
  also bear on the outcome (severity, employment, transport, the program's own schedule), so
  the curve and the slope are *adjusted associations*: what the outcome probability would be
  at h hours only if the covariates removed all confounding of hours and outcome and the model
  is right (no unmeasured confounding, positivity at every h of the grid, correct functional
  form in the covariates). They are not the effect of prescribing more hours. Scheduled hours
  are also not hours attended.
* Spline: Harrell's restricted (natural) cubic spline with knots t_1 < ... < t_k: the columns
  h and, for j = 1..k-2,

      [(h - t_j)+^3 - (h - t_{k-1})+^3 (t_k - t_j)/(t_k - t_{k-1})
       + (h - t_k)+^3 (t_{k-1} - t_j)/(t_k - t_{k-1})] / (t_k - t_1)^2,

  cubic between the knots, linear beyond the outer ones (``rcspline.eval`` of Hmisc with
  ``norm=2``, the parameterisation of ``rms::rcs``). With 3 knots that is 2 columns: h and one
  nonlinear term. Default knots that coincide (hours taking few values) are merged; fewer than
  3 distinct knots is :class:`NotEstimable`.
* Variance: the coefficients' sandwich (HC0) covariance; cluster-robust (CR2-scaled cluster
  sums, Student t on G - 1 df) when ``cluster`` has at least ``min_clusters`` distinct labels,
  the rule of :mod:`pipelines.stats.inference`. The standardized probability's standard error
  comes from its stacked estimating equations (as in :mod:`pipelines.stats.gcomp`): each
  person's contribution (m_i(h) - P(h) + G(h)' H^-1 x_i r_i) / n, i.e. the delta method with
  the sandwich covariance plus the variation of averaging over the sample's covariates. The
  interval is formed on the logit scale and transformed back, so it stays inside (0, 1).
* Nonlinearity: Wald test that the k-2 nonlinear spline coefficients are all 0, with the same
  covariance: chi-square on k-2 df, or F(k-2, G-1) of the statistic / (k-2) when
  cluster-robust.
* Not estimable with fewer than ``MIN_ROWS`` (50) rows, fewer than ``MIN_EVENTS`` (10) events
  or non-events, fewer than ``MIN_DISTINCT_HOURS`` (5) distinct hours values, or a model that
  does not converge (or separates).

References
----------
Harrell FE. Regression Modeling Strategies, 2nd ed. Springer, 2015 (section 2.4.5, restricted
cubic splines; Hmisc ``rcspline.eval``).
Stone CJ, Koo CY. Additive splines in statistics. Proc Stat Comp Sect Am Stat Assoc
1985:45–48. Durrleman S, Simon R. Flexible regression models with cubic splines. Stat Med
1989;8:551–561.
Muller CJ, MacLehose RF. Estimating predicted probabilities from logistic regression:
different methods correspond to different target populations. Int J Epidemiol
2014;43:962–970 (standardized / marginal probabilities).
Hirano K, Imbens GW. The propensity score with continuous treatments. In: Gelman A, Meng XL
(eds). Applied Bayesian Modeling and Causal Inference from Incomplete-Data Perspectives.
Wiley, 2004:73–84 (the assumptions a causal dose–response curve needs).
White H. A heteroskedasticity-consistent covariance matrix estimator and a direct test for
heteroskedasticity. Econometrica 1980;48:817–838. Stefanski LA, Boos DD. The calculus of
M-estimation. Am Stat 2002;56:29–38.
Mee-Lee D et al. (eds). The ASAM Criteria, 3rd ed. American Society of Addiction Medicine,
2013 (level 2.1: 9–19 hours a week for adults; level 2.5: 20 hours or more).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats
from scipy.special import expit, logit

from pipelines.stats.compact import CompactMatrix
from pipelines.stats.design import subset
from pipelines.stats.inference import (
    MIN_CLUSTERS,
    _cluster_sums,
    cluster_codes,
    variance,
    variance_label,
    wald,
)
from pipelines.stats.logistic import SEPARATED_LOGIT, _with_held, fit_logistic, solve_information, xtwx
from pipelines.stats.proportions import wilson
from pipelines.stats.results import Design, LogisticFit, NotEstimable, Proportion, readonly

#: Fewest rows (after missing outcomes and hours are excluded) for a dose–response curve.
MIN_ROWS = 50
#: Fewest events, and fewest non-events.
MIN_EVENTS = 10
#: Fewest distinct hours values.
MIN_DISTINCT_HOURS = 5
#: Percentiles of hours at which the knots go by default (Harrell's for 3 knots).
DEFAULT_KNOT_PERCENTILES = (10.0, 50.0, 90.0)
#: Default grid: this many points from the 5th to the 95th percentile of hours.
GRID_POINTS = 25
GRID_PERCENTILES = (5.0, 95.0)
#: Cells (rows x grid points) of the arrays of one batch of grid points' standardized
#: probabilities (32 MB each): 8 grid points at a time at 500,000 rows, one at 4 million.
_GRID_CELLS = 1 << 22

NOT_RANDOMIZED = ("hours are not randomized: the curve and the slope are adjusted associations, "
                  "not effects of scheduling more hours")


@dataclass(frozen=True, slots=True)
class DoseResponse:
    """A standardized dose–response curve of a binary outcome on hours per week.

    ``probability[j]`` is the mean over the rows of the predicted probability with everyone's
    hours set to ``grid[j]`` (their covariates as observed), ``ci_low`` / ``ci_high`` its
    pointwise interval (logit scale, transformed back) and ``se`` its standard error (probability
    scale). ``log_odds_per_hour`` and its ``_se``,
    interval and p-value come from the model linear in hours (same covariates, same rows).
    ``nonlinearity_p_value`` tests the spline's nonlinear terms (``nonlinearity_df`` of them).
    ``variance`` says which variance was used ("HC0 sandwich" or "CR2, G clusters, t(G-1)"),
    ``df`` the t degrees of freedom of the intervals (None: normal quantiles).
    """

    grid: np.ndarray
    probability: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    se: np.ndarray
    log_odds_per_hour: float
    log_odds_per_hour_se: float
    log_odds_per_hour_ci_low: float
    log_odds_per_hour_ci_high: float
    log_odds_per_hour_p_value: float
    nonlinearity_statistic: float
    nonlinearity_df: int
    nonlinearity_p_value: float
    knots: np.ndarray
    n: int
    events: int
    method: str
    variance: str
    df: float | None = None
    confidence: float = 0.95
    note: str | None = None

    @property
    def odds_ratio_per_hour(self) -> float:
        return math.exp(self.log_odds_per_hour)


@dataclass(frozen=True, slots=True)
class BandShares:
    """Shares of episodes with hours below ``lower``, within [``lower``, ``upper``] (both ends
    included) and above ``upper``, each with its Wilson interval (of ``n`` episodes with hours)."""

    below: Proportion | NotEstimable
    within: Proportion | NotEstimable
    above: Proportion | NotEstimable
    lower: float
    upper: float
    n: int
    method: str = "wilson"


def rcs_basis(x: np.ndarray, knots: Sequence[float]) -> np.ndarray:
    """Harrell's restricted cubic spline basis of ``x``: an (n, k-1) array, column 0 ``x``
    itself, columns 1..k-2 the nonlinear terms scaled by (t_k - t_1)^2 (``norm=2``)."""
    x = np.asarray(x, dtype=float)
    t = np.asarray(knots, dtype=float)
    k = t.size
    if k < 3 or not np.all(np.diff(t) > 0):
        raise ValueError(f"a restricted cubic spline needs >= 3 strictly increasing knots, got {t.tolist()}")
    out = np.empty((x.size, k - 1))
    out[:, 0] = x
    scale = (t[-1] - t[0]) ** 2
    span = t[-1] - t[-2]
    tail_km1 = np.maximum(x - t[-2], 0.0) ** 3
    tail_k = np.maximum(x - t[-1], 0.0) ** 3
    for j in range(k - 2):
        col = np.maximum(x - t[j], 0.0) ** 3
        col -= tail_km1 * ((t[-1] - t[j]) / span)
        col += tail_k * ((t[-2] - t[j]) / span)
        out[:, j + 1] = col / scale
    return out


def default_knots(hours: np.ndarray, percentiles: Sequence[float] = DEFAULT_KNOT_PERCENTILES) -> np.ndarray:
    """The distinct values of ``hours``' percentiles (linear interpolation, numpy's default)."""
    return np.unique(np.percentile(np.asarray(hours, dtype=float), percentiles))


def default_grid(hours: np.ndarray, points: int = GRID_POINTS) -> np.ndarray:
    """``points`` equally spaced hours from the 5th to the 95th percentile of ``hours``."""
    lo, hi = np.percentile(np.asarray(hours, dtype=float), GRID_PERCENTILES)
    return np.linspace(lo, hi, points)


def band_shares(hours: np.ndarray, lower: float, upper: float, confidence: float = 0.95) -> BandShares:
    """Counts and Wilson intervals of the share of episodes below, within [lower, upper]
    (inclusive) and above a band of hours a week; missing (NaN) hours are left out.

    ASAM level 2.1 is ``band_shares(hours, 9, 19)``; 20 hours or more (level 2.5) is the share
    within ``band_shares(hours, 20, math.inf)``.
    """
    if not lower <= upper:
        raise ValueError(f"lower ({lower}) must not exceed upper ({upper})")
    h = np.asarray(hours, dtype=float)
    h = h[~np.isnan(h)]
    n = int(h.size)
    below = int((h < lower).sum())
    above = int((h > upper).sum())
    within = n - below - above
    return BandShares(
        below=wilson(below, n, confidence), within=wilson(within, n, confidence),
        above=wilson(above, n, confidence), lower=float(lower), upper=float(upper), n=n,
    )  # fmt: skip


def _append_columns(X, S: np.ndarray):
    """[X, S]: a new Fortran-ordered array, or a CompactMatrix sharing X's codes."""
    if isinstance(X, CompactMatrix):
        for j in range(S.shape[1]):
            X = X.with_column(S[:, j])
        return X
    out = np.empty((X.shape[0], X.shape[1] + S.shape[1]), order="F")
    out[:, : X.shape[1]] = X
    out[:, X.shape[1] :] = S
    return out


def _first_columns(X, q: int):
    """Columns 0..q-1 of ``X``: a view of a Fortran array, a CompactMatrix sharing storage."""
    if isinstance(X, CompactMatrix):
        return X.take_columns(list(range(q)))
    return X[:, :q]


def _fit(X, y: np.ndarray, start: np.ndarray | None = None) -> LogisticFit:
    """:func:`~pipelines.stats.logistic.fit_logistic`, its information then formed at the final
    coefficients (the fit keeps its last Newton iteration's, at coefficients within ``tol`` of
    them: standard errors within ~1e-6 relative; one X'WX pass more makes them exact to rounding).
    Coefficients held at +-SEPARATED_LOGIT (separated indicators) keep their identity rows."""
    fit = fit_logistic(X, y, start=start)
    if not fit.converged:
        return fit
    info = xtwx(X, fit.fitted * (1.0 - fit.fitted))
    held = np.flatnonzero(np.abs(fit.params) == SEPARATED_LOGIT)
    return replace(fit, information=readonly(_with_held(info, held)))


def _covariance(C: np.ndarray, cluster: np.ndarray | None) -> np.ndarray:
    """Covariance from per-person contributions ``C`` (n, q): C'C (HC0), or S'S of the
    CR2-scaled cluster sums S (as :func:`pipelines.stats.inference.variance`, column by column)."""
    if cluster is None:
        return C.T @ C
    S = np.column_stack([_cluster_sums(C[:, j], cluster, None) for j in range(C.shape[1])])
    return S.T @ S


def _coefficient_contributions(X, fit: LogisticFit, cols: Sequence[int]) -> np.ndarray:
    """Each person's contribution (H^-1 x_i r_i)_j to coefficients ``cols``: (n, len(cols))."""
    E = np.zeros((fit.params.size, len(cols)))
    E[list(cols), np.arange(len(cols))] = 1.0
    J = solve_information(fit.information, E)
    out = np.asarray(X @ J).reshape(X.shape[0], len(cols))
    out *= fit.resid[:, None]
    return out


def _standardized(X, fit: LogisticFit, S: np.ndarray, B: np.ndarray, cluster: np.ndarray | None):
    """Standardized probabilities at the spline rows ``B`` (grid x (k-1)) and their standard
    errors. ``X`` is the fitted design [covariates, spline of observed hours ``S``]."""
    n, P = X.shape
    p = P - S.shape[1]
    beta = fit.params
    eta_cov = X @ beta - S @ beta[p:]  # everyone's linear predictor without the hours terms
    mu = np.empty(B.shape[0])
    se = np.empty(B.shape[0])
    chunk = max(1, _GRID_CELLS // max(n, 1))
    for s in range(0, B.shape[0], chunk):
        Bc = B[s : s + chunk]
        M = expit(eta_cov[:, None] + Bc @ beta[p:])  # (n, m): each row's risk at each grid hours
        means = M.mean(axis=0)
        W = M * (1.0 - M)
        G = np.asarray(X.T @ W).reshape(P, -1)  # d sum_i m_i(h) / d beta: the covariate part ...
        G[p:] = Bc.T * W.sum(axis=0)  # ... and the hours part, at h rather than the observed hours
        J = solve_information(fit.information, G)
        C = np.asarray(X @ J).reshape(n, -1)
        C *= fit.resid[:, None]
        C += M
        C -= means
        C /= n
        mu[s : s + Bc.shape[0]] = means
        se[s : s + Bc.shape[0]] = [math.sqrt(variance(C[:, j], cluster)) for j in range(C.shape[1])]
    return mu, se


def dose_response(
    y: np.ndarray,
    hours: np.ndarray,
    design: Design,
    *,
    knots: Sequence[float] | None = None,
    grid: Sequence[float] | None = None,
    cluster: np.ndarray | None = None,
    confidence: float = 0.95,
    min_clusters: int = MIN_CLUSTERS,
) -> DoseResponse | NotEstimable:
    """Standardized probability of ``y`` against ``hours`` a week, adjusted for ``design``.

    Parameters
    ----------
    y
        Outcome, 0/1 floats; rows with NaN are left out.
    hours
        Scheduled hours per week; rows with NaN are left out.
    design
        Covariates (intercept first, no hours column) over the same rows as ``y``.
    knots
        Spline knots (>= 3, increasing); default the 10th, 50th and 90th percentiles of hours.
    grid
        Hours at which the standardized probability is given; default 25 points from the 5th
        to the 95th percentile of hours.
    cluster
        Cluster labels (e.g. site) over the same rows; cluster-robust variance when there are
        at least ``min_clusters`` distinct labels among the rows used, else the sandwich (HC0).
    confidence
        Level of the intervals.

    Returns
    -------
    DoseResponse, or NotEstimable when the data cannot support the curve (see the module Notes).
    """
    y = np.asarray(y, dtype=float)
    h = np.asarray(hours, dtype=float)
    if y.shape != h.shape or y.ndim != 1 or design.n != y.size:
        raise ValueError(f"y {y.shape}, hours {h.shape} and design ({design.n} rows) must have the same rows")
    if knots is not None:
        rcs_basis(np.zeros(0), knots)  # >= 3 strictly increasing knots, else ValueError
    keep = ~(np.isnan(y) | np.isnan(h))
    yk, hk = y[keep], h[keep]
    if not np.all((yk == 0.0) | (yk == 1.0)):
        raise ValueError("y must be 0/1 (or NaN)")
    k_knots = 3 if knots is None else len(knots)
    method = f"logistic-rcs{k_knots}-standardized"
    n = int(keep.sum())
    events = int(yk.sum())
    if n < MIN_ROWS:
        return NotEstimable(f"{n} rows with outcome and hours (fewer than {MIN_ROWS})", method, n)
    if min(events, n - events) < MIN_EVENTS:
        return NotEstimable(f"{events} events and {n - events} non-events (fewer than {MIN_EVENTS} of one)",
                            method, n)
    distinct = int(np.unique(hk).size)
    if distinct < MIN_DISTINCT_HOURS:
        return NotEstimable(f"{distinct} distinct hours values (fewer than {MIN_DISTINCT_HOURS})", method, n)
    if knots is None:
        t = default_knots(hk)
        if t.size < 3:
            return NotEstimable(f"the 10th, 50th and 90th percentiles of hours give {t.size} distinct knots "
                                "(a restricted cubic spline needs 3)", method, n)
    else:
        t = np.asarray(knots, dtype=float)
    k = t.size
    method = f"logistic-rcs{k}-standardized"
    g = default_grid(hk) if grid is None else np.asarray(grid, dtype=float).ravel()
    part = design if keep.all() else subset(design, keep)
    codes = None if cluster is None else cluster_codes(np.asarray(cluster)[keep], min_clusters)
    label, df = variance_label(codes)

    S = rcs_basis(hk, t)
    X = _append_columns(part.matrix, S)
    p = part.matrix.shape[1]
    fit = _fit(X, yk)
    if not fit.converged:
        return NotEstimable(f"spline model: {fit.note}", method, n)
    lin = _first_columns(X, p + 1)
    linear = _fit(lin, yk, start=fit.params[: p + 1])
    if not linear.converged:
        return NotEstimable(f"linear model: {linear.note}", method, n)

    # the curve: standardized probabilities, interval on the logit scale
    mu, se = _standardized(X, fit, S, rcs_basis(g, t), codes)
    # se(logit P) = se(P) / (P (1 - P)); P is a mean of expit values, strictly inside (0, 1)
    bounds = np.array([wald(float(logit(m)), s / (m * (1 - m)), confidence, df)[:2] for m, s in zip(mu, se)])
    ci_low, ci_high = expit(bounds[:, 0]), expit(bounds[:, 1])

    # the slope per hour (linear model)
    c = _coefficient_contributions(lin, linear, [p])[:, 0]
    slope = float(linear.params[p])
    slope_se = math.sqrt(variance(c, codes))
    s_lo, s_hi, s_p = wald(slope, slope_se, confidence, df)

    # nonlinearity: Wald test of the k-2 nonlinear spline coefficients
    nonlinear = list(range(p + 1, p + k - 1))
    V = _covariance(_coefficient_contributions(X, fit, nonlinear), codes)
    b = fit.params[nonlinear]
    stat = float(b @ solve_information(V, b))
    m = len(nonlinear)
    p_nl = float(stats.chi2.sf(stat, m)) if df is None else float(stats.f.sf(stat / m, m, df))

    notes = [NOT_RANDOMIZED]
    if n < y.size:
        notes.append(f"{y.size - n} rows with missing outcome or hours left out")
    outside = int(((g < hk.min()) | (g > hk.max())).sum())
    if outside:
        notes.append(f"{outside} grid values outside the observed hours ({hk.min():g}-{hk.max():g}): "
                     "extrapolated")
    return DoseResponse(
        grid=readonly(g.copy()), probability=readonly(mu), ci_low=readonly(ci_low), ci_high=readonly(ci_high),
        se=readonly(se), log_odds_per_hour=slope, log_odds_per_hour_se=slope_se,
        log_odds_per_hour_ci_low=s_lo, log_odds_per_hour_ci_high=s_hi, log_odds_per_hour_p_value=s_p,
        nonlinearity_statistic=stat,
        nonlinearity_df=m, nonlinearity_p_value=p_nl, knots=readonly(t.copy()), n=n, events=events,
        method=method, variance=label, df=df, confidence=confidence, note="; ".join(notes),
    )  # fmt: skip
