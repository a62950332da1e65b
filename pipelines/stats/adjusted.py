"""The adjusted estimators, run on one prepared population: gcomp, IPTW (ATE, ATT), overlap, AIPW.

:func:`prepare` fits the propensity model once and derives every weighting from it;
:func:`estimate` then gives one method's RD/RR for an outcome on the same rows. The
propensity model does not depend on the outcome, so one fit serves all outcomes measured
on the population; the outcome model (gcomp, AIPW) is outcome-specific (one model per arm) and shared by the two.

Notes
-----
A propensity model that did not converge makes every weighting method and AIPW
:class:`NotEstimable`; g-computation needs only the outcome model. See the modules of each
estimator for validity conditions.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pipelines.stats.aipw import aipw
from pipelines.stats.design import with_column
from pipelines.stats.gcomp import arm_designs, gcomp, outcome_model
from pipelines.stats.inference import Nuisance
from pipelines.stats.ipw import iptw_effect
from pipelines.stats.propensity import fit_propensity
from pipelines.stats.results import Design, Effect, NotEstimable, OutcomeModels, Population
from pipelines.stats.weighting import DEFAULT_MAX_WEIGHT, iptw_weights, overlap_weights

ADJUSTED_METHODS = ("gcomp", "iptw_ate", "iptw_att", "overlap", "aipw")
WEIGHTING_METHODS = ("iptw_ate", "iptw_att", "overlap")


def prepare(
    design: Design,
    treated: np.ndarray,
    *,
    arms: tuple[str, str] = ("arm", "reference"),
    max_weight: float | None = DEFAULT_MAX_WEIGHT,
    percentile: float | None = None,
    start: np.ndarray | None = None,
) -> Population:
    """Fit the propensity model on ``design`` and compute IPTW ATE/ATT and overlap weights
    (``start``: the propensity fit's starting coefficients)."""
    a = np.asarray(treated).astype(float)
    Xa = with_column(design.matrix, a)
    # the population's design is a view of Xa from here on: ``design.matrix`` (often a subset
    # copied for this population) is no longer needed once the caller lets go of it
    design = replace(design, matrix=Xa[:, :-1])
    pm = fit_propensity(design.matrix, a, arms, start=start)
    weights = {}
    if pm.fit.converged:
        weights = {
            "iptw_ate": iptw_weights(pm, "ate", max_weight=max_weight, percentile=percentile),
            "iptw_att": iptw_weights(pm, "att", max_weight=max_weight, percentile=percentile),
            "overlap": overlap_weights(pm),
        }
    return Population(design, Xa, a.astype(bool), pm, weights, int(a.size))


def estimate(
    pop: Population,
    y: np.ndarray,
    method: str,
    *,
    outcome: OutcomeModels | None = None,
    cluster: np.ndarray | None = None,
    confidence: float = 0.95,
) -> Effect:
    """RD/RR of one adjusted ``method`` for outcome ``y`` (0/1, aligned with the population rows)."""
    if method not in ADJUSTED_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(ADJUSTED_METHODS)}")
    target = {"iptw_att": "att", "overlap": "ato"}.get(method, "ate")
    names = tuple(reversed(pop.propensity.arms[:2]))  # (reference, arm): the outcome models' order
    if method == "gcomp":
        return gcomp(y, pop.Xa, fit=outcome, cluster=cluster, confidence=confidence, names=names)
    if not pop.propensity.fit.converged:
        na = NotEstimable(f"propensity model: {pop.propensity.fit.note}", method, pop.n)
        return Effect(na, na, method, target, pop.n)
    if method == "aipw":
        return aipw(y, pop.Xa, pop.propensity, outcome=outcome, cluster=cluster, confidence=confidence,
                    names=names)
    nu = Nuisance(pop.Xa[:, :-1], pop.propensity.fit)
    return iptw_effect(y, pop.treated, pop.weights[method], nu, cluster=cluster, confidence=confidence)


def fit_outcome(pop: Population, y: np.ndarray, start: np.ndarray | None = None) -> OutcomeModels:
    """The per-arm outcome models shared by gcomp and AIPW (``start``: (2, p) starting
    coefficients, reference arm first)."""
    if "arm_designs" not in pop.shared:
        pop.shared["arm_designs"] = arm_designs(pop.Xa[:, :-1], pop.treated.astype(np.int8), 2)
    return outcome_model(np.asarray(y, dtype=float), pop.Xa, start=start, designs=pop.shared["arm_designs"])
