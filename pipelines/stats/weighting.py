"""Balancing weights from a propensity model: IPTW (ATE, ATT), overlap (ATO), multinomial ATE.

Notes
-----
* ATE: w = 1/e for the arm, 1/(1-e) for the reference; stabilized by the marginal arm share
  (w = P(A=a)/P(A=a|X)) so the weights average about 1 in each arm. ATT: 1 for the arm,
  e/(1-e) for the reference (stabilized by n_reference/n_arm). For a binary treatment the
  Hájek (normalized) estimators are unchanged by stabilization, since a constant per arm
  cancels; it matters for reading weights and for truncation, which acts on the stabilized
  weights.
* Truncation (default: cap at 10, as CohortMethod's ``maxWeight``; or at a percentile of the
  weights) trades a little bias for variance; ``share_truncated`` reports how many people were
  capped. Overlap weights (arm 1-e, reference e) are bounded and never truncated: they target
  the population with the most clinical equipoise (ATO) and give exact mean balance on every
  covariate of a logistic propensity model (Li, Morgan & Zaslavsky 2018).
* Multinomial ATE: w = P(A=a)/P(A=a|X) from the generalized propensity score.
* Effective sample size (Kish): (sum w)^2 / sum w^2 within each arm.
* ``dlogw`` carries d log w / d eta (linear predictors of the propensity model) so that the
  weighted estimators' sandwich variance accounts for the estimated propensity model; a
  truncated weight is constant in the model parameters, so its derivative is zero.

References
----------
Lunceford JK, Davidian M. Stratification and weighting via the propensity score... Stat Med
2004;23:2937–2960. Robins JM, Hernán MA, Brumback B. Epidemiology 2000;11:550–560
(stabilized weights). Li F, Morgan KL, Zaslavsky AM. Balancing covariates via propensity
score weighting. JASA 2018;113:390–400. McCaffrey DF et al. Stat Med 2013;32:3388–3414
(multinomial). Kish L. Survey Sampling, Wiley 1965.
"""

from __future__ import annotations

import numpy as np

from pipelines.stats.results import PropensityModel, Weights, readonly

DEFAULT_MAX_WEIGHT = 10.0


def kish_ess(w: np.ndarray) -> float:
    """Kish effective sample size (sum w)^2 / sum w^2."""
    s2 = float(np.dot(w, w))
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0


def _truncate(w: np.ndarray, dlogw: np.ndarray, max_weight: float | None, percentile: float | None):
    cap = None
    if percentile is not None:
        cap = float(np.percentile(w, percentile))
    elif max_weight is not None:
        cap = float(max_weight)
    if cap is None:
        return w, dlogw, 0.0, None
    over = w > cap
    if not over.any():
        return w, dlogw, 0.0, cap
    w = np.where(over, cap, w)
    dlogw = dlogw.copy()
    dlogw[over] = 0.0
    return w, dlogw, float(over.mean()), cap


def _ess_by_arm(w: np.ndarray, codes: np.ndarray, arms: tuple[str, ...], binary: bool) -> dict[str, float]:
    if binary:
        return {arms[0]: kish_ess(w[codes == 1]), arms[1]: kish_ess(w[codes == 0])}
    return {arm: kish_ess(w[codes == k]) for k, arm in enumerate(arms)}


def iptw_weights(
    model: PropensityModel,
    target: str = "ate",
    *,
    stabilize: bool = True,
    max_weight: float | None = DEFAULT_MAX_WEIGHT,
    percentile: float | None = None,
) -> Weights:
    """Inverse probability of treatment weights for a binary propensity model.

    ``target`` is ``"ate"`` or ``"att"`` (the arm coded 1 is the treated group).
    ``percentile`` (e.g. 99) caps at that percentile of the weights instead of ``max_weight``.
    """
    if model.ps.ndim != 1:
        raise ValueError("iptw_weights needs a binary propensity model; use multinomial_weights")
    e = np.asarray(model.ps)
    a = model.treatment == 1
    pi = float(a.mean())
    # each arm's formula on its own rows only: a level held at logit +/-30 (everyone treated,
    # or no one) has e of exactly 1 or 0 there, and the other arm's formula would divide by 0
    w = np.empty_like(e)
    if target == "ate":
        w[a], w[~a] = 1.0 / e[a], 1.0 / (1.0 - e[~a])
        if stabilize:
            w = w * np.where(a, pi, 1.0 - pi)
        dlogw = np.where(a, -(1.0 - e), e)
    elif target == "att":
        w[a], w[~a] = 1.0, e[~a] / (1.0 - e[~a])
        if stabilize:
            w = w * np.where(a, 1.0, (1.0 - pi) / pi)
        dlogw = np.where(a, 0.0, 1.0)
    else:
        raise ValueError(f"unknown IPTW target {target!r}: use 'ate' or 'att'")
    w, dlogw, share, cap = _truncate(w, dlogw[:, None], max_weight, percentile)
    return Weights(
        weights=readonly(w),
        dlogw=readonly(dlogw),
        method=f"iptw_{target}",
        target=target,
        stabilized=stabilize,
        max_weight=cap,
        share_truncated=share,
        ess=_ess_by_arm(w, model.treatment, model.arms, True),
        n=int(e.size),
    )


def overlap_weights(model: PropensityModel) -> Weights:
    """Overlap weights: 1 - e for the arm, e for the reference (target: the overlap population)."""
    e = np.asarray(model.ps)
    a = model.treatment == 1
    w = np.where(a, 1.0 - e, e)
    dlogw = np.where(a, -e, 1.0 - e)[:, None]
    return Weights(
        weights=readonly(w),
        dlogw=readonly(dlogw),
        method="overlap",
        target="ato",
        stabilized=False,
        max_weight=None,
        share_truncated=0.0,
        ess=_ess_by_arm(w, model.treatment, model.arms, True),
        n=int(e.size),
    )


def multinomial_weights(
    model: PropensityModel,
    *,
    stabilize: bool = True,
    max_weight: float | None = DEFAULT_MAX_WEIGHT,
    percentile: float | None = None,
) -> Weights:
    """ATE weights P(A=a)/P(A=a|X) (or 1/P(A=a|X) unstabilized) for K >= 2 arms."""
    P = np.asarray(model.ps)
    if P.ndim != 2:
        raise ValueError("multinomial_weights needs a multinomial propensity model")
    codes = model.treatment.astype(np.int64)
    n, K = P.shape
    own = P[np.arange(n), codes]
    w = 1.0 / own
    if stabilize:
        w = w * np.bincount(codes, minlength=K)[codes] / n
    onehot = np.zeros((n, K))
    onehot[np.arange(n), codes] = 1.0
    dlogw = -(onehot[:, 1:] - P[:, 1:])
    w, dlogw, share, cap = _truncate(w, dlogw, max_weight, percentile)
    return Weights(
        weights=readonly(w),
        dlogw=readonly(dlogw),
        method="iptw_ate_multinomial",
        target="ate",
        stabilized=stabilize,
        max_weight=cap,
        share_truncated=share,
        ess=_ess_by_arm(w, codes, model.arms, False),
        n=n,
    )
