"""Augmented inverse probability weighting (AIPW), the doubly robust estimator of the ATE.

    mu_1 = mean( m1(X) + A (Y - m1(X)) / e(X) ),   mu_0 = mean( m0(X) + (1-A)(Y - m0(X)) / (1-e(X)) )

with e the propensity score and m_a arm a's outcome model's predicted risk (the per-arm
logistic outcome models of :mod:`pipelines.stats.gcomp`, as statsmodels ``TreatmentEffect.aipw``
and Stata's ``teffects aipw`` fit them).

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

from pipelines.stats.gcomp import counterfactual_risks, extrapolation_note, outcome_model
from pipelines.stats.inference import Nuisance, contributions, effect
from pipelines.stats.results import Effect, NotEstimable, OutcomeModels, PropensityModel


def aipw(
    y: np.ndarray,
    Xa: np.ndarray,
    propensity: PropensityModel,
    *,
    outcome: OutcomeModels | None = None,
    cluster: np.ndarray | None = None,
    confidence: float = 0.95,
    names: tuple[str, str] = ("reference", "arm"),
) -> Effect:
    """Doubly robust RD/RR (ATE) of arm vs reference.

    ``Xa``: covariate design with the arm indicator as last column; the propensity model was
    fitted on ``Xa[:, :-1]`` for the same rows. ``outcome`` reuses fitted per-arm outcome models.
    """
    y = np.asarray(y, dtype=float)
    a = np.asarray(Xa[:, -1], dtype=float)
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
    X = Xa[:, :-1]
    m0, m1 = counterfactual_risks(outcome, X)
    ps_nu = Nuisance(X, propensity.fit)
    res = []
    for m, ind, p_arm, fit, dinv in (
        (m1, a, e, outcome.fits[1], -(1 - e) / e),  # d(1/e)/d eta = -(1-e)/e
        (m0, 1 - a, 1 - e, outcome.fits[0], e / (1 - e)),  # d(1/(1-e))/d eta = e/(1-e)
    ):
        phi = m + ind * (y - m) / p_arm
        mu = float(phi.mean())
        # d phi / d eta_ps = ind (y - m) d(1/p)/d eta
        g_ps = X.T @ (ind * (y - m) * dinv)
        # d phi / d beta_arm = m(1-m)(1 - ind/p) x: only this arm's model enters this arm's mean
        g_out = X.T @ (m * (1 - m) * (1 - ind / p_arm))
        c = contributions(phi - mu, n, [ps_nu.correction(g_ps), Nuisance(X, fit).correction(g_out)])
        res.append((mu, c))
    (mu1, c1), (mu0, c0) = res
    return effect(
        mu1, mu0, c1, c0, method="aipw", target="ate", n_arm=n1, n_reference=n0,
        cluster=cluster, confidence=confidence, note=extrapolation_note(outcome, names),
    )  # fmt: skip
