"""Weighted (Hájek) estimators of arm risks, RD and RR: IPTW (ATE, ATT), overlap (ATO), multinomial.

mu_a = sum_{A=a} w_i y_i / sum_{A=a} w_i, with robust variance from stacked estimating
equations that include the propensity model (and any other weight model, e.g. the
follow-up model of :mod:`pipelines.stats.followup`), see :mod:`pipelines.stats.inference`.

Notes
-----
* Normalized (Hájek) rather than Horvitz–Thompson means: they stay inside [0, 1] and have
  smaller variance when weights are variable (Lunceford & Davidian 2004, estimator 2).
* Accounting for the estimated propensity score makes ATE intervals narrower than treating
  the weights as known (Lunceford & Davidian 2004, Section 3.3); ATT intervals may widen.
* Valid when the propensity model is correctly specified and every person has a positive
  probability of either arm (positivity); check balance and equipoise before reading the numbers.

References
----------
Lunceford JK, Davidian M. Stat Med 2004;23:2937–2960.
Hájek J. Comment on a paper by D. Basu. In: Foundations of Statistical Inference, 1971.
Li F, Morgan KL, Zaslavsky AM. JASA 2018;113:390–400 (overlap weights, ATO).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipelines.stats.inference import Nuisance, contributions, effect
from pipelines.stats.results import Effect, NotEstimable, Weights


def _arm_mean(
    y: np.ndarray, mask: np.ndarray, w: np.ndarray, nuisances: Sequence[tuple[Nuisance, np.ndarray]]
):
    wm = np.where(mask, w, 0.0)
    S = float(wm.sum())
    mu = float(wm @ y) / S
    psi = wm * (y - mu)
    corr = [nu.correction((psi[:, None] * dlogw).T @ nu.X) for nu, dlogw in nuisances]
    return mu, contributions(psi, S, corr), wm


def weighted_effect(
    y: np.ndarray,
    in_arm: np.ndarray,
    in_reference: np.ndarray,
    w: np.ndarray,
    nuisances: Sequence[tuple[Nuisance, np.ndarray]] = (),
    *,
    method: str,
    target: str,
    cluster: np.ndarray | None = None,
    confidence: float = 0.95,
    note: str | None = None,
) -> Effect:
    """Hájek RD/RR of ``in_arm`` vs ``in_reference`` with weights ``w``.

    ``nuisances`` pairs each weight model with d log w / d eta for that model (n, m); rows
    outside both arms, or with weight 0, contribute nothing. ``y`` may hold NaN there.
    """
    y = np.where(in_arm | in_reference, np.nan_to_num(np.asarray(y, dtype=float)), 0.0)
    n1, n0 = int(in_arm.sum()), int(in_reference.sum())
    if n1 == 0 or n0 == 0:
        na = NotEstimable("an arm has no people", method, n1 + n0)
        return Effect(na, na, method, target, n1 + n0)
    mu1, c1, w1 = _arm_mean(y, in_arm, w, nuisances)
    mu0, c0, w0 = _arm_mean(y, in_reference, w, nuisances)
    return effect(
        mu1, mu0, c1, c0, method=method, target=target, n_arm=n1, n_reference=n0,
        cluster=cluster, confidence=confidence, note=note, omega1=w1, omega0=w0,
    )  # fmt: skip


def iptw_effect(
    y: np.ndarray,
    treated: np.ndarray,
    weights: Weights,
    propensity: Nuisance,
    *,
    cluster: np.ndarray | None = None,
    confidence: float = 0.95,
) -> Effect:
    """RD/RR of arm (treated = 1) vs reference with IPTW or overlap ``weights``.

    ``propensity`` is the propensity model's design and fit; its estimation enters the variance.
    """
    a = np.asarray(treated).astype(bool)
    note = None
    if weights.share_truncated > 0:
        note = f"{weights.share_truncated:.2%} of weights truncated at {weights.max_weight:.3g}"
    return weighted_effect(
        y, a, ~a, weights.weights, [(propensity, weights.dlogw)], method=weights.method,
        target=weights.target, cluster=cluster, confidence=confidence, note=note,
    )  # fmt: skip


def multinomial_effect(
    y: np.ndarray,
    codes: np.ndarray,
    arm: int,
    reference: int,
    weights: Weights,
    propensity: Nuisance,
    *,
    cluster: np.ndarray | None = None,
    confidence: float = 0.95,
) -> Effect:
    """Pairwise RD/RR of arm code ``arm`` vs ``reference`` under multinomial ATE weights."""
    return weighted_effect(
        y, codes == arm, codes == reference, weights.weights, [(propensity, weights.dlogw)],
        method=weights.method, target="ate", cluster=cluster, confidence=confidence,
    )  # fmt: skip
