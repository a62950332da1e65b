"""Meta-analysis of per-site estimates: fixed effect, DerSimonian–Laird, Hartung–Knapp–Sidik–Jonkman.

In a network study each site shares only an estimate ``y_i`` and its variance ``v_i`` (a risk
difference, or a log odds / risk / hazard ratio: pooling is done on the scale given, and a
caller that pooled logs exponentiates the estimate and interval limits itself). :func:`pool`
combines ``k`` of them.

Methods
-------
* **Fixed effect** (inverse variance): weights ``w_i = 1 / v_i``, ``mu_FE = sum w_i y_i / sum
  w_i``, ``Var(mu_FE) = 1 / sum w_i``; normal interval.
* **Heterogeneity**: Cochran's ``Q = sum w_i (y_i - mu_FE)^2`` on ``k - 1`` degrees of freedom
  (chi-square p-value), ``I^2 = (Q - (k - 1)) / Q`` as a proportion, truncated at 0 (Higgins &
  Thompson 2002).
* **Random effects, DerSimonian–Laird**: ``tau^2 = max(0, (Q - (k - 1)) / c)`` with ``c = sum
  w_i - sum w_i^2 / sum w_i`` (method of moments, truncated at 0); weights ``w*_i = 1 / (v_i +
  tau^2)``, ``mu_RE = sum w*_i y_i / sum w*_i``, ``Var(mu_RE) = 1 / sum w*_i``; normal interval.
  This interval ignores the uncertainty in ``tau^2`` and under-covers when ``k`` is small.
* **Hartung–Knapp–Sidik–Jonkman (HKSJ)**: the same ``mu_RE`` with ``q = sum w*_i (y_i -
  mu_RE)^2 / (k - 1)``, ``Var = q / sum w*_i`` and a Student ``t_{k-1}`` interval (the scale
  of a weighted least-squares fit). Its coverage stays close to nominal for small ``k``, and it
  is the interval to report (:attr:`MetaResult.primary`). Because ``q`` can fall below 1 the
  HKSJ interval can be *narrower* than DerSimonian–Laird's (with ``k - 1`` degrees of freedom
  wider quantiles usually, but not always, compensate; with identical estimates it collapses
  to a point). The ad hoc modification of Knapp & Hartung (2003), discussed by Jackson et al.
  (2017), uses ``max(1, q)`` so that the variance never falls below DerSimonian–Laird's; it is
  reported as a separate field (``hksj_modified``), not as the default.
* **Prediction interval** for the effect in a new site (Higgins, Thompson & Spiegelhalter
  2009): ``mu_RE +- t_{k-2} sqrt(tau^2 + Var(mu_RE))`` with the DerSimonian–Laird variance;
  only for ``k >= 3``. (R ``meta`` with ``hakn = TRUE`` puts the HKSJ variance in its place.)

Edge cases: no estimates -> :class:`~pipelines.stats.results.NotEstimable`; one estimate -> the
fixed and random effects results are that estimate with its own normal interval, and there is no
heterogeneity, HKSJ or prediction interval (``None``); a variance that is not a finite positive
number, or an estimate that is not finite -> ``ValueError`` naming the index. With tau^2 = 0
(``Q <= k - 1``) the random effects results equal the fixed effect ones.

References
----------
DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials 1986;7:177-188.
Cochran WG. The combination of estimates from different experiments. Biometrics 1954;10:101-129.
Higgins JPT, Thompson SG. Quantifying heterogeneity in a meta-analysis. Stat Med
2002;21:1539-1558.
Hartung J, Knapp G. A refined method for the meta-analysis of controlled clinical trials with
binary outcome. Stat Med 2001;20:3875-3889.
Sidik K, Jonkman JN. A simple confidence interval for meta-analysis. Stat Med 2002;21:3153-3159.
Knapp G, Hartung J. Improved tests for a random effects meta-regression with a single covariate.
Stat Med 2003;22:2693-2710.
Jackson D, Law M, Rücker G, Schwarzer G. The Hartung-Knapp modification for random-effects
meta-analysis: a useful refinement but are there any residual concerns? Stat Med
2017;36:3923-3934.
Higgins JPT, Thompson SG, Spiegelhalter DJ. A re-evaluation of random-effects meta-analysis.
J R Stat Soc A 2009;172:137-159.
IntHout J, Ioannidis JPA, Borm GF. The Hartung-Knapp-Sidik-Jonkman method for random effects
meta-analysis is straightforward and considerably outperforms the standard DerSimonian-Laird
method. BMC Med Res Methodol 2014;14:25.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special

from pipelines.stats.results import NotEstimable, readonly

FIXED = "inverse-variance-fixed"
DL = "dersimonian-laird"
HKSJ = "hartung-knapp-sidik-jonkman"
HKSJ_MODIFIED = "hartung-knapp-sidik-jonkman-modified"
PREDICTION = "higgins-thompson-spiegelhalter"


@dataclass(frozen=True, slots=True)
class Pooled:
    """One pooled estimate on the scale of the inputs.

    ``df`` is the degrees of freedom of the Student t quantiles of the interval and p-value
    (``None``: normal). ``p_value`` tests a true effect of 0 (two-sided); ``None`` when ``se``
    is 0 (an HKSJ variance with identical estimates)."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    method: str
    p_value: float | None = None
    df: float | None = None
    confidence: float = 0.95


@dataclass(frozen=True, slots=True)
class Heterogeneity:
    """Between-site heterogeneity: Cochran's Q on ``df = k - 1`` degrees of freedom, its
    chi-square p-value, I^2 as a proportion (truncated at 0), DerSimonian–Laird tau^2 and tau."""

    q: float
    df: int
    p_value: float
    i2: float
    tau2: float
    tau: float


@dataclass(frozen=True, slots=True)
class Prediction:
    """Interval for the true effect in a new site: ``estimate +- t_df * se`` with ``se =
    sqrt(tau^2 + Var(mu_RE))`` and ``df = k - 2``."""

    low: float
    high: float
    se: float
    df: int
    confidence: float = 0.95
    method: str = PREDICTION


@dataclass(frozen=True, slots=True)
class MetaResult:
    """The pooled results of ``k`` site estimates (module docstring).

    ``weights_fixed`` / ``weights_random`` are each site's share of the fixed effect and random
    effects (DerSimonian–Laird) weight, in input order (read-only arrays summing to 1).
    ``hksj``, ``hksj_modified`` and ``heterogeneity`` are ``None`` when ``k = 1``;
    ``prediction`` is ``None`` when ``k < 3``."""

    k: int
    fixed: Pooled
    random: Pooled
    hksj: Pooled | None
    hksj_modified: Pooled | None
    heterogeneity: Heterogeneity | None
    prediction: Prediction | None
    weights_fixed: np.ndarray
    weights_random: np.ndarray
    confidence: float = 0.95

    @property
    def tau2(self) -> float:
        """DerSimonian–Laird tau^2 (0 with one site)."""
        return 0.0 if self.heterogeneity is None else self.heterogeneity.tau2

    @property
    def primary(self) -> Pooled:
        """The result to report: the (standard) HKSJ random effects interval; with one site,
        the site's own estimate and normal interval."""
        return self.random if self.hksj is None else self.hksj


# scipy.special rather than scipy.stats distributions: the same functions without the
# per-call overhead (a simulation pools thousands of meta-analyses)
@lru_cache(maxsize=64)
def _quantile(confidence: float, df: float | None) -> float:
    p = 0.5 + confidence / 2
    return float(special.ndtri(p) if df is None else special.stdtrit(df, p))


def _checked(estimates, variances) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(estimates, dtype=float)
    v = np.asarray(variances, dtype=float)
    if y.ndim != 1 or v.ndim != 1:
        raise ValueError("estimates and variances must be one-dimensional")
    if len(y) != len(v):
        raise ValueError(f"{len(y)} estimates but {len(v)} variances")
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise ValueError(f"estimate {int(bad[0])} is not finite: {y[bad[0]]!r}")
    bad = np.flatnonzero(~(np.isfinite(v) & (v > 0)))
    if len(bad):
        raise ValueError(f"variance {int(bad[0])} is not a finite positive number: {v[bad[0]]!r}")
    return y, v


def _tau2(y: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """(tau^2, Q, mu_FE) from estimates and inverse-variance weights."""
    sw = float(w.sum())
    mean = float(w @ y / sw)
    q = float(w @ (y - mean) ** 2)
    if len(y) < 2:
        return 0.0, q, mean
    c = sw - float(w @ w) / sw
    return (max(0.0, (q - (len(y) - 1)) / c) if c > 0 else 0.0), q, mean


def dersimonian_laird(estimates: np.ndarray, variances: np.ndarray) -> float:
    """Between-site variance tau^2 by DerSimonian and Laird's method of moments, truncated at 0
    (0.0 with fewer than 2 estimates). Raises ``ValueError`` for a variance that is not a finite
    positive number."""
    y, v = _checked(estimates, variances)
    if len(y) < 2:
        return 0.0
    return _tau2(y, 1 / v)[0]


def _pooled(estimate: float, var: float, method: str, confidence: float, df: float | None) -> Pooled:
    se = math.sqrt(var)
    half = _quantile(confidence, df) * se
    if se > 0:
        z = abs(estimate) / se
        p = float(2 * (special.ndtr(-z) if df is None else special.stdtr(df, -z)))
    else:
        p = None
    return Pooled(
        estimate,
        se,
        estimate - half,
        estimate + half,
        method,
        p,
        None if df is None else float(df),
        confidence,
    )


def pool(estimates, variances, *, confidence: float = 0.95) -> MetaResult | NotEstimable:
    """Pool site estimates ``y_i`` with variances ``v_i`` (fixed effect, DerSimonian–Laird,
    HKSJ, heterogeneity and prediction interval; module docstring)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    y, v = _checked(estimates, variances)
    k = len(y)
    if k == 0:
        return NotEstimable("no site estimates to pool", "meta-analysis", 0)
    w = 1 / v
    tau2, q, mu_fe = _tau2(y, w)
    fixed = _pooled(mu_fe, 1 / float(w.sum()), FIXED, confidence, None)
    ws = 1 / (v + tau2)
    sws = float(ws.sum())
    mu = float(ws @ y / sws)
    random = _pooled(mu, 1 / sws, DL, confidence, None)
    hksj = hksj_mod = het = pred = None
    if k >= 2:
        df = k - 1
        scale = float(ws @ (y - mu) ** 2) / df
        hksj = _pooled(mu, scale / sws, HKSJ, confidence, df)
        hksj_mod = _pooled(mu, max(1.0, scale) / sws, HKSJ_MODIFIED, confidence, df)
        i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
        het = Heterogeneity(q, df, float(special.chdtrc(df, q)), i2, tau2, math.sqrt(tau2))
    if k >= 3:
        se = math.sqrt(tau2 + 1 / sws)
        half = _quantile(confidence, k - 2) * se
        pred = Prediction(mu - half, mu + half, se, k - 2, confidence)
    return MetaResult(
        k, fixed, random, hksj, hksj_mod, het, pred,
        readonly(w / w.sum()), readonly(ws / sws), confidence,
    )  # fmt: skip


MANTEL_HAENSZEL = "mantel-haenszel-sato"


def mantel_haenszel_rd(events_arm, n_arm, events_reference, n_reference, *,
                       confidence: float = 0.95) -> Pooled | NotEstimable:
    """The Mantel–Haenszel common risk difference of ``k`` strata's 2x2 tables (sites, here: a
    one-shot pooled estimate from each site's counts alone) with the Sato (1989) variance, which
    stays consistent both with many small strata and with few large ones:

    ``RD = sum (a_k n0_k - c_k n1_k) / N_k / sum W_k``, ``W_k = n1_k n0_k / N_k``;
    ``Var = (RD sum P_k + sum Q_k) / (sum W_k)^2`` with
    ``P_k = (n1_k^2 c_k - n0_k^2 a_k + n1_k n0_k (n0_k - n1_k) / 2) / N_k^2`` and
    ``Q_k = (a_k (n0_k - c_k) + c_k (n1_k - a_k)) / (2 N_k)``;
    ``a``, ``c``: successes in the arm and the reference. A stratum with an empty group adds
    nothing (``W_k = 0``). Normal interval.

    Sato T. On the variance estimator for the Mantel-Haenszel risk difference. Biometrics
    1989;45:1323-1324. Greenland S, Robins JM. Estimation of a common effect parameter from
    sparse follow-up data. Biometrics 1985;41:55-68.
    """
    a, n1, c, n0 = (np.asarray(x, dtype=float) for x in (events_arm, n_arm, events_reference, n_reference))
    if not (a.shape == n1.shape == c.shape == n0.shape) or a.ndim != 1:
        raise ValueError("events and sizes must be 1-d arrays of one length")
    if np.any((a < 0) | (c < 0) | (a > n1) | (c > n0)) or not np.all(np.isfinite(a + n1 + c + n0)):
        raise ValueError("events must lie between 0 and the group's size")
    keep = (n1 > 0) & (n0 > 0)
    a, n1, c, n0 = a[keep], n1[keep], c[keep], n0[keep]
    if a.size == 0:
        return NotEstimable("no stratum has people in both groups", MANTEL_HAENSZEL, 0)
    n = n1 + n0
    w = n1 * n0 / n
    rd = float(((a * n0 - c * n1) / n).sum() / w.sum())
    p = (n1**2 * c - n0**2 * a + n1 * n0 * (n0 - n1) / 2) / n**2
    q = (a * (n0 - c) + c * (n1 - a)) / (2 * n)
    var = float((rd * p.sum() + q.sum()) / w.sum() ** 2)
    return _pooled(rd, max(var, 0.0), MANTEL_HAENSZEL, confidence, None)
