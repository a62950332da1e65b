"""Proportions and 2x2 tables: rates with intervals, RD / RR / OR with intervals, tests.

Notes
-----
* Wilson's score interval is the default for a rate: its coverage is close to nominal for
  any n and p, unlike the Wald interval. Clopper–Pearson is "exact" (guaranteed >= nominal
  coverage, conservative).
* The risk difference interval is Newcombe's hybrid score interval (method 10 of Newcombe
  1998), built from the two Wilson intervals; it stays inside [-1, 1] and behaves well with
  zero cells.
* Risk ratio: Katz log interval, se(log RR) = sqrt(1/a - 1/n1 + 1/c - 1/n0). Odds ratio:
  Woolf log interval, se(log OR) = sqrt(1/a + 1/b + 1/c + 1/d). When any cell is zero both
  add 0.5 to every cell (Haldane–Anscombe correction) so the estimate and interval are
  finite; the result's ``note`` says so. With zero events in both arms the ratio is not
  estimable.
* The test of independence is Pearson's chi-square without continuity correction, or
  Fisher's exact test (two-sided, summing tables no more probable than the observed) when
  any expected cell count is below 5 (Cochran's rule).

References
----------
Wilson EB. Probable inference... JASA 1927;22:209–212.
Clopper CJ, Pearson ES. Biometrika 1934;26:404–413.
Newcombe RG. Interval estimation for the difference between independent proportions:
comparison of eleven methods. Stat Med 1998;17:873–890.
Katz D et al. Obtaining confidence intervals for the risk ratio in cohort studies.
Biometrics 1978;34:469–474. Woolf B. Ann Hum Genet 1955;19:251–253.
Haldane JBS. Ann Hum Genet 1956;20:309–311.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import special

from pipelines.stats.results import Estimate, NotEstimable, Proportion, TestResult

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def _z(confidence: float) -> float:
    return float(special.ndtri(0.5 + confidence / 2))  # the normal quantile, without scipy.stats' import


def wilson(events: int, n: int, confidence: float = 0.95) -> Proportion | NotEstimable:
    """Rate ``events / n`` with Wilson's score interval."""
    if n <= 0:
        return NotEstimable("no people", "wilson", 0)
    lo, hi = _wilson_bounds(events, n, confidence)
    return Proportion(events / n, lo, hi, n, events, "wilson", confidence)


def wilson_interval(events: ArrayLike, n: ArrayLike, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's score interval (Newcombe 1998, method 3) of ``events / n``, element by element;
    every n must be > 0."""
    z = _z(confidence)
    x, n = np.asarray(events, dtype=float), np.asarray(n, dtype=float)
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def _wilson_bounds(events: int, n: int, confidence: float) -> tuple[float, float]:
    lo, hi = wilson_interval(events, n, confidence)
    return float(lo), float(hi)


def clopper_pearson(events: int, n: int, confidence: float = 0.95) -> Proportion | NotEstimable:
    """Rate ``events / n`` with the Clopper–Pearson (beta quantile) interval."""
    if n <= 0:
        return NotEstimable("no people", "clopper-pearson", 0)
    lo, hi = clopper_pearson_interval(events, n, confidence)
    return Proportion(events / n, float(lo), float(hi), n, events, "clopper-pearson", confidence)


def clopper_pearson_interval(events: ArrayLike, n: ArrayLike,
                             confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The Clopper–Pearson exact interval of ``events / n`` from beta quantiles, element by
    element (0 below no events, 1 above all); every n must be > 0."""
    from scipy import stats

    x, n = np.asarray(events, dtype=float), np.asarray(n, dtype=float)
    alpha = 1 - confidence
    with np.errstate(invalid="ignore"):
        low = np.where(x > 0, stats.beta.ppf(alpha / 2, np.maximum(x, 1), n - x + 1), 0.0)
        high = np.where(x < n, stats.beta.ppf(1 - alpha / 2, x + 1, np.maximum(n - x, 1)), 1.0)
    return low, high


def test_2x2(e1: int, n1: int, e0: int, n0: int) -> TestResult | NotEstimable:
    """Pearson chi-square (no continuity correction), or Fisher's exact when an expected cell < 5."""
    table = [[e1, n1 - e1], [e0, n0 - e0]]
    n = n1 + n0
    events = e1 + e0
    if n1 == 0 or n0 == 0 or events == 0 or events == n:
        return NotEstimable("a margin of the 2x2 table is zero", "chi-square", n)
    expected = [n1 * events / n, n1 * (n - events) / n, n0 * events / n, n0 * (n - events) / n]
    from scipy import stats

    if min(expected) < 5:
        res = stats.fisher_exact(table)
        return TestResult(float("nan"), float(res.pvalue), "fisher-exact", None, n)
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    return TestResult(float(chi2), float(p), "pearson-chi-square", float(dof), n)


def _p(e1: int, n1: int, e0: int, n0: int) -> float | None:
    t = test_2x2(e1, n1, e0, n0)
    return None if isinstance(t, NotEstimable) else t.p_value


def risk_difference(e1: int, n1: int, e0: int, n0: int, confidence: float = 0.95) -> Estimate | NotEstimable:
    """p1 - p0 with Newcombe's hybrid score interval (method 10)."""
    if n1 <= 0 or n0 <= 0:
        return NotEstimable("an arm has no people", "newcombe-hybrid-score", n1 + n0)
    l1, u1 = _wilson_bounds(e1, n1, confidence)
    l0, u0 = _wilson_bounds(e0, n0, confidence)
    p1, p0 = e1 / n1, e0 / n0
    d = p1 - p0
    lo = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return Estimate(
        d, lo, hi, n1 + n0, "newcombe-hybrid-score", "rd", "crude",
        p_value=_p(e1, n1, e0, n0), n_arm=n1, n_reference=n0, risk_arm=p1, risk_reference=p0,
        confidence=confidence,
    )  # fmt: skip


def _cells(e1: int, n1: int, e0: int, n0: int) -> tuple[float, float, float, float, str | None]:
    a, b, c, d = float(e1), float(n1 - e1), float(e0), float(n0 - e0)
    if min(a, b, c, d) == 0:
        return a + 0.5, b + 0.5, c + 0.5, d + 0.5, "Haldane correction: 0.5 added to every cell (a zero cell)"
    return a, b, c, d, None


def risk_ratio(e1: int, n1: int, e0: int, n0: int, confidence: float = 0.95) -> Estimate | NotEstimable:
    """p1 / p0 with the Katz log interval (Haldane correction with a zero cell)."""
    if n1 <= 0 or n0 <= 0:
        return NotEstimable("an arm has no people", "katz-log", n1 + n0)
    if e1 == 0 and e0 == 0:
        return NotEstimable("no events in either arm", "katz-log", n1 + n0)
    a, b, c, d, note = _cells(e1, n1, e0, n0)
    r1, r0 = a / (a + b), c / (c + d)
    rr = r1 / r0
    se = math.sqrt(1 / a - 1 / (a + b) + 1 / c - 1 / (c + d))
    z = _z(confidence)
    return Estimate(
        rr, rr * math.exp(-z * se), rr * math.exp(z * se), n1 + n0, "katz-log", "rr", "crude",
        p_value=_p(e1, n1, e0, n0), se=se, n_arm=n1, n_reference=n0, risk_arm=r1, risk_reference=r0,
        confidence=confidence, note=note,
    )  # fmt: skip


def odds_ratio(e1: int, n1: int, e0: int, n0: int, confidence: float = 0.95) -> Estimate | NotEstimable:
    """Odds ratio with the Woolf log interval (Haldane correction with a zero cell)."""
    if n1 <= 0 or n0 <= 0:
        return NotEstimable("an arm has no people", "woolf-log", n1 + n0)
    if (e1 == 0 and e0 == 0) or (e1 == n1 and e0 == n0):
        return NotEstimable("no events (or no non-events) in either arm", "woolf-log", n1 + n0)
    a, b, c, d, note = _cells(e1, n1, e0, n0)
    orr = (a * d) / (b * c)
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    z = _z(confidence)
    return Estimate(
        orr, orr * math.exp(-z * se), orr * math.exp(z * se), n1 + n0, "woolf-log", "or", "crude",
        p_value=_p(e1, n1, e0, n0), se=se, n_arm=n1, n_reference=n0,
        risk_arm=e1 / n1, risk_reference=e0 / n0, confidence=confidence, note=note,
    )  # fmt: skip
