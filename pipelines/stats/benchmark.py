"""Indirect standardization against a reference population: observed / expected.

A logistic case-mix model is fitted on the reference rows (national TEDS-D discharges of one
setting), then applied to a program's episodes of that setting: each episode's expected
probability of success ``p_i``, the program's expected successes ``E = sum p_i``, and its
observed ``O``. Everything works on covariate patterns (rows sharing every covariate value,
with their counts), so a reference of millions of rows is a few hundred thousand patterns.

Intervals for O/E carry both sources of uncertainty, on the scale of a site offset ``delta``
(the program's log-odds shift from the reference model: ``sum n_k expit(eta_k + delta) = O``,
its maximum-likelihood estimate):

* the program's sampling: ``1 / I`` with ``I = sum n_k q_k (1 - q_k)``, the Poisson-binomial
  variance of ``O`` at the fitted ``q_k = expit(eta_k + delta)``;
* the reference model's: ``Var(E) = g' V g`` (delta method, ``g = sum n_k p_k (1-p_k) x_k``,
  ``V`` the inverse information of the reference fit), carried to the offset scale as
  ``Var(log E) (O / I)^2``.

The interval ``delta +- z se`` is mapped back through ``O/E(delta) = sum n_k expit(eta_k +
delta) / E``, a monotone function, so O/E's interval never leaves ``[0, n / E]``. An observed
count of 0 or ``n`` is moved half a success inward for the offset (a continuity correction).

Shrinkage (``shrink``): the sites' offsets are pulled toward 0 (the national rate) by an
empirical-Bayes normal-normal model, ``delta_s ~ N(0, tau^2)``, with ``tau^2`` by
DerSimonian and Laird's method of moments; site ``s`` keeps ``B_s = tau^2 / (tau^2 + se_s^2)``
of its offset and its interval is the posterior's, ``B_s delta_s +- z sqrt(B_s se_s^2)``. This
is the logic of CMS's hierarchical hospital measures (predicted / expected with a shrunk
hospital effect), estimated in two stages instead of one mixed model.

Discrimination is the c-statistic (Mann-Whitney, ties counted half); calibration the held-out
observed minus predicted rate (calibration-in-the-large) and the logistic recalibration
``logit P(y) = a + b eta`` (slope ``b``; intercept ``a`` with ``eta`` as offset).

References
----------
Krumholz HM, et al. An administrative claims model suitable for profiling hospital performance
based on 30-day mortality rates among patients with heart failure. Circulation 2006;113:1693-1701.
Spiegelhalter DJ. Funnel plots for comparing institutional performance. Stat Med 2005;24:1185-1202.
Cox DR. Two further applications of a model for binary regression. Biometrika 1958;45:562-565.
DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials 1986;7:177-188.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import expit
from scipy.stats import norm

from pipelines.stats.logistic import fit_logistic
from pipelines.stats.meta import dersimonian_laird

Z95 = float(norm.ppf(0.975))
Z998 = float(norm.ppf(0.999))


@dataclass(frozen=True)
class ReferenceFit:
    """A case-mix model fitted on reference patterns."""

    params: np.ndarray
    cov: np.ndarray  # inverse information (model-based)
    converged: bool
    note: str | None
    n: int
    rate: float  # the reference rows' crude rate


def fit_reference(X: np.ndarray, successes: np.ndarray, trials: np.ndarray) -> ReferenceFit:
    """Binomial logistic regression of ``successes`` of ``trials`` on the pattern design ``X``
    (intercept included; a dense array or a :class:`~pipelines.stats.compact.CompactMatrix`):
    each pattern enters as up to two frequency-weighted rows, its successes (y = 1) and its
    failures (y = 0)."""
    s = np.asarray(successes, dtype=float)
    t = np.asarray(trials, dtype=float)
    f = t - s
    rows = np.concatenate([np.flatnonzero(s > 0), np.flatnonzero(f > 0)])
    ye = np.concatenate([np.ones(int((s > 0).sum())), np.zeros(int((f > 0).sum()))])
    fit = fit_logistic(X[rows], ye, freq_weights=np.concatenate([s[s > 0], f[f > 0]]))
    cov = np.linalg.pinv(np.asarray(fit.information))
    return ReferenceFit(params=np.asarray(fit.params), cov=cov, converged=fit.converged, note=fit.note,
                        n=int(t.sum()), rate=float(s.sum() / t.sum()) if t.sum() else float("nan"))


@dataclass(frozen=True)
class Scored:
    """A group's sums over its scored patterns (one setting or several)."""

    n: int
    observed: int
    expected: float
    var_expected: float  # from the reference models' coefficients
    etas: np.ndarray  # linear predictor per pattern
    counts: np.ndarray  # episodes per pattern


@dataclass(frozen=True)
class GroupSums:
    """Per-group sums of one setting's scored patterns (arrays indexed by group code)."""

    n: np.ndarray
    observed: np.ndarray
    expected: np.ndarray
    var_expected: np.ndarray  # g' V g of each group


def score_groups(X: np.ndarray, counts: np.ndarray, successes: np.ndarray, fit: ReferenceFit,
                 groupings: dict[str, tuple[np.ndarray, int]]) -> tuple[np.ndarray, dict[str, GroupSums]]:
    """The linear predictor of each program pattern, and for each grouping (name -> (group code
    per pattern, number of groups)) the groups' episodes, observed and expected successes and the
    variance of the expected from the reference coefficients (delta method: ``g = sum n p (1-p) x``
    over the group's patterns, as one sparse product for all groups)."""
    from scipy import sparse

    eta = X @ fit.params
    p = expit(eta)
    n = np.asarray(counts, dtype=float)
    w = n * p * (1 - p)
    rows = np.arange(len(n))
    out = {}
    for name, (codes, k) in groupings.items():
        G = np.asarray(sparse.csr_matrix((w, (codes, rows)), shape=(k, len(n))) @ X)
        out[name] = GroupSums(n=np.bincount(codes, weights=n, minlength=k),
                              observed=np.bincount(codes, weights=successes, minlength=k),
                              expected=np.bincount(codes, weights=n * p, minlength=k),
                              var_expected=np.einsum("gi,ij,gj->g", G, fit.cov, G))
    return eta, out


def score(X: np.ndarray, counts: np.ndarray, successes: np.ndarray, fit: ReferenceFit) -> Scored:
    """Expected successes of program patterns under the reference model, as one group."""
    eta, sums = score_groups(X, counts, successes, fit, {"all": (np.zeros(len(counts), dtype=np.int64), 1)})
    g = sums["all"]
    return Scored(n=int(g.n[0]), observed=int(g.observed[0]), expected=float(g.expected[0]),
                  var_expected=float(g.var_expected[0]), etas=eta, counts=np.asarray(counts, dtype=float))


def _expected_at(s: Scored, delta: float) -> float:
    return float(s.counts @ expit(s.etas + delta))


def _shift(etas: np.ndarray, counts: np.ndarray, target: float) -> float:
    """The ``d`` with ``sum counts expit(etas + d) = target`` (Newton kept inside a bracket):
    the maximum-likelihood intercept of ``logit P(y) = d + eta`` with eta as offset."""
    lo, hi = -40.0, 40.0
    d = 0.0
    for _ in range(60):
        q = expit(etas + d)
        e = float(counts @ q)
        if abs(e - target) < 1e-10 * max(1.0, target):
            break
        if e < target:
            lo = d
        else:
            hi = d
        slope = float(counts @ (q * (1 - q)))
        step = d + (target - e) / slope if slope > 0 else math.nan
        d = step if lo < step < hi else (lo + hi) / 2
    return d


def offset(s: Scored) -> float:
    """The log-odds shift ``delta`` with ``sum n expit(eta + delta) = O`` (O moved half a
    success inward when it is 0 or n)."""
    return _shift(s.etas, s.counts, min(max(float(s.observed), 0.5), s.n - 0.5))


def offset_se(s: Scored, delta: float) -> float:
    """Standard error of the offset: program sampling plus reference-model uncertainty."""
    q = expit(s.etas + delta)
    info = float(s.counts @ (q * (1 - q)))
    o = _expected_at(s, delta)
    var = 1 / info + (s.var_expected / s.expected**2) * (o / info) ** 2
    return math.sqrt(var)


@dataclass(frozen=True)
class Ratio:
    oe: float
    low: float
    high: float
    delta: float
    se: float


def _ratio(s: Scored, delta: float, se: float, oe: float, confidence: float) -> Ratio:
    """O/E with the interval of the offset ``delta +- z se`` mapped back through O/E(delta)."""
    z = float(norm.ppf(0.5 + confidence / 2))
    return Ratio(oe=oe, low=_expected_at(s, delta - z * se) / s.expected,
                 high=_expected_at(s, delta + z * se) / s.expected, delta=delta, se=se)


def oe_ratio(s: Scored, confidence: float = 0.95) -> Ratio:
    """O/E and its interval (module docstring). With no success observed the interval starts
    at 0, and with every episode a success it ends at n / E: the continuity-corrected offset
    gives the interval's width, never an interval that leaves out the estimate itself."""
    d = offset(s)
    r = _ratio(s, d, offset_se(s, d), s.observed / s.expected, confidence)
    if s.observed <= 0:
        r = replace(r, low=0.0)
    if s.observed >= s.n:
        r = replace(r, high=s.n / s.expected)
    return r


def shrink(groups: list[Scored], confidence: float = 0.95) -> list[Ratio]:
    """Empirical-Bayes O/E of each group, its offset pulled toward 0 (module docstring)."""
    deltas = np.array([offset(s) for s in groups])
    ses = np.array([offset_se(s, d) for s, d in zip(groups, deltas, strict=True)])
    tau2 = dersimonian_laird(deltas, ses**2)
    out = []
    for s, d, se in zip(groups, deltas, ses, strict=True):
        b = tau2 / (tau2 + se**2)
        out.append(_ratio(s, b * d, math.sqrt(b) * se, _expected_at(s, b * d) / s.expected, confidence))
    return out


def verdict(low: float, high: float) -> str:
    """Words for an O/E interval of a success (higher is better)."""
    if low > 1:
        return "better than expected"
    if high < 1:
        return "worse than expected"
    return "as expected"


def funnel_limits(expected: np.ndarray, rate: float, z: float) -> tuple[np.ndarray, np.ndarray]:
    """O/E control limits at ``z`` for a program whose expected count is ``expected`` and
    expected rate ``rate``: 1 +- z sqrt(E (1 - rate)) / E (binomial variance of O under the
    reference model; Spiegelhalter 2005)."""
    e = np.asarray(expected, dtype=float)
    half = z * np.sqrt(e * (1 - rate)) / e
    return np.maximum(1 - half, 0.0), 1 + half


def c_statistic(p: np.ndarray, successes: np.ndarray, failures: np.ndarray) -> float | None:
    """Area under the ROC curve from patterns: P(p of a success > p of a failure), ties half."""
    p = np.asarray(p, dtype=float)
    s = np.asarray(successes, dtype=float)
    f = np.asarray(failures, dtype=float)
    total_s, total_f = s.sum(), f.sum()
    if total_s == 0 or total_f == 0:
        return None
    values, inverse = np.unique(p, return_inverse=True)
    s_by = np.bincount(inverse, weights=s, minlength=len(values))
    f_by = np.bincount(inverse, weights=f, minlength=len(values))
    f_below = np.concatenate([[0.0], np.cumsum(f_by)[:-1]])
    return float((s_by @ f_below + 0.5 * s_by @ f_by) / (total_s * total_f))


@dataclass(frozen=True)
class Calibration:
    in_the_large: float
    intercept: float | None
    slope: float | None
    bins: list[tuple[int, int, float, float]]  # decile, n, mean predicted, observed rate


def calibration(eta: np.ndarray, successes: np.ndarray, trials: np.ndarray, bins: int = 10) -> Calibration:
    """Held-out calibration of a reference model (module docstring)."""
    eta = np.asarray(eta, dtype=float)
    s = np.asarray(successes, dtype=float)
    t = np.asarray(trials, dtype=float)
    p = expit(eta)
    citl = float(s.sum() / t.sum() - (t @ p) / t.sum())
    Xc = np.column_stack([np.ones_like(eta), eta])
    slope_fit = fit_reference(Xc, s, t)
    slope = float(slope_fit.params[1]) if slope_fit.converged else None
    intercept = _offset_intercept(eta, s, t)
    order = np.argsort(p, kind="stable")
    cum = np.cumsum(t[order])
    # a pattern goes to the decile of its middle episode
    which = np.minimum((bins * (cum - t[order] / 2) / cum[-1]).astype(int), bins - 1)
    out = []
    for b in range(bins):
        idx = order[which == b]
        nb = t[idx].sum()
        if nb > 0:
            out.append((b + 1, int(nb), float(t[idx] @ p[idx] / nb), float(s[idx].sum() / nb)))
    return Calibration(in_the_large=citl, intercept=intercept, slope=slope, bins=out)


def _offset_intercept(eta: np.ndarray, s: np.ndarray, t: np.ndarray) -> float | None:
    """``a`` in ``logit P(y) = a + eta`` (maximum likelihood; None when every row fails or
    every row succeeds, where it does not exist)."""
    total = float(s.sum())
    return None if total in (0.0, float(t.sum())) else _shift(eta, t.astype(float), total)
