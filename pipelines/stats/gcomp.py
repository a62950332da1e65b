"""G-computation (standardization): average predicted risk under each arm from an outcome model.

An outcome logistic model with the arm indicator and baseline covariates (main effects) is
fitted to everyone in the comparison; each person's risk is predicted with the arm set to 1
and to 0, and the predictions are averaged over the whole comparison population (the ATE).

Notes
-----
* Valid when the outcome model is correctly specified (no unmeasured confounding, correct
  functional form). A main-effects model assumes no treatment-by-covariate interaction on
  the log-odds scale; the risk difference still varies with covariates.
* Variance: stacked estimating equations (outcome-model score + standardization), i.e. the
  delta method with a robust (sandwich) covariance of the coefficients plus the variance of
  averaging over the sample covariates; see :mod:`pipelines.stats.inference`.
* A model that does not converge (or separates) gives :class:`NotEstimable`.

References
----------
Robins J. A new approach to causal inference in mortality studies... Math Model
1986;7:1393–1512. Snowden JM, Rose S, Mortimer KM. Implementation of G-computation on a
simulated data set. Am J Epidemiol 2011;173:731–738.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from pipelines.stats.inference import Nuisance, contributions, effect
from pipelines.stats.logistic import fit_logistic
from pipelines.stats.results import Effect, LogisticFit, NotEstimable


def outcome_model(y: np.ndarray, Xa: np.ndarray, start: np.ndarray | None = None) -> LogisticFit:
    """Logistic outcome model; ``Xa``'s last column is the arm indicator (1 = arm)."""
    return fit_logistic(Xa, y, start=start)


def counterfactual_risks(fit: LogisticFit, Xa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted risks with the arm indicator set to 1 and to 0 for everyone."""
    b = fit.params
    eta0 = Xa[:, :-1] @ b[:-1]
    return expit(eta0 + b[-1]), expit(eta0)


def gcomp(
    y: np.ndarray,
    Xa: np.ndarray,
    *,
    fit: LogisticFit | None = None,
    cluster: np.ndarray | None = None,
    confidence: float = 0.95,
) -> Effect:
    """Standardized RD/RR of arm vs reference (ATE) by g-computation.

    ``Xa`` is the covariate design (intercept first) with the arm indicator as last column;
    pass ``fit`` to reuse an outcome model already fitted on the same rows.
    """
    y = np.asarray(y, dtype=float)
    a = Xa[:, -1].astype(bool)
    n1, n0 = int(a.sum()), int((~a).sum())
    n = n1 + n0
    if fit is None:
        fit = outcome_model(y, Xa)
    if not fit.converged:
        na = NotEstimable(f"outcome model: {fit.note}", "gcomp", n)
        return Effect(na, na, "gcomp", "ate", n)
    m1, m0 = counterfactual_risks(fit, Xa)
    nu = Nuisance(Xa, fit)
    X = Xa[:, :-1]
    out = []
    for m, arm_value in ((m1, 1.0), (m0, 0.0)):
        mu = float(m.mean())
        d = m * (1 - m)
        G = np.append(X.T @ d, arm_value * d.sum())
        out.append((mu, contributions(m - mu, n, [nu.correction(G)])))
    (mu1, c1), (mu0, c0) = out
    return effect(
        mu1, mu0, c1, c0, method="gcomp", target="ate", n_arm=n1, n_reference=n0,
        cluster=cluster, confidence=confidence,
    )  # fmt: skip
