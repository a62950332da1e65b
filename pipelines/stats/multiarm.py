"""G-computation and AIPW with three or more arms (e.g. IOP, PHP, residential), each arm against
the reference, standardized over the whole population of all arms.

One logistic outcome model per arm (:func:`pipelines.stats.gcomp.outcome_models`); AIPW adds the
generalized propensity score of a multinomial logit (:func:`pipelines.stats.propensity.fit_multinomial_propensity`):

    mu_k = mean( m_k(X) + 1{A=k} (Y - m_k(X)) / e_k(X) ),

the ATE of arm k against arm 0 being mu_k - mu_0 over everyone in the K arms (not only the pair).

Notes
-----
* Variance: as the two-arm estimators (:mod:`pipelines.stats.inference`), with the
  multinomial propensity model's estimation in the sandwich: for categories j = 1..K-1,
  d(1/e_k)/d eta_j = -(delta_kj - e_j) / e_k.
* With two arms these are exactly :func:`pipelines.stats.gcomp.gcomp` and
  :func:`pipelines.stats.aipw.aipw` (tested).

References
----------
Cattaneo MD. Efficient semiparametric estimation of multi-valued treatment effects under
ignorability. J Econometrics 2010;155:138–154.
Linden A, Uysal SD, Ryan A, Adams JL. Estimating causal effects for multivalued treatments: a
comparison of approaches. Stat Med 2016;35:534–552.
"""

from __future__ import annotations

import numpy as np

from pipelines.stats.gcomp import counterfactual_risks, extrapolation_note, outcome_models, standardized_means
from pipelines.stats.inference import Nuisance, contributions, effect
from pipelines.stats.results import Effect, NotEstimable, OutcomeModels, PropensityModel

MULTIARM_METHODS = {"gcomp": "gcomp_multiarm", "aipw": "aipw_multinomial"}


def _aipw_means(y, X, codes, models: OutcomeModels, propensity: PropensityModel) -> list[tuple[float, np.ndarray]]:
    P = np.clip(np.asarray(propensity.ps), 1e-6, 1.0)
    n, K = P.shape
    ps_nu = Nuisance(X, propensity.fit)
    out = []
    for k, (fit, m) in enumerate(zip(models.fits, counterfactual_risks(models, X))):
        ind = (codes == k).astype(float)
        e = P[:, k]
        resid = ind * (y - m)
        phi = m + resid / e
        mu = float(phi.mean())
        # propensity: d phi / d eta_j = ind (y - m) d(1/e_k)/d eta_j, j = 1..K-1
        g_ps = np.stack([X.T @ (resid * (-((k == j) - P[:, j]) / e)) for j in range(1, K)])
        g_out = X.T @ (m * (1 - m) * (1 - ind / e))
        out.append((mu, contributions(phi - mu, n, [ps_nu.correction(g_ps), Nuisance(X, fit).correction(g_out)])))
    return out


def multiarm_effects(
    y: np.ndarray,
    X,
    codes: np.ndarray,
    arms: tuple[str, ...],
    method: str,
    *,
    outcome: OutcomeModels | None = None,
    propensity: PropensityModel | None = None,
    cluster: np.ndarray | None = None,
    confidence: float = 0.95,
) -> dict[str, Effect]:
    """Each arm (codes 1..K-1, ``arms`` in code order, the reference first) against the
    reference by ``method`` (``gcomp`` or ``aipw``): {arm name: Effect}."""
    y = np.asarray(y, dtype=float)
    codes = np.asarray(codes)
    K = len(arms)
    name = MULTIARM_METHODS[method]
    n = int(codes.size)
    if outcome is None:
        outcome = outcome_models(y, X, codes, K)
    reason = None
    if not outcome.converged:
        reason = f"outcome model: {outcome.note}"
    elif method == "aipw" and (propensity is None or not propensity.fit.converged):
        reason = "multinomial propensity model: " + ("none" if propensity is None else str(propensity.fit.note))
    if reason:
        na = NotEstimable(reason, name, n)
        return {a: Effect(na, na, name, "ate", n) for a in arms[1:]}
    means = standardized_means(outcome, X) if method == "gcomp" else _aipw_means(y, X, codes, outcome, propensity)
    counts = np.bincount(codes.astype(np.int64), minlength=K)
    note = extrapolation_note(outcome, tuple(arms))
    mu0, c0 = means[0]
    out = {}
    for k in range(1, K):
        out[arms[k]] = effect(
            means[k][0], mu0, means[k][1], c0, method=name, target="ate", n_arm=int(counts[k]),
            n_reference=int(counts[0]), cluster=cluster, confidence=confidence, note=note,
        )  # fmt: skip
    return out
