"""Propensity models: P(arm | baseline covariates), binary or multinomial, with overlap diagnostics.

Notes
-----
* Binary comparisons use a main-effects logistic model; three or more arms (e.g. iop, php,
  residential) a multinomial logit with the first arm as reference category.
* A model that does not converge, or shows quasi-complete separation, makes every adjusted
  estimate of the comparison :class:`NotEstimable`; the caller checks ``fit.converged``.
* c-statistic: area under the ROC curve of the propensity score (Mann–Whitney form with
  mid-ranks for ties). Near 0.5 the arms look alike; above ~0.95 there is essentially no
  overlap.
* Preference score (Walker et al. 2013): logit(F) = logit(e) - logit(P), with P the share in
  the arm, so F = 0.5 means no preference beyond the marginal split. Equipoise is the share
  of people with F in [0.3, 0.7]; CohortMethod requires at least 0.2 ("empirical equipoise").

References
----------
Rosenbaum PR, Rubin DB. The central role of the propensity score... Biometrika 1983;70:41–55.
Imbens GW. The role of the propensity score in estimating dose-response functions.
Biometrika 2000;87:706–710 (generalized propensity score for several arms).
Walker AM et al. A tool for assessing the feasibility of comparative effectiveness research.
Comparative Effectiveness Research 2013;3:11–20.
Hanley JA, McNeil BJ. Radiology 1982;143:29–36 (c-statistic).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import expit, logit

from pipelines.stats.logistic import fit_logistic, fit_multinomial
from pipelines.stats.results import PropensityModel, readonly

EQUIPOISE_BOUNDS = (0.3, 0.7)


def c_statistic(score: np.ndarray, treated: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for ``treated``: the share of (treated, untreated)
    pairs in which the treated person scores higher, a tie counting one half.

    Counted from the two groups' sorted scores: for each treated score, the untreated scores
    below it and equal to it (``searchsorted`` left and right). The same number as the
    Mann-Whitney mid-rank formula (every term is an integer or a half: exact in float64), at
    less cost than ranking all scores (benchmarks/README.md, Measurements:
    pipelines/stats/propensity.py); it runs once per propensity model.
    """
    score = np.asarray(score, dtype=float)
    treated = np.asarray(treated, dtype=bool)
    n1 = int(treated.sum())
    n0 = treated.size - n1
    if n1 == 0 or n0 == 0 or np.isnan(score).any():
        return float("nan")
    s1 = np.sort(score[treated])
    s0 = np.sort(score[~treated])
    below = np.searchsorted(s0, s1, "left")
    tied = np.searchsorted(s0, s1, "right") - below
    return float((below.sum() + 0.5 * tied.sum()) / (n1 * n0))


def preference_score(ps: np.ndarray, share_treated: float) -> np.ndarray:
    """Walker's preference score: logit(F) = logit(ps) - logit(share treated)."""
    ps = np.clip(ps, 1e-15, 1 - 1e-15)
    return expit(logit(ps) - logit(share_treated))


def equipoise(preference: np.ndarray, bounds: tuple[float, float] = EQUIPOISE_BOUNDS) -> float:
    """Share of people with a preference score inside ``bounds`` (inclusive)."""
    return float(np.mean((preference >= bounds[0]) & (preference <= bounds[1])))


def fit_propensity(
    X: np.ndarray,
    treated: np.ndarray,
    arms: tuple[str, str] = ("arm", "reference"),
    *,
    start: np.ndarray | None = None,
) -> PropensityModel:
    """Binary propensity model: logistic regression of ``treated`` (1 = arm) on ``X``
    (``start``: Newton's starting coefficients, see :func:`pipelines.stats.design.start_from`)."""
    a = np.asarray(treated, dtype=float)
    fit = fit_logistic(X, a, start=start)
    ps = fit.fitted
    share = float(a.mean())
    pref = preference_score(ps, share)
    return PropensityModel(
        fit=fit,
        ps=ps,
        treatment=readonly(a.astype(np.int8)),
        arms=tuple(arms),
        c_statistic=c_statistic(ps, a.astype(bool)),
        preference=readonly(pref),
        equipoise=equipoise(pref),
        n=int(a.size),
        method="logistic",
    )


def fit_multinomial_propensity(
    X: np.ndarray, codes: np.ndarray, arms: Sequence[str], *, start: np.ndarray | None = None
) -> PropensityModel:
    """Generalized propensity scores for K >= 3 arms by multinomial logit (arm codes 0..K-1).

    c-statistic, preference score and equipoise are pairwise notions and are left ``None``
    here; compute them per pair from the binary model of that pair.
    """
    fit = fit_multinomial(X, codes, len(arms), start=start)
    return PropensityModel(
        fit=fit,
        ps=fit.fitted,
        treatment=readonly(np.asarray(codes, dtype=np.int8)),
        arms=tuple(arms),
        c_statistic=None,
        preference=None,
        equipoise=None,
        n=len(codes),
        method="multinomial-logit",
    )
