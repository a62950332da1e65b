"""Sensitivity to unmeasured confounding (E-values) and multiplicity across definitions.

Notes
-----
* E-value (VanderWeele & Ding 2017): the minimum strength of association, on the risk ratio
  scale, that an unmeasured confounder would need with both the arm and the outcome to
  explain away the estimate: E = RR + sqrt(RR (RR - 1)) for RR >= 1 (use 1/RR below 1). For
  the interval, the same formula at the limit closest to 1; E = 1 if the interval contains 1.
* Risk differences are converted to a risk ratio through the arm risks behind them
  (RR = risk_arm / risk_reference); for the interval limit the reference risk is held fixed,
  (risk_reference + limit) / risk_reference, an approximation. Prefer the RR estimate with
  its own interval where there is one (``e_value``).
* Multiplicity: many definitions are compared at once. Holm's step-down procedure controls
  the family-wise error rate; Benjamini–Hochberg controls the false discovery rate. The
  family is all definitions for one method and scale.

References
----------
VanderWeele TJ, Ding P. Sensitivity analysis in observational research: introducing the
E-value. Ann Intern Med 2017;167:268–274.
Holm S. Scand J Stat 1979;6:65–70. Benjamini Y, Hochberg Y. JRSS B 1995;57:289–300.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pipelines.stats.results import AdjustedPValues, Estimate, EValue, NotEstimable


def _e(rr: float) -> float:
    if rr < 1:
        rr = 1 / rr
    return rr + math.sqrt(rr * (rr - 1))


def e_value_rr(rr: float, ci_low: float, ci_high: float) -> EValue:
    """E-values for a risk ratio and for its confidence limit closest to the null."""
    if ci_low <= 1 <= ci_high:
        e_ci = 1.0
    else:
        e_ci = _e(ci_low if rr > 1 else ci_high)
    return EValue(rr, _e(rr), e_ci, "e-value")


def e_value(estimate: Estimate | NotEstimable) -> EValue | NotEstimable:
    """E-value of an RR estimate, or of an RD estimate converted through its arm risks."""
    if isinstance(estimate, NotEstimable):
        return estimate
    if estimate.estimand == "rr":
        return EValue(
            *_fields(e_value_rr(estimate.estimate, estimate.ci_low, estimate.ci_high)), n=estimate.n
        )
    if estimate.estimand == "rd":
        p1, p0 = estimate.risk_arm, estimate.risk_reference
        if p1 is None or p0 is None or p0 <= 0 or p1 <= 0:
            return NotEstimable("arm risks needed to convert RD to RR", "e-value", estimate.n)
        lo = (p0 + estimate.ci_low) / p0
        hi = (p0 + estimate.ci_high) / p0
        if lo <= 0:
            return NotEstimable("RD interval limit implies a non-positive risk", "e-value", estimate.n)
        r = e_value_rr(p1 / p0, lo, hi)
        return EValue(r.rr, r.e_value, r.e_value_ci, "e-value-from-rd", estimate.n)
    return NotEstimable(f"E-value not defined for estimand {estimate.estimand!r}", "e-value", estimate.n)


def _fields(ev: EValue) -> tuple[float, float, float, str]:
    return ev.rr, ev.e_value, ev.e_value_ci, ev.method


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down: running maximum of (m - k) p_(k) over sorted p, capped at 1.

    Written out because statsmodels' ``multipletests(method="holm")`` runs a full garbage
    collection on every call (seconds inside a large process); tests compare the two.
    """
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1)))
    out = np.empty_like(adj)
    out[order] = adj
    return out


def adjust_pvalues(p_values: Sequence[float | None]) -> AdjustedPValues:
    """Holm and Benjamini–Hochberg (statsmodels ``multipletests``) adjusted p-values; missing stay NaN."""
    from statsmodels.stats.multitest import multipletests

    p = np.array([np.nan if v is None else v for v in p_values], dtype=float)
    holm = np.full(p.size, np.nan)
    bh = np.full(p.size, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        holm[ok] = _holm(p[ok])
        bh[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return AdjustedPValues(tuple(p.tolist()), tuple(holm.tolist()), tuple(bh.tolist()), n=int(ok.sum()))
