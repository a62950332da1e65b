"""Cost-effectiveness of the arm (IOP) against the reference (residential): cost and success differences
jointly, the ICER with Fieller's interval, net monetary benefit and the acceptability curve.

Three estimators of the pair (ΔC, ΔE) = (mean cost, success risk of the arm) − (those of the
reference), each on the rows whose cost and success are both known:

* ``crude``: difference of arm means; Welch-type variances s²/n per arm (and the arms' sample
  covariances of cost and success over n for cov(ΔC, ΔE)).
* ``iptw_ate``: Hájek means weighted by the stabilized ATE weights of
  :func:`pipelines.stats.weighting.iptw_weights` (``target="ate"``, capped at 10 as everywhere in
  levelcare), as :mod:`pipelines.stats.ipw`; the propensity model's estimation enters the variance.
* ``aipw``: the doubly robust estimator of :mod:`pipelines.stats.aipw` for both outcomes. Success
  has the per-arm logistic outcome models of :mod:`pipelines.stats.gcomp`; cost has one Gamma
  GLM with log link per arm (:func:`fit_gamma_log`; ``cost_model="gamma-log-glm"``): costs are
  skewed, and the Gamma model's estimating equations need only E[C | X, arm] = exp(x'γ_arm), not
  normality or a Gamma distribution (Manning & Mullahy 2001).

Notes
-----
* Intervals, by default (``ci_method``): from the joint influence functions of (ΔC, ΔE), the
  per-person contributions of :mod:`pipelines.stats.inference` (stacked estimating equations
  with every nuisance model's term). Person-level sandwich ``"influence-function-sandwich"``
  (crude: ``"welch-normal"``), normal quantiles; with ``cluster`` labels of at least
  :data:`~pipelines.stats.inference.MIN_CLUSTERS` clusters, the CR2 cluster-robust covariance and
  t(G-1) quantiles (``"influence-function-cr2-G-clusters"``), as the variance rule of
  :mod:`pipelines.stats.inference`; with fewer, the person-level sandwich (and a note).
  From the 2x2 covariance V of (ΔC, ΔE): NMB(λ) = λΔE − ΔC with variance λ²V_EE − 2λV_CE + V_CC,
  the acceptability curve P(NMB(λ) > 0) = Φ(NMB/se) (the joint normal approximation) and
  Fieller's interval of the ICER.
* ``bootstrap=B``: B nonparametric bootstrap replicates, resampled within each arm (the arm
  sizes fixed), every model refitted on each (``ci_method="bootstrap-percentile-B=200"``). The
  point estimates stay those of the data; the intervals of ΔC, ΔE and every NMB are percentile
  intervals of the replicates, the acceptability curve the share of replicates with NMB > 0,
  the correlation that of the replicates, and the ICER's interval the percentile interval of
  the replicate ratios when every replicate's ΔE has the estimate's sign (else None and a
  note: a ratio whose denominator crosses 0 has no percentile interval). The bootstrap
  resamples people, not clusters. Replicates in which an estimator is not estimable (an arm
  model that does not converge) are left out of that estimator's intervals and counted in its
  note.
* Run time: the three influence-function estimators cost a handful of model fits (one
  propensity fit, two logistic and two Gamma arm models, no loop over rows); a bootstrap
  refits all of them B times, so it is for small populations or small B.
* ICER = ΔC / ΔE (dollars per extra success) whatever its interval; when the success
  difference's interval includes 0 the ratio is unstable (its sign and size swing with small
  changes of ΔE) and ``icer_note`` says so: read the NMB and the acceptability curve instead.
  Fieller's interval is the set of R with (ΔC − RΔE)² <= q²(V_CC − 2RV_CE + R²V_EE); it is a
  bounded interval exactly when ΔE is distinguishable from 0 (ΔE² > q²V_EE), else the whole
  line or two half-lines, reported as None with a note.
* ``dominance`` reads the two intervals together (the cost-effectiveness plane): dominant
  (costs less, more effective), dominated (costs more, less effective), costs less and no
  worse (success interval includes 0: not a non-inferiority test), the two trade-offs (with the
  ICER in dollars), costs more and no better, effect difference at no detectable cost
  difference, and inconclusive.
* Rows with an unknown cost (NaN) or a success not evaluable (NaN) are left out of every fit
  (counted in ``n_excluded`` and the note). The propensity model is refitted on the rows used
  when rows were left out or none was given. Negative costs make the Gamma model (``aipw``)
  not estimable; costs of 0 are allowed (quasi-likelihood).
* :class:`NotEstimable` instead of numbers when an arm has fewer than 2 rows, or a model does
  not converge.

References
----------
Fieller EC. Some problems in interval estimation. J R Stat Soc B 1954;16:175–185.
Willan AR, O'Brien BJ. Confidence intervals for cost-effectiveness ratios: an application of
Fieller's theorem. Health Econ 1996;5:297–305.
Black WC. The CE plane: a graphic representation of cost-effectiveness. Med Decis Making
1990;10:212–214.
Stinnett AA, Mullahy J. Net health benefits: a new framework for the analysis of uncertainty in
cost-effectiveness analysis. Med Decis Making 1998;18:S68–S80.
van Hout BA, Al MJ, Gordon GS, Rutten FF. Costs, effects and C/E-ratios alongside a clinical
trial. Health Econ 1994;3:309–319 (acceptability curve).
Briggs AH, Wonderling DE, Mooney CZ. Pulling cost-effectiveness analysis up by its bootstraps.
Health Econ 1997;6:327–340.
Manning WG, Mullahy J. Estimating log models: to transform or not to transform? J Health Econ
2001;20:461–494 (Gamma GLM with log link for costs).
Robins JM, Rotnitzky A, Zhao LP. JASA 1994;89:846–866. Lunceford JK, Davidian M. Stat Med
2004;23:2937–2960 (AIPW, IPTW and their sandwich).
Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall, 1993.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipelines.stats.blas import single_blas_thread
from pipelines.stats.compact import CompactMatrix
from pipelines.stats.design import _independent_columns, _rows, start_from, subset
from pipelines.stats.gcomp import counterfactual_risks, extrapolation_note, outcome_models
from pipelines.stats.inference import (
    Nuisance,
    _cluster_sums,
    cluster_codes,
    contributions,
    variance_label,
)
from pipelines.stats.ipw import _arm_mean
from pipelines.stats.logistic import solve_information, xtwx
from pipelines.stats.propensity import fit_propensity
from pipelines.stats.results import Design, NotEstimable, PropensityModel, readonly
from pipelines.stats.weighting import iptw_weights

METHODS = ("crude", "iptw_ate", "aipw")
DEFAULT_WTP = (0, 5000, 10000, 20000, 50000, 100000)
#: the propensity score's bounds for AIPW's inverse probabilities (as :mod:`pipelines.stats.aipw`)
_PS_BOUND = 1e-6


@dataclass(frozen=True, slots=True)
class CostEffect:
    """Joint cost and success differences of the arm vs the reference by one ``method``.

    Differences are arm minus reference: ``cost_difference`` in dollars per episode,
    ``effect_difference`` the risk difference of success. ``nmb``: (wtp, NMB = wtp ΔE − ΔC,
    ci_low, ci_high) per willingness to pay (dollars per success); ``ceac``: (wtp, probability
    that NMB > 0). ``icer_ci_low`` / ``icer_ci_high`` are None when the interval is unbounded
    (``icer_note`` says why). ``cost_arm`` ... ``effect_reference``: the (standardized) arm
    means behind the differences. ``cost_se`` / ``effect_se``: the influence-function standard
    errors (the replicates' standard deviations when bootstrapped).
    """

    method: str
    cost_difference: float
    cost_ci_low: float
    cost_ci_high: float
    effect_difference: float
    effect_ci_low: float
    effect_ci_high: float
    cost_effect_correlation: float
    icer: float
    icer_ci_low: float | None
    icer_ci_high: float | None
    nmb: tuple[tuple[float, float, float, float], ...]
    ceac: tuple[tuple[float, float], ...]
    dominance: str
    n_arm: int
    n_reference: int
    n_excluded: int
    ci_method: str
    cost_model: str
    icer_note: str | None = None
    note: str | None = None
    confidence: float = 0.95
    cost_arm: float | None = None
    cost_reference: float | None = None
    effect_arm: float | None = None
    effect_reference: float | None = None
    cost_se: float | None = None
    effect_se: float | None = None


@dataclass(frozen=True, slots=True)
class GammaFit:
    """A Gamma GLM with log link: E[y | x] = exp(x'params), fitted by its estimating equations
    sum x (y - mu)/mu = 0 (``resid``: (y - mu)/mu). ``information`` is their expected information
    X'X (the sandwich's bread; see :func:`fit_gamma_log`)."""

    params: np.ndarray
    fitted: np.ndarray
    resid: np.ndarray
    information: np.ndarray
    converged: bool
    iterations: int
    n: int
    method: str = "gamma-log-glm"
    note: str | None = None


def _quasi_loglik(y: np.ndarray, eta: np.ndarray) -> float:
    """The Gamma log-likelihood in the mean, up to the scale and constants: sum(-y/mu - log mu)
    (finite for y = 0 too)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(-(y @ np.exp(-eta)) - eta.sum())


def fit_gamma_log(
    X,
    y: np.ndarray,
    *,
    gram: np.ndarray | None = None,
    start: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> GammaFit:
    """Gamma GLM with log link of ``y`` (>= 0) on ``X`` (intercept included; dense or
    :class:`~pipelines.stats.compact.CompactMatrix`) by iteratively reweighted least squares.

    The model statsmodels fits as ``GLM(y, X, family=Gamma(link=Log()))`` by its IRLS, with the
    same start (the least-squares fit of log((y + mean y)/2)): with the log link the IRLS
    weights of the Gamma family are all 1, so every iteration solves with the same X'X
    (formed once, from sums by code for a CompactMatrix) and costs one X @ b and one X' r. Steps
    that lower the likelihood are halved; the fit stops when the largest change of a
    coefficient is below ``tol``. ``gram``: X'X when the caller has it.

    ``information`` is the expected information X'X rather than the observed X' diag(y/mu) X:
    the two agree to O(n^-1/2) when the mean model is right, and in AIPW the cost model's
    sandwich term vanishes asymptotically when the propensity model is right whichever is used,
    so the doubly robust variance stays valid either way, at no extra pass over the rows.
    """
    y = np.asarray(y, dtype=float)
    n, p = X.shape
    ybar = float(y.mean()) if n else float("nan")
    if not ybar > 0:
        return GammaFit(
            np.zeros(p), np.zeros(n), np.zeros(n), np.eye(p), False, 0, n, note="no positive cost"
        )
    gram = xtwx(X, np.ones(n)) if gram is None else gram
    beta = solve_information(gram, X.T @ np.log((y + ybar) / 2)) if start is None else np.array(start, float)
    eta = X @ beta
    q = _quasi_loglik(y, eta)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        resid = y * np.exp(-eta)
        resid -= 1.0
        step = solve_information(gram, X.T @ resid)
        t = 1.0
        for _ in range(40):
            new_beta = beta + t * step
            new_eta = X @ new_beta
            new_q = _quasi_loglik(y, new_eta)
            if np.isfinite(new_q) and new_q >= q - 1e-12 * abs(q):
                break
            t *= 0.5
        change = float(np.max(np.abs(new_beta - beta)))
        beta, eta, q = new_beta, new_eta, new_q
        if change < tol:
            converged = True
            break
    mu = np.exp(eta)
    resid = y / mu - 1.0
    note = None if converged else f"did not converge in {max_iter} iterations"
    if converged and not np.all(np.isfinite(mu)):
        converged, note = False, "fitted costs overflow"
    info = gram if converged else np.eye(p)
    return GammaFit(
        readonly(beta), readonly(mu), readonly(resid), readonly(info), converged, it, n, note=note
    )


# -- Fieller, NMB, dominance -------------------------------------------------------------------


def fieller_interval(
    dc: float,
    de: float,
    var_c: float,
    var_e: float,
    cov: float,
    confidence: float = 0.95,
    df: float | None = None,
) -> tuple[float | None, float | None, str | None]:
    """Fieller's interval of the ratio dc/de: the R with (dc − R de)² <= q² (var_c − 2R cov + R² var_e).

    Returns (low, high, None) when it is a bounded interval (de² > q² var_e), else
    (None, None, note) for the whole line or two half-lines (an "exclusive" interval).
    """
    dist = stats.norm if df is None else stats.t(df)
    q2 = float(dist.ppf(0.5 + confidence / 2)) ** 2
    a = de * de - q2 * var_e
    b = dc * de - q2 * cov
    c = dc * dc - q2 * var_c
    disc = b * b - a * c
    level = f"{confidence:.0%}"
    if a > 0:
        root = math.sqrt(max(disc, 0.0))
        return (b - root) / a, (b + root) / a, None
    why = f"the success difference is not distinguishable from 0 at {level}"
    if a < 0 and disc > 0:
        root = math.sqrt(disc)
        lo, hi = sorted(((b - root) / a, (b + root) / a))
        return (
            None,
            None,
            (
                f"Fieller's interval is unbounded ({why}): two half-lines, below {_dollars(lo)} "
                f"and above {_dollars(hi)} per success"
            ),
        )
    return None, None, f"Fieller's interval is unbounded ({why}): the whole line"


def _dollars(x: float) -> str:
    return f"-${abs(x):,.0f}" if x < 0 else f"${x:,.0f}"


def _side(lo: float, hi: float) -> int:
    """-1: the interval lies below 0, +1: above, 0: it includes 0."""
    return -1 if hi < 0 else 1 if lo > 0 else 0


def dominance(
    cost_ci: tuple[float, float],
    effect_ci: tuple[float, float],
    icer: float,
    names: tuple[str, str] = ("reference", "arm"),
) -> str:
    """Plain words for where the arm lies on the cost-effectiveness plane against the reference,
    from the intervals of the cost and success differences (arm minus reference) and the ICER."""
    ref, arm = names
    c, e = _side(*cost_ci), _side(*effect_ci)
    per = _dollars(abs(icer)) if math.isfinite(icer) else "an undefined amount"
    words = {
        (-1, 1): f"{arm} costs less than {ref} and is more effective (dominant)",
        (1, -1): f"{arm} costs more than {ref} and is less effective (dominated)",
        (-1, 0): (
            f"{arm} costs less than {ref} and is no worse (the success difference's interval includes "
            "0; not a non-inferiority test)"
        ),
        (1, 1): f"{arm} costs more than {ref} and is more effective: each extra success costs {per}",
        (-1, -1): f"{arm} costs less than {ref} and is less effective: each success given up saves {per}",
        (1, 0): (
            f"{arm} costs more than {ref} and is no better (the success difference's interval includes 0)"
        ),
        (0, 1): f"{arm} is more effective than {ref} at no detectable difference in cost",
        (0, -1): f"{arm} is less effective than {ref} at no detectable difference in cost",
        (0, 0): (
            f"inconclusive: neither the cost nor the success difference between {arm} and {ref} is "
            "distinguishable from 0"
        ),
    }
    return words[(c, e)]


# -- the estimators: (ΔC, ΔE) and each one's per-person contributions -------------------------


@dataclass(frozen=True, slots=True)
class _Contrast:
    """Arm means of cost and success, with (contributions, averaging weights) parts of each
    difference (None when only the point estimate was asked for)."""

    cost: tuple[float, float]  # (arm, reference)
    effect: tuple[float, float]
    cost_parts: list | None
    effect_parts: list | None
    cost_model: str = "none"
    note: str | None = None

    @property
    def dc(self) -> float:
        return self.cost[0] - self.cost[1]

    @property
    def de(self) -> float:
        return self.effect[0] - self.effect[1]


def _crude(c: np.ndarray, e: np.ndarray, a: np.ndarray, with_if: bool, welch: bool) -> _Contrast:
    n1, n0 = int(a.sum()), int((~a).sum())
    means = [(float(y[a].mean()), float(y[~a].mean())) for y in (c, e)]
    if not with_if:
        return _Contrast(means[0], means[1], None, None)
    parts = []
    w1, w0 = a.astype(float), (~a).astype(float)
    # Welch: each arm's contributions scaled so that their squares add up to s²/n (n - 1 divisor)
    k1 = math.sqrt(n1 / (n1 - 1)) if welch else 1.0
    k0 = math.sqrt(n0 / (n0 - 1)) if welch else 1.0
    for y, (m1, m0) in zip((c, e), means):
        c1 = np.where(a, (y - m1) * (k1 / n1), 0.0)
        c0 = np.where(a, 0.0, (y - m0) * (k0 / n0))
        parts.append([(c1, w1), (-c0, w0)])
    return _Contrast(means[0], means[1], parts[0], parts[1])


def _iptw(c: np.ndarray, e: np.ndarray, a: np.ndarray, X, pm: PropensityModel, with_if: bool) -> _Contrast:
    w = iptw_weights(pm, "ate")
    note = None
    if w.share_truncated > 0:
        note = f"{w.share_truncated:.2%} of weights truncated at {w.max_weight:.3g}"
    if not with_if:
        ww = np.asarray(w.weights)
        means = [(float(ww[a] @ y[a] / ww[a].sum()), float(ww[~a] @ y[~a] / ww[~a].sum())) for y in (c, e)]
        return _Contrast(means[0], means[1], None, None, note=note)
    nu = [(Nuisance(X, pm.fit), w.dlogw)]
    means, parts = [], []
    for y in (c, e):
        mu1, c1, w1 = _arm_mean(y, a, w.weights, nu)
        mu0, c0, w0 = _arm_mean(y, ~a, w.weights, nu)
        means.append((mu1, mu0))
        parts.append([(c1, w1), (-c0, w0)])
    return _Contrast(means[0], means[1], parts[0], parts[1], note=note)


def _full(params: np.ndarray, keep: list[int], p: int) -> np.ndarray:
    out = np.zeros(p)
    out[keep] = params
    return out


def _arm_designs(X, codes: np.ndarray, gram: np.ndarray | None):
    """:func:`pipelines.stats.gcomp.arm_designs` for two arms, with each arm design's X'X
    (the reference arm's from the population's ``gram`` less the arm's, when given): the Gamma
    models' IRLS matrix and bread, at one X'WX pass instead of three."""
    p = X.shape[1]
    every = list(range(p))
    Xs = [_rows(X, codes == arm, every) for arm in (0, 1)]
    g1 = xtwx(Xs[1], np.ones(Xs[1].shape[0]))
    g0 = gram - g1 if gram is not None else xtwx(Xs[0], np.ones(Xs[0].shape[0]))
    designs, grams = [], []
    for Xk, G in zip(Xs, (g0, g1)):
        keep = _independent_columns(G) if Xk.shape[0] else []
        if len(keep) < p:  # a level no one (or everyone) in the arm has: no coefficient there
            Xk = Xk.take_columns(keep) if isinstance(Xk, CompactMatrix) else np.asfortranarray(Xk[:, keep])
        designs.append((Xk, keep))
        grams.append(G[np.ix_(keep, keep)])
    return designs, grams


def _aipw(
    c: np.ndarray,
    e: np.ndarray,
    a: np.ndarray,
    X,
    pm: PropensityModel,
    with_if: bool,
    names: tuple[str, str],
    method: str = "aipw",
    gram: np.ndarray | None = None,
) -> _Contrast | NotEstimable:
    n, p = X.shape
    codes = a.astype(np.int8)
    designs, grams = _arm_designs(X, codes, gram)
    outcome = outcome_models(e, X, codes, 2, designs=designs)
    if not outcome.converged:
        return NotEstimable(f"success outcome model: {outcome.note}", method, n)
    gammas = []
    for arm, (Xk, keep) in enumerate(designs):
        g = fit_gamma_log(Xk, c[codes == arm], gram=grams[arm])
        if not g.converged:
            return NotEstimable(f"cost model ({names[arm]}): {g.note}", method, n)
        gammas.append((g, Xk, keep))
    m_cost = [np.exp(X @ _full(g.params, keep, p)) for g, _, keep in gammas]  # [reference, arm]
    m_eff = counterfactual_risks(outcome, X)
    ps = np.clip(pm.ps, _PS_BOUND, 1 - _PS_BOUND)
    af = a.astype(float)
    # (arm code, indicator, its probability, d(1/prob)/d eta of the propensity model)
    arms = ((1, af, ps, -(1 - ps) / ps), (0, 1 - af, 1 - ps, ps / (1 - ps)))
    ps_nu = Nuisance(X, pm.fit) if with_if else None
    cost_means, eff_means, cost_c, eff_c = [], [], [], []
    for k, ind, prob, dinv in arms:
        inv = ind / prob
        for is_cost, y, m, means, contrib in (
            (True, c, m_cost[k], cost_means, cost_c),
            (False, e, m_eff[k], eff_means, eff_c),
        ):
            resid = y - m
            phi = m + inv * resid
            mu = float(phi.mean())
            means.append(mu)
            if not with_if:
                continue
            g_ps = X.T @ (ind * resid * dinv)
            corr = [ps_nu.correction(g_ps)]
            if is_cost:
                g, Xk, keep = gammas[k]
                # d phi / d gamma_k = m (1 - ind/prob) x; the Gamma model's score x (y - m)/m on its rows
                G = (X.T @ (m * (1.0 - inv)))[keep]
                part = np.zeros(n)
                part[codes == k] = (Xk @ solve_information(np.asarray(g.information), G)) * g.resid
                corr.append(part)
            else:
                corr.append(Nuisance(X, outcome.fits[k]).correction(X.T @ (m * (1 - m) * (1.0 - inv))))
            contrib.append(contributions(phi - mu, n, corr))
    cost_parts = [(cost_c[0], None), (-cost_c[1], None)] if with_if else None
    eff_parts = [(eff_c[0], None), (-eff_c[1], None)] if with_if else None
    return _Contrast(
        tuple(cost_means),
        tuple(eff_means),
        cost_parts,
        eff_parts,
        "gamma-log-glm",
        note=extrapolation_note(outcome, names),
    )


def _estimate(
    method: str,
    c,
    e,
    a,
    X,
    pm: PropensityModel | None,
    *,
    with_if: bool,
    welch: bool,
    names: tuple[str, str],
    gram: np.ndarray | None = None,
) -> _Contrast | NotEstimable:
    n = int(a.size)
    if method == "crude":
        return _crude(c, e, a, with_if, welch)
    if pm is None or not pm.fit.converged:
        why = "not fitted" if pm is None else pm.fit.note
        return NotEstimable(f"propensity model: {why}", method, n)
    if method == "iptw_ate":
        return _iptw(c, e, a, X, pm, with_if)
    if np.any(c < 0):
        return NotEstimable(
            f"{int((c < 0).sum())} negative costs: the Gamma cost model needs costs >= 0", method, n
        )
    return _aipw(c, e, a, X, pm, with_if, names, gram=gram)


def _joint_covariance(con: _Contrast, cluster: np.ndarray | None) -> np.ndarray:
    """2x2 covariance of (ΔC, ΔE): HC0 of the summed contributions, or CR2 cluster sums."""
    if cluster is None:
        sc = sum(p for p, _ in con.cost_parts)
        se = sum(p for p, _ in con.effect_parts)
    else:
        sc = sum(_cluster_sums(p, cluster, w) for p, w in con.cost_parts)
        se = sum(_cluster_sums(p, cluster, w) for p, w in con.effect_parts)
    return np.array([[sc @ sc, sc @ se], [sc @ se, se @ se]])


# -- rows and bootstrap ------------------------------------------------------------------------


def _take_rows(X, idx: np.ndarray):
    """Rows ``idx`` (with repeats) of a dense or compact design, dense ones Fortran-ordered."""
    if isinstance(X, CompactMatrix):
        return X.take_rows(idx)
    out = np.empty((idx.size, X.shape[1]), order="F")
    for j in range(X.shape[1]):
        np.take(X[:, j], idx, out=out[:, j])
    return out


def _bootstrap(
    B: int,
    seed: int,
    c,
    e,
    a,
    X,
    pm: PropensityModel | None,
    names: tuple[str, str],
) -> dict[str, tuple[np.ndarray, int]]:
    """Each method's (B', 2) replicate (ΔC, ΔE) and the number of replicates it failed in."""
    rng = np.random.default_rng(seed)
    arm_rows, ref_rows = np.flatnonzero(a), np.flatnonzero(~a)
    p = X.shape[1]
    reps: dict[str, list] = {m: [] for m in METHODS}
    failed = dict.fromkeys(METHODS, 0)
    start = None if pm is None or not pm.fit.converged else np.asarray(pm.fit.params)
    for _ in range(B):
        idx = np.concatenate([rng.choice(arm_rows, arm_rows.size), rng.choice(ref_rows, ref_rows.size)])
        Xb = _take_rows(X, idx)
        gram = xtwx(Xb, np.ones(idx.size))
        keep = _independent_columns(gram)
        if len(keep) < p:  # a rare level absent from the replicate
            Xb = Xb.take_columns(keep) if isinstance(Xb, CompactMatrix) else np.asfortranarray(Xb[:, keep])
            gram = gram[np.ix_(keep, keep)]
        cb, eb, ab = c[idx], e[idx], a[idx]
        pmb = fit_propensity(Xb, ab, (names[1], names[0]), start=None if start is None else start[keep])
        for m in METHODS:
            est = _estimate(m, cb, eb, ab, Xb, pmb, with_if=False, welch=False, names=names, gram=gram)
            if isinstance(est, NotEstimable):
                failed[m] += 1
            else:
                reps[m].append((est.dc, est.de))
    return {m: (np.array(reps[m]).reshape(-1, 2), failed[m]) for m in METHODS}


# -- the summary of one method ------------------------------------------------------------------


def _summarize(
    method: str,
    con: _Contrast,
    *,
    cov: np.ndarray | None,
    reps: np.ndarray | None,
    failed: int,
    B: int | None,
    wtp: Sequence[float],
    confidence: float,
    df: float | None,
    ci_method: str,
    names: tuple[str, str],
    n_arm: int,
    n_reference: int,
    n_excluded: int,
    notes: list[str],
) -> CostEffect | NotEstimable:
    n = n_arm + n_reference
    dc, de = con.dc, con.de
    icer = dc / de if de != 0 else float("nan")
    notes = [*notes, *([con.note] if con.note else [])]
    alpha = 1 - confidence
    icer_notes: list[str] = []
    if reps is None:
        dist = stats.norm if df is None else stats.t(df)
        q = float(dist.ppf(0.5 + confidence / 2))
        vc, ve, cv = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
        sc, se = math.sqrt(vc), math.sqrt(ve)
        corr = cv / (sc * se) if sc > 0 and se > 0 else float("nan")
        cost_ci, eff_ci = (dc - q * sc, dc + q * sc), (de - q * se, de + q * se)
        nmb, ceac = [], []
        for lam in wtp:
            v = lam * de - dc
            s = math.sqrt(max(lam * lam * ve - 2 * lam * cv + vc, 0.0))
            nmb.append((float(lam), v, v - q * s, v + q * s))
            ceac.append((float(lam), float(dist.cdf(v / s)) if s > 0 else float(v > 0) + 0.5 * float(v == 0)))
        lo, hi, why = fieller_interval(dc, de, vc, ve, cv, confidence, df)
        if why:
            icer_notes.append(why)
    else:
        if len(reps) < 2:
            return NotEstimable(f"{failed} of {B} bootstrap replicates not estimable", method, n)
        if failed:
            notes.append(f"{failed} of {B} bootstrap replicates not estimable, left out")
        qs = (alpha / 2, 1 - alpha / 2)
        rc, re_ = reps[:, 0], reps[:, 1]
        sc, se = float(rc.std(ddof=1)), float(re_.std(ddof=1))
        corr = float(np.corrcoef(rc, re_)[0, 1]) if sc > 0 and se > 0 else float("nan")
        cost_ci = tuple(float(x) for x in np.quantile(rc, qs))
        eff_ci = tuple(float(x) for x in np.quantile(re_, qs))
        nmb, ceac = [], []
        for lam in wtp:
            v = lam * re_ - rc
            nlo, nhi = np.quantile(v, qs)
            nmb.append((float(lam), lam * de - dc, float(nlo), float(nhi)))
            ceac.append((float(lam), float(np.mean(v > 0))))
        if de != 0 and np.all(np.sign(re_) == np.sign(de)):
            lo, hi = (float(x) for x in np.quantile(rc / re_, qs))
        else:
            lo = hi = None
            icer_notes.append(
                "the bootstrap replicates' success differences change sign: the ICER has no "
                "percentile interval"
            )
    if eff_ci[0] <= 0 <= eff_ci[1]:
        icer_notes.insert(
            0,
            "the success difference's interval includes 0: the ICER is unstable (its sign and "
            "size swing with small changes of the success difference); read the net monetary "
            "benefit and the acceptability curve",
        )
    elif icer < 0:
        icer_notes.insert(0, "a negative ICER does not rank: see dominance")
    return CostEffect(
        method=method, cost_difference=dc, cost_ci_low=cost_ci[0], cost_ci_high=cost_ci[1],
        effect_difference=de, effect_ci_low=eff_ci[0], effect_ci_high=eff_ci[1],
        cost_effect_correlation=corr, icer=icer, icer_ci_low=lo, icer_ci_high=hi,
        nmb=tuple(nmb), ceac=tuple(ceac), dominance=dominance(cost_ci, eff_ci, icer, names),
        n_arm=n_arm, n_reference=n_reference, n_excluded=n_excluded, ci_method=ci_method,
        cost_model=con.cost_model, icer_note="; ".join(icer_notes) or None, note="; ".join(notes) or None,
        confidence=confidence, cost_arm=con.cost[0], cost_reference=con.cost[1], effect_arm=con.effect[0],
        effect_reference=con.effect[1], cost_se=sc, effect_se=se,
    )  # fmt: skip


@single_blas_thread()
def cost_effectiveness(
    cost: np.ndarray,
    effect: np.ndarray,
    treated: np.ndarray,
    design: Design,
    *,
    propensity: PropensityModel | None = None,
    wtp: Sequence[float] = DEFAULT_WTP,
    cluster: np.ndarray | None = None,
    confidence: float = 0.95,
    bootstrap: int | None = None,
    seed: int = 0,
    names: tuple[str, str] = ("reference", "arm"),
) -> list[CostEffect | NotEstimable]:
    """Cost-effectiveness of the arm (``treated`` True) vs the reference by ``crude``,
    ``iptw_ate`` and ``aipw``, in that order, one :class:`CostEffect` (or :class:`NotEstimable`)
    each.

    Parameters
    ----------
    cost : dollars per episode (NaN: unknown, the row is left out).
    effect : 1 = success, 0 = not (NaN: not evaluable, the row is left out).
    treated : True for the arm (IOP), False for the reference (residential).
    design : :func:`pipelines.stats.design.build_design` over the same rows (covariates, no arm column).
    propensity : a :func:`~pipelines.stats.propensity.fit_propensity` model of ``treated`` on
        ``design``, all rows; refitted on the rows used when rows were left out (or none given).
    wtp : willingness to pay per success (dollars) for the NMB and the acceptability curve.
    cluster : cluster labels per row (e.g. site); cluster-robust (CR2) intervals with at least
        MIN_CLUSTERS clusters, else the person-level sandwich.
    bootstrap : B, for percentile intervals from B replicates resampled within arms (``seed``).
    names : (reference label, arm label) for the dominance words and notes.
    """
    cost = np.asarray(cost, dtype=float)
    effect = np.asarray(effect, dtype=float)
    a_all = np.asarray(treated).astype(bool)
    n_all = cost.size
    if not (effect.size == a_all.size == n_all == design.n):
        raise ValueError("cost, effect, treated and design must have the same rows")
    if np.isinf(cost).any():
        raise ValueError("cost holds infinite values")
    known = ~np.isnan(effect)
    if not np.all((effect[known] == 0) | (effect[known] == 1)):
        raise ValueError("effect must be 0/1 (NaN: not evaluable)")
    if bootstrap is not None and int(bootstrap) < 2:
        raise ValueError("bootstrap needs at least 2 replicates")
    used = known & ~np.isnan(cost)
    n_excluded = int((~used).sum())
    a = a_all[used]
    c, e = cost[used], effect[used]
    n1, n0 = int(a.sum()), int((~a).sum())
    n = n1 + n0
    notes: list[str] = []
    if n_excluded:
        notes.append(
            f"{int(np.isnan(cost).sum())} rows with unknown cost and {int((~known).sum())} with the "
            f"success not evaluable left out ({n_excluded} rows in all); every model is fitted on the "
            f"{n} rows with both"
        )
    if n1 < 2 or n0 < 2:
        who = names[1] if n1 < 2 else names[0]
        reason = f"{who} has {min(n1, n0)} rows with cost and success known: at least 2 are needed"
        return [NotEstimable(reason, m, n) for m in METHODS]
    if propensity is not None and (propensity.n != n_all or np.ndim(propensity.ps) != 1):
        raise ValueError("propensity must be a binary model fitted on every row of design")
    columns = design.columns
    if n_excluded:
        design = subset(design, used)
    X = design.matrix
    if propensity is None or n_excluded:
        start = None
        if propensity is not None:
            notes.append("propensity model refitted on the rows used")
            # the given model's coefficients start Newton's method (it converges to its own MLE)
            start = start_from(propensity.fit.params, columns, design.columns)
        propensity = fit_propensity(X, a, (names[1], names[0]), start=start)
    codes = None
    if cluster is not None:
        labels = np.asarray(cluster)
        if labels.shape[0] != n_all:
            raise ValueError("cluster must have one label per row")
        labels = labels[used]
        codes = cluster_codes(labels)
        if codes is None:
            notes.append(
                f"{np.unique(labels).size} clusters (fewer than the cluster-robust variance needs): "
                "person-level sandwich"
            )
    _, df = variance_label(codes)
    if bootstrap is not None:
        ci_method = f"bootstrap-percentile-B={int(bootstrap)}"
        boot = _bootstrap(int(bootstrap), seed, c, e, a, X, propensity, names)
        if codes is not None:
            notes.append("the bootstrap resamples people within arms, not clusters")
    out: list[CostEffect | NotEstimable] = []
    for m in METHODS:
        con = _estimate(
            m, c, e, a, X, propensity, with_if=True, welch=codes is None, names=names, gram=design.gram
        )
        if isinstance(con, NotEstimable):
            out.append(con)
            continue
        if bootstrap is None:
            ci = (
                ("welch-normal" if m == "crude" else "influence-function-sandwich")
                if codes is None
                else (f"influence-function-cr2-{int(df) + 1}-clusters")
            )
            reps, failed = None, 0
            cov = _joint_covariance(con, codes)
        else:
            ci, cov = ci_method, None
            reps, failed = boot[m]
        out.append(_summarize(
            m, con, cov=cov, reps=reps, failed=failed, B=bootstrap, wtp=wtp, confidence=confidence, df=df,
            ci_method=ci, names=names, n_arm=n1, n_reference=n0, n_excluded=n_excluded, notes=notes,
        ))  # fmt: skip
    return out
