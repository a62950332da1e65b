"""Time to readmission: (weighted) Kaplan–Meier, marginal Cox model with robust variance, log-rank.

Notes
-----
* Kaplan–Meier with weights: S(t) = prod (1 - d_w(t)/n_w(t)) over event times with weighted
  counts; the Greenwood variance uses the weighted counts, which is approximate for
  non-integer weights (it ignores weight estimation); intervals are on the log(-log) scale
  so they stay in [0, 1]. With weights of 1 this is the ordinary KM (checked against
  statsmodels ``SurvfuncRight``). Numbers at risk are unweighted head counts.
* Cox: a marginal structural model with the arm indicator only, fitted by weighted partial
  likelihood (Breslow ties), robust (Lin–Wei / Binder) variance from score residuals, summed
  within clusters (CR2-scaled, t(G-1)) when there are at least MIN_CLUSTERS of them
  (:mod:`pipelines.stats.inference`'s variance rule). It treats weights as fixed, which is conservative for IPTW
  ATE weights. statsmodels ``PHReg`` has no case weights, hence the own fit; unweighted it
  agrees with ``PHReg`` (tests/stats).
* Proportional hazards check: correlation of the Schoenfeld residuals with the rank of the
  event time (Grambsch–Therneau score test with the usual approximation var(r) ~ I/d),
  chi-square with 1 df.
* Log-rank: statsmodels ``survdiff`` (unweighted).

References
----------
Kaplan EL, Meier P. JASA 1958;53:457–481. Cox DR. JRSS B 1972;34:187–220.
Lin DY, Wei LJ. The robust inference for the Cox proportional hazards model. JASA
1989;84:1074–1078. Grambsch PM, Therneau TM. Biometrika 1994;81:515–526.
Cole SR, Hernán MA. Adjusted survival curves with inverse probability weights. Comput
Methods Programs Biomed 2004;75:45–49. Xie J, Liu C. Stat Med 2005;24:3089–3110.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from pipelines.stats.inference import MIN_CLUSTERS, cluster_codes, variance, variance_label, wald
from pipelines.stats.results import CoxResult, Estimate, NotEstimable, SurvivalCurve, TestResult, readonly


def kaplan_meier(
    time: np.ndarray,
    event: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    at: Sequence[float] = (30, 90, 180),
    confidence: float = 0.95,
) -> SurvivalCurve:
    """(Weighted) Kaplan–Meier curve with log(-log) intervals and numbers at risk at ``at``."""
    t = np.asarray(time, dtype=float)
    d = np.asarray(event).astype(bool)
    w = np.ones(t.size) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(t, kind="stable")
    t, d, w = t[order], d[order], w[order]
    ut, first = np.unique(t, return_index=True)
    wsum = np.add.reduceat(w, first)
    dsum = np.add.reduceat(w * d, first)
    nrisk_w = wsum[::-1].cumsum()[::-1]
    heads = np.diff(np.append(first, t.size))[::-1].cumsum()[::-1]
    ev = dsum > 0
    times, dw, nw, nh = ut[ev], dsum[ev], nrisk_w[ev], heads[ev]
    surv = np.cumprod(1 - dw / nw)
    with np.errstate(divide="ignore", invalid="ignore"):
        gw = np.cumsum(dw / (nw * (nw - dw)))
        z = stats.norm.ppf(0.5 + confidence / 2)
        ll = np.log(-np.log(surv))
        se_ll = np.sqrt(gw) / np.abs(np.log(surv))
        lo = np.exp(-np.exp(ll + z * se_ll))
        hi = np.exp(-np.exp(ll - z * se_ll))
    lo = np.where(surv >= 1, 1.0, np.where(surv <= 0, 0.0, lo))
    hi = np.where(surv >= 1, 1.0, np.where(surv <= 0, 0.0, hi))
    at_times = {}
    for a in at:
        k = np.searchsorted(times, a, side="right") - 1
        s = 1.0 if k < 0 else float(surv[k])
        at_times[float(a)] = {
            "survival": s,
            "ci_low": 1.0 if k < 0 else float(lo[k]),
            "ci_high": 1.0 if k < 0 else float(hi[k]),
            "at_risk": int((t >= a).sum()),
        }
    return SurvivalCurve(
        readonly(times), readonly(surv), readonly(lo), readonly(hi), readonly(nh), readonly(dw),
        int(t.size), "kaplan-meier" if weights is None else "weighted-kaplan-meier", at_times,
    )  # fmt: skip


def _risk_sums(t_sorted: np.ndarray, v: np.ndarray) -> np.ndarray:
    """For each person (sorted by time), the sum of v over everyone with time >= theirs."""
    rev = v[::-1].cumsum()[::-1]
    return rev[np.searchsorted(t_sorted, t_sorted, side="left")]


def cox_ph(
    time: np.ndarray,
    event: np.ndarray,
    treated: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    cluster: np.ndarray | None = None,
    confidence: float = 0.95,
    max_iter: int = 50,
    min_clusters: int = MIN_CLUSTERS,
) -> CoxResult | NotEstimable:
    """Hazard ratio of arm vs reference (weighted Cox, Breslow ties, robust variance) with a PH test."""
    t = np.asarray(time, dtype=float)
    order = np.argsort(t, kind="stable")
    t = t[order]
    d = np.asarray(event).astype(float)[order]
    z = np.asarray(treated).astype(float)[order]
    w = (np.ones(t.size) if weights is None else np.asarray(weights, dtype=float))[order]
    cl = None if cluster is None else np.asarray(cluster)[order]
    n, n_events = int(t.size), int(d.sum())
    if n_events == 0 or z.min() == z.max():
        return NotEstimable("no events or a single arm", "cox-ph", n)
    beta, converged = 0.0, False
    for _ in range(max_iter):
        r = w * np.exp(beta * z)
        s0, s1 = _risk_sums(t, r), _risk_sums(t, r * z)
        zbar = s1 / s0
        U = float((w * d * (z - zbar)).sum())
        info = float((w * d * (zbar - zbar**2)).sum())  # z is 0/1 so S2 = S1
        if not info > 0 or abs(beta) > 20:
            # every event in one arm: the likelihood is monotone and beta runs off to infinity
            # (the information reaches 0 before the estimate could be called unconverged)
            return NotEstimable("Cox model did not converge (the hazard ratio is 0 or infinite: every "
                                "readmission in one arm)", "cox-ph", n)
        step = U / info
        beta += step
        if abs(step) < 1e-10:
            converged = True
            break
    if not converged or abs(beta) > 20:
        return NotEstimable("Cox model did not converge", "cox-ph", n)
    e = np.exp(beta * z)
    r = w * e
    s0, s1 = _risk_sums(t, r), _risk_sums(t, r * z)
    zbar = s1 / s0
    info = float((w * d * (zbar - zbar**2)).sum())
    # Score residuals: event term minus the risk-set compensator up to each person's time.
    inc_a = np.cumsum(w * d / s0)
    inc_b = np.cumsum(w * d * zbar / s0)
    last = np.searchsorted(t, t, side="right") - 1
    L = d * (z - zbar) - e * (z * inc_a[last] - inc_b[last])
    codes = cluster_codes(cl, min_clusters)
    se = math.sqrt(variance(w * L / info, codes))
    label, df = variance_label(codes)
    lo, hi, p = wald(beta, se, confidence, df)
    hr = Estimate(
        math.exp(beta), math.exp(lo), math.exp(hi), n, "cox-ph-robust", "hr",
        "crude" if weights is None else "weighted", p_value=p, se=se,
        n_arm=int(z.sum()), n_reference=int(n - z.sum()), confidence=confidence,
        note=None if codes is None else "cluster-robust variance", variance=label, df=df,
    )  # fmt: skip
    ev = d > 0
    g = stats.rankdata(t[ev])
    we = w[ev]
    sch = (z - zbar)[ev]
    gc = g - np.average(g, weights=we)
    D = we.sum()
    num = float((we * gc * sch).sum()) ** 2
    den = float((we * gc**2).sum()) * info / D
    chi = float(num / den) if den > 0 else float("nan")
    ph = TestResult(chi, float(stats.chi2.sf(chi, 1)), "schoenfeld-rank-time", 1.0, n_events)
    return CoxResult(hr, ph, n, n_events, "cox-ph-breslow-robust")


def logrank(time: np.ndarray, event: np.ndarray, treated: np.ndarray) -> TestResult:
    """Log-rank test of arm vs reference (statsmodels ``survdiff``)."""
    from statsmodels.duration.survfunc import survdiff

    chi, p = survdiff(np.asarray(time, float), np.asarray(event, float), np.asarray(treated).astype(int))
    return TestResult(float(chi), float(p), "log-rank", 1.0, int(np.size(time)))
