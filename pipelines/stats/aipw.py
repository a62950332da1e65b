"""Augmented inverse probability weighting (AIPW), the doubly robust estimator of the ATE.

    mu_1 = mean( m1(X) + A (Y - m1(X)) / e(X) ),   mu_0 = mean( m0(X) + (1-A)(Y - m0(X)) / (1-e(X)) )

with e the propensity score and m_a the outcome model's predicted risk under arm a (the
logistic outcome model of :mod:`pipelines.stats.gcomp`).

Notes
-----
* Consistent when either the propensity model or the outcome model is correct; efficient
  when both are.
* Variance: the influence function of each arm mean plus the first-order terms for both
  estimated nuisance models (stacked estimating equations). The nuisance terms vanish
  asymptotically when both models are correct, and keep the interval honest when one of
  them is not.
* Propensity scores are bounded to [1e-6, 1 - 1e-6] only to avoid division by zero; AIPW
  uses untruncated inverse probabilities, so extreme scores inflate its variance — read the
  equipoise diagnostic first.

References
----------
Robins JM, Rotnitzky A, Zhao LP. JASA 1994;89:846–866.
Lunceford JK, Davidian M. Stat Med 2004;23:2937–2960 (estimator 3 and its sandwich).
Glynn AN, Quinn KM. An introduction to the augmented inverse propensity weighted
estimator. Political Analysis 2010;18:36–56.
"""

from __future__ import annotations

import numpy as np

from pipelines.stats.gcomp import counterfactual_risks, outcome_model
from pipelines.stats.inference import Nuisance, contributions, effect
from pipelines.stats.results import Effect, LogisticFit, NotEstimable, PropensityModel


def aipw(
    y: np.ndarray,
    Xa: np.ndarray,
    propensity: PropensityModel,
    *,
    outcome: LogisticFit | None = None,
    cluster: np.ndarray | None = None,
    confidence: float = 0.95,
) -> Effect:
    """Doubly robust RD/RR (ATE) of arm vs reference.

    ``Xa``: covariate design with the arm indicator as last column; the propensity model was
    fitted on ``Xa[:, :-1]`` for the same rows. ``outcome`` reuses a fitted outcome model.
    """
    y = np.asarray(y, dtype=float)
    a = Xa[:, -1]
    ab = a.astype(bool)
    n1, n0 = int(ab.sum()), int((~ab).sum())
    n = n1 + n0
    if not propensity.fit.converged:
        na = NotEstimable(f"propensity model: {propensity.fit.note}", "aipw", n)
        return Effect(na, na, "aipw", "ate", n)
    if outcome is None:
        outcome = outcome_model(y, Xa)
    if not outcome.converged:
        na = NotEstimable(f"outcome model: {outcome.note}", "aipw", n)
        return Effect(na, na, "aipw", "ate", n)
    e = np.clip(propensity.ps, 1e-6, 1 - 1e-6)
    m1, m0 = counterfactual_risks(outcome, Xa)
    X = Xa[:, :-1]
    ps_nu = Nuisance(X, propensity.fit)
    out_nu = Nuisance(Xa, outcome)
    res = []
    for m, ind, p_arm, arm_value, dinv in (
        (m1, a, e, 1.0, -(1 - e) / e),  # d(1/e)/d eta = -(1-e)/e
        (m0, 1 - a, 1 - e, 0.0, e / (1 - e)),  # d(1/(1-e))/d eta = e/(1-e)
    ):
        phi = m + ind * (y - m) / p_arm
        mu = float(phi.mean())
        # d phi / d eta_ps = ind (y - m) d(1/p)/d eta
        g_ps = X.T @ (ind * (y - m) * dinv)
        # d phi / d beta_out = m(1-m)(1 - ind/p) x_a, with the arm column set to arm_value
        d = m * (1 - m) * (1 - ind / p_arm)
        g_out = np.append(X.T @ d, arm_value * d.sum())
        c = contributions(phi - mu, n, [ps_nu.correction(g_ps), out_nu.correction(g_out)])
        res.append((mu, c))
    (mu1, c1), (mu0, c0) = res
    return effect(
        mu1, mu0, c1, c0, method="aipw", target="ate", n_arm=n1, n_reference=n0,
        cluster=cluster, confidence=confidence,
    )  # fmt: skip
