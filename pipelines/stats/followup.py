"""Outcomes measured at follow-up: ITT, complete case and inverse probability of follow-up weighting.

For a follow-up definition (abstinence at 90 days, say) some people are never reached.
Three estimates are reported side by side, each also weighted for confounding by the
treatment weights given (e.g. IPTW ATE):

* ``itt``: unreached people count as failures (missing = failure). Common in trials, but it
  mixes the outcome with the follow-up rate and biases the comparison when follow-up differs
  by arm (Hallgren & Witkiewitz 2013).
* ``cc`` (complete case): only reached people. Unbiased only if follow-up is unrelated to the
  outcome (missing completely at random, given arm).
* ``ipw_followup``: reached people weighted by 1 / P(reached | arm, covariates) from a
  logistic model fitted to the whole population; unbiased when follow-up depends only on arm
  and the modelled covariates (missing at random). Its variance accounts for both the
  propensity and the follow-up model (stacked estimating equations).

References
----------
Hallgren KA, Witkiewitz K. Missing data in alcohol clinical trials: a comparison of methods.
Alcohol Clin Exp Res 2013;37:2152–2160.
Robins JM, Rotnitzky A, Zhao LP. Analysis of semiparametric regression models for repeated
outcomes in the presence of missing data. JASA 1995;90:106–121.
Seaman SR, White IR. Review of inverse probability weighting for dealing with missing data.
Stat Methods Med Res 2013;22:278–295.
"""

from __future__ import annotations

import numpy as np

from pipelines.stats.design import with_column
from pipelines.stats.inference import Nuisance
from pipelines.stats.ipw import weighted_effect
from pipelines.stats.logistic import fit_logistic
from pipelines.stats.results import Effect, FollowupEstimates, LogisticFit, NotEstimable, Weights


def fit_followup(
    X: np.ndarray, treated: np.ndarray, reached: np.ndarray, *, Xa: np.ndarray | None = None
) -> LogisticFit:
    """Logistic model of P(reached | arm, covariates) on the whole population.

    ``Xa``: ``X`` with the arm column appended, when the caller has it (saves a copy).
    """
    if Xa is None:
        Xa = with_column(X, np.asarray(treated, dtype=float))
    return fit_logistic(Xa, np.asarray(reached, dtype=float))


def followup_estimates(
    y: np.ndarray,
    reached: np.ndarray,
    treated: np.ndarray,
    X: np.ndarray,
    weights: Weights | None = None,
    propensity: Nuisance | None = None,
    *,
    followup_fit: LogisticFit | None = None,
    cluster: np.ndarray | None = None,
    confidence: float = 0.95,
    Xa: np.ndarray | None = None,
) -> FollowupEstimates:
    """ITT, complete-case and IPFW estimates (each an RD/RR :class:`Effect`).

    ``y`` is the outcome (1/0) where ``reached`` (anything elsewhere); ``X`` the covariate
    design of the whole population (intercept first); ``weights`` / ``propensity`` the
    treatment weights and their model (None: unadjusted for confounding). ``followup_fit``
    reuses a :func:`fit_followup` model of the same rows (definitions sharing a window share it);
    ``Xa`` is ``X`` with the arm column appended, when the caller has it.
    """
    a = np.asarray(treated).astype(bool)
    r = np.asarray(reached).astype(bool)
    y = np.nan_to_num(np.asarray(y, dtype=float))
    n = int(a.size)
    w_t = np.ones(n) if weights is None else np.asarray(weights.weights)
    trt_nu = [] if weights is None or propensity is None else [(propensity, np.asarray(weights.dlogw))]
    target = "crude" if weights is None else weights.target

    itt = weighted_effect(
        np.where(r, y, 0.0), a, ~a, w_t, trt_nu, method="itt", target=target, cluster=cluster,
        confidence=confidence, note="unreached counted as failure",
    )  # fmt: skip
    cc_nu = [(nu, np.where(r[:, None], d, 0.0)) for nu, d in trt_nu]
    cc = weighted_effect(
        y, a & r, ~a & r, np.where(r, w_t, 0.0), cc_nu, method="cc", target=target,
        cluster=cluster, confidence=confidence, note="reached people only",
    )  # fmt: skip
    if Xa is None:
        Xa = with_column(X, a.astype(float))
    fu = followup_fit if followup_fit is not None else fit_logistic(Xa, r.astype(float))
    if not fu.converged:
        na = NotEstimable(f"follow-up model: {fu.note}", "ipw_followup", n)
        ipf = Effect(na, na, "ipw_followup", target, n)
    else:
        p = np.clip(fu.fitted, 1e-6, 1.0)
        w = np.where(r, w_t / p, 0.0)
        nus = cc_nu + [(Nuisance(Xa, fu), np.where(r, -(1.0 - p), 0.0)[:, None])]
        ipf = weighted_effect(
            y, a & r, ~a & r, w, nus, method="ipw_followup", target=target, cluster=cluster,
            confidence=confidence, note="reached people weighted by 1/P(reached | arm, covariates)",
        )  # fmt: skip
    share1 = float(r[a].mean()) if a.any() else float("nan")
    share0 = float(r[~a].mean()) if (~a).any() else float("nan")
    return FollowupEstimates(itt, cc, ipf, share1, share0, n)
