"""G-computation (standardization): average predicted risk under each arm from per-arm outcome models.

One outcome logistic model is fitted per arm on that arm's rows (baseline covariates, main
effects); each person's risk is predicted under every arm's model, and the predictions are
averaged over the whole comparison population (the ATE). This is regression adjustment as in
statsmodels ``TreatmentEffect.ra`` and Stata's ``teffects ra``: equivalent to one model with
every covariate interacted with the arm, so the arm's effect may differ with severity or any
other covariate. (One model with shared slopes and the arm as one more term would be biased for
the ATE on data whose IOP effect changes sign with severity.)

Notes
-----
* Valid when each arm's outcome model is correctly specified (no unmeasured confounding,
  correct functional form within each arm).
* A covariate column that an arm's rows do not identify (a level that arm has no one in, or
  one collinear with others there) has no coefficient in that arm's model (0, as a
  pseudo-inverse would give): people of the other arms in that level are predicted at the
  arm's reference level, and the row's note says how many (``OutcomeModels.extrapolated``).
* Variance: stacked estimating equations (each arm model's score + standardization), i.e. the
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

from dataclasses import replace

import numpy as np
from scipy.special import expit

from pipelines.stats.design import _independent_columns, _rows
from pipelines.stats.inference import Nuisance, contributions, effect
from pipelines.stats.logistic import fit_logistic, xtwx
from pipelines.stats.results import Effect, LogisticFit, NotEstimable, OutcomeModels


def arm_designs(X, codes: np.ndarray, k: int) -> list[tuple[object, list[int]]]:
    """Each arm code's rows of ``X`` with the columns that arm's rows identify (``X`` itself
    restricted to them): a column constant or collinear on an arm's rows (a site or level with
    no one, or everyone, in the arm) has no coefficient in that arm's model. Outcomes measured
    on the same rows share these designs."""
    codes = np.asarray(codes)
    out = []
    p = X.shape[1]
    every = list(range(p))
    for arm in range(k):
        rows = codes == arm
        Xk = _rows(X, rows, every)
        keep = _independent_columns(xtwx(Xk, np.ones(Xk.shape[0]))) if Xk.shape[0] else []
        out.append((Xk if len(keep) == p else _rows(X, rows, keep), keep))
    return out


def _embed(fit: LogisticFit, keep: list[int], p: int, resid: np.ndarray) -> LogisticFit:
    """A fit on columns ``keep`` of a p-column design as a fit on all p: coefficient 0 and an
    identity row of the information for the others (their sandwich terms vanish)."""
    if len(keep) == p:
        return replace(fit, resid=resid)
    params = np.zeros(p)
    params[keep] = fit.params
    info = np.eye(p)
    info[np.ix_(keep, keep)] = fit.information
    return replace(fit, params=params, information=info, resid=resid)


def outcome_models(
    y: np.ndarray, X, codes: np.ndarray, k: int, starts: np.ndarray | None = None, designs: list | None = None
) -> OutcomeModels:
    """One logistic model of ``y`` on ``X`` (covariates, intercept first, no arm column) per arm
    code 0..k-1 of ``codes``, each on its own rows and the columns those rows identify;
    ``starts``: (k, p) starting coefficients; ``designs``: :func:`arm_designs` of ``X``, when the
    caller keeps them for several outcomes."""
    y = np.asarray(y, dtype=float)
    codes = np.asarray(codes)
    n, p = y.size, X.shape[1]
    designs = arm_designs(X, codes, k) if designs is None else designs
    fits, extrapolated = [], []
    for arm, (Xk, keep) in enumerate(designs):
        rows = codes == arm
        if not rows.any():
            fits.append(LogisticFit(np.zeros(p), np.zeros(0), np.zeros(n), np.eye(p), False, 0, float("nan"), n,
                                    "logistic-irls", "an arm has no one in it"))
            extrapolated.append(n)
            continue
        start = None if starts is None else np.asarray(starts[arm])[keep]
        fit = fit_logistic(Xk, y[rows], start=start)
        dropped = np.setdiff1d(np.arange(p), keep)
        if dropped.size:
            marker = np.zeros(p)
            marker[dropped] = 1.0
            extrapolated.append(int((((X @ marker) != 0) & ~rows).sum()))
        else:
            extrapolated.append(0)
        resid = np.zeros(n)
        resid[rows] = fit.resid
        fits.append(replace(_embed(fit, keep, p, resid), n=n))
    return OutcomeModels(tuple(fits), tuple(extrapolated))


def outcome_model(y: np.ndarray, Xa, start: np.ndarray | None = None, designs: list | None = None) -> OutcomeModels:
    """Per-arm outcome models of a two-arm comparison; ``Xa``'s last column is the arm
    indicator (1 = arm, fits[1]; 0 = reference, fits[0]); ``start``: (2, p) coefficients."""
    a = np.asarray(Xa[:, -1]).astype(np.int8)
    return outcome_models(y, Xa[:, :-1], a, 2, starts=start, designs=designs)


def counterfactual_risks(models: OutcomeModels, X) -> list[np.ndarray]:
    """Each arm model's predicted risks for everyone (``X``: covariates, no arm column: the
    population's design the models were fitted on; computed once and kept with the models)."""
    if not models.risks:
        models.risks.extend(expit(X @ f.params) for f in models.fits)
    return models.risks


def extrapolation_note(models: OutcomeModels, names: tuple[str, ...]) -> str | None:
    """Words for the people predicted from a level the arm never saw. The note leaves the
    site with the results, so a count of 1-10 is written as such, never exactly (the CMS small
    cell rule, which the count columns pass through)."""
    parts = [f"{n if n > 10 else '1-10'} people predicted under {name} from levels with no {name} episodes"
             for n, name in zip(models.extrapolated, names) if n]
    return "; ".join(parts) or None


def standardized_means(models: OutcomeModels, X) -> list[tuple[float, np.ndarray]]:
    """(mean, contributions) of each arm's standardized risk over all rows of ``X``."""
    n = X.shape[0]
    out = []
    for fit, m in zip(models.fits, counterfactual_risks(models, X)):
        mu = float(m.mean())
        G = X.T @ (m * (1 - m))
        out.append((mu, contributions(m - mu, n, [Nuisance(X, fit).correction(G)])))
    return out


def gcomp(
    y: np.ndarray,
    Xa,
    *,
    fit: OutcomeModels | None = None,
    cluster: np.ndarray | None = None,
    confidence: float = 0.95,
    names: tuple[str, str] = ("reference", "arm"),
) -> Effect:
    """Standardized RD/RR of arm vs reference (ATE) by g-computation.

    ``Xa`` is the covariate design (intercept first) with the arm indicator as last column;
    pass ``fit`` to reuse outcome models already fitted on the same rows.
    """
    y = np.asarray(y, dtype=float)
    a = np.asarray(Xa[:, -1]).astype(bool)
    n1, n0 = int(a.sum()), int((~a).sum())
    n = n1 + n0
    if fit is None:
        fit = outcome_model(y, Xa)
    if not fit.converged:
        na = NotEstimable(f"outcome model: {fit.note}", "gcomp", n)
        return Effect(na, na, "gcomp", "ate", n)
    (mu0, c0), (mu1, c1) = standardized_means(fit, Xa[:, :-1])
    return effect(
        mu1, mu0, c1, c0, method="gcomp", target="ate", n_arm=n1, n_reference=n0,
        cluster=cluster, confidence=confidence, note=extrapolation_note(fit, names),
    )  # fmt: skip
