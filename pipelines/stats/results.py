"""Immutable result types returned by every function in :mod:`pipelines.stats`.

Each statistical function returns exactly one of these types (or :class:`NotEstimable`,
never a number, when the data cannot support an estimate). Method names are exact strings
(``"wilson"``, ``"newcombe-hybrid-score"``, ``"iptw-hajek-sandwich"`` ...) so that a
report can print them and a reader can look them up.

Arrays inside results (propensity scores, weights) are numpy arrays marked read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def readonly(a: np.ndarray) -> np.ndarray:
    """Return ``a`` with its write flag cleared, so a frozen result stays immutable."""
    a = np.asarray(a)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, slots=True)
class NotEstimable:
    """The data cannot support an estimate; ``reason`` says why in plain words."""

    reason: str
    method: str = ""
    n: int = 0


@dataclass(frozen=True, slots=True)
class Proportion:
    """A rate with its confidence interval."""

    estimate: float
    ci_low: float
    ci_high: float
    n: int
    events: int
    method: str
    confidence: float = 0.95


@dataclass(frozen=True, slots=True)
class TestResult:
    """A hypothesis test."""

    statistic: float
    p_value: float
    method: str
    df: float | None = None
    n: int = 0


@dataclass(frozen=True, slots=True)
class Estimate:
    """An effect estimate with its interval.

    ``estimand`` is the scale: ``"rd"`` (risk difference), ``"rr"`` (risk ratio), ``"or"``
    (odds ratio) or ``"hr"`` (hazard ratio). ``target`` is the population the effect refers to:
    ``"crude"``, ``"ate"``, ``"att"`` or ``"ato"`` (overlap population). ``se`` is on the
    scale the interval was built on (log scale for ratios). ``risk_arm`` / ``risk_reference``
    are the (standardized) arm risks behind the contrast, when there are any.
    """

    estimate: float
    ci_low: float
    ci_high: float
    n: int
    method: str
    estimand: str
    target: str = "ate"
    p_value: float | None = None
    se: float | None = None
    n_arm: int | None = None
    n_reference: int | None = None
    risk_arm: float | None = None
    risk_reference: float | None = None
    confidence: float = 0.95
    note: str | None = None
    #: the variance behind ``se`` (e.g. "HC0 sandwich", "CR2, 34 clusters, t(33)")
    variance: str | None = None
    #: degrees of freedom of the Student t quantiles of the interval; None: normal quantiles
    df: float | None = None


@dataclass(frozen=True, slots=True)
class Effect:
    """A comparison of two arms on the risk difference and risk ratio scales.

    Every comparison estimator (crude, gcomp, iptw, overlap, aipw) returns this one type;
    ``rd`` is primary, ``rr`` comes along because it costs nothing extra.
    """

    rd: Estimate | NotEstimable
    rr: Estimate | NotEstimable
    method: str
    target: str
    n: int


@dataclass(frozen=True, slots=True)
class Design:
    """A numeric design matrix built from a polars frame.

    ``matrix`` (a Fortran-ordered float64 array, or a
    :class:`~pipelines.stats.compact.CompactMatrix` that behaves as one) has an intercept in
    column 0; ``columns`` names
    every column. ``groups`` maps each source covariate to the indices of its columns and
    ``references`` to the reference level of a categorical (its dummy is left out of the
    model but kept for balance). ``dropped`` lists covariates or columns dropped with the reason.
    """

    matrix: Any  # np.ndarray | CompactMatrix
    columns: tuple[str, ...]
    groups: dict[str, tuple[int, ...]]
    references: dict[str, str]
    dropped: tuple[tuple[str, str], ...]
    gram: np.ndarray | None = None  # X'X, kept so that subsets need not recompute it

    @property
    def n(self) -> int:
        return int(self.matrix.shape[0])


@dataclass(frozen=True, slots=True)
class LogisticFit:
    """A logistic (binary or multinomial) maximum-likelihood fit.

    For a binary model ``params`` has shape (p,) and ``fitted`` (n,); for a multinomial
    model with K categories ``params`` has shape (K-1, p) (category 0 is the reference) and
    ``fitted`` (n, K). ``information`` is the observed Fisher information on the sum scale
    ((K-1)p square), ``resid`` the score residuals (y - fitted) whose product with the design
    rows gives the per-person score contributions.
    """

    params: np.ndarray
    fitted: np.ndarray
    resid: np.ndarray
    information: np.ndarray
    converged: bool
    iterations: int
    deviance: float
    n: int
    method: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class OutcomeModels:
    """One logistic outcome model per arm (g-computation, AIPW): ``fits[k]`` fitted on the rows
    of arm code ``k`` (binary comparisons: 0 = reference, 1 = arm), its ``resid`` spread over
    every row of the population (0 on the other arms' rows) so that the sandwich corrections
    take the whole design. ``extrapolated[k]``: people outside arm ``k`` with a covariate column
    that arm ``k``'s rows do not identify (a level it has no one in, or one collinear there),
    whose risk under ``k`` the model predicts at that arm's reference level (the column's
    coefficient is 0, as a pseudo-inverse would give)."""

    fits: tuple[LogisticFit, ...]
    extrapolated: tuple[int, ...]
    #: each arm model's predicted risks for every row of the population, once computed (g-computation
    #: and AIPW of the same outcome share them)
    risks: list[np.ndarray] = field(default_factory=list, compare=False, repr=False)

    @property
    def converged(self) -> bool:
        return all(f.converged for f in self.fits)

    @property
    def note(self) -> str | None:
        return next((f.note for f in self.fits if not f.converged), None)

    @property
    def params(self) -> np.ndarray:
        """(K, p): each arm's coefficients (a start for the same models on a subset)."""
        return np.stack([f.params for f in self.fits])


@dataclass(frozen=True, slots=True)
class PropensityModel:
    """A fitted propensity model and its overlap diagnostics.

    ``ps`` is P(arm | covariates) for a binary comparison (n,), or the (n, K) matrix of
    generalized propensity scores for K arms (columns in ``arms`` order).
    """

    fit: LogisticFit
    ps: np.ndarray
    treatment: np.ndarray
    arms: tuple[str, ...]
    c_statistic: float | None
    preference: np.ndarray | None
    equipoise: float | None
    n: int
    method: str


@dataclass(frozen=True, slots=True)
class Weights:
    """Balancing weights and what was done to them.

    ``dlogw`` holds d log(w_i) / d eta_ik for the propensity linear predictors (shape (n, K-1));
    truncated weights have a zero derivative, since a capped weight no longer moves with the
    model. The robust variance of the weighted estimators uses it.
    """

    weights: np.ndarray
    dlogw: np.ndarray
    method: str
    target: str
    stabilized: bool
    max_weight: float | None
    share_truncated: float
    ess: dict[str, float]
    n: int


@dataclass(frozen=True, slots=True)
class Population:
    """One comparison population prepared for adjusted estimation.

    ``Xa`` is the covariate design (intercept first) with the arm indicator as last column;
    the propensity model is fitted once on ``Xa[:, :-1]`` and its weights reused for every
    outcome measured on these rows.
    """

    design: Design
    Xa: np.ndarray
    treated: np.ndarray
    propensity: PropensityModel
    weights: dict[str, Weights]
    n: int
    #: what outcomes measured on these rows share, made on first use: each arm's rows of the
    #: design (the per-arm outcome models' designs, copied once for every outcome)
    shared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class BalanceRow:
    """One design column's balance, with the moments it is made of: each arm's mean and SD
    (population SD, divisor the weight total) before weighting and after, and each arm's total
    weight after (before, the total is the arm's head count). ``binary``: the column holds only
    0 and 1 in this population, so a mean times its arm's size is a head count."""

    covariate: str
    smd_before: float
    smd_after: float
    variance_ratio_before: float
    variance_ratio_after: float
    binary: bool = False
    mean_arm_before: float | None = None
    mean_reference_before: float | None = None
    sd_arm_before: float | None = None
    sd_reference_before: float | None = None
    mean_arm_after: float | None = None
    mean_reference_after: float | None = None
    sd_arm_after: float | None = None
    sd_reference_after: float | None = None
    weight_arm: float | None = None
    weight_reference: float | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    """Covariate balance of one weighting; passes when every |SMD after| <= threshold."""

    rows: tuple[BalanceRow, ...]
    method: str
    threshold: float
    max_abs_smd_before: float
    max_abs_smd_after: float
    passed: bool
    n: int


@dataclass(frozen=True, slots=True)
class FollowupEstimates:
    """ITT, complete-case and inverse-probability-of-follow-up weighted estimates side by side."""

    itt: Effect
    complete_case: Effect
    ipw_followup: Effect
    share_reached_arm: float
    share_reached_reference: float
    n: int
    method: str = "followup-itt-cc-ipfw"


@dataclass(frozen=True, slots=True)
class NonInferiority:
    """Non-inferiority and equivalence of the arm against the reference, on two bases.

    The fields of the original (absolute) analysis keep their meaning: ``estimate`` and the
    ``ci*`` intervals are the risk difference, ``noninferior`` / ``equivalent`` / ``p_*`` its
    verdicts against ``margin_pp``. The ``*_relative`` verdicts and the ``rr*`` intervals are the
    risk ratio's against ``margin_ratio``. ``margin_basis`` (``"absolute"`` or ``"relative"``)
    is the basis of the headline ``conclusion``, ``margin_basis_reason`` says why; each basis's
    own conclusion is in ``conclusion_absolute`` / ``conclusion_relative``.
    """

    definition_id: str
    margin_pp: float
    estimate: float | None
    ci95_low: float | None
    ci95_high: float | None
    ci90_low: float | None
    ci90_high: float | None
    noninferior: bool | None
    equivalent: bool | None
    p_noninferiority: float | None
    p_equivalence: float | None
    conclusion: str
    method: str
    n: int
    margin_ratio: float = 0.8
    rr: float | None = None
    rr_ci95_low: float | None = None
    rr_ci95_high: float | None = None
    rr_ci90_low: float | None = None
    rr_ci90_high: float | None = None
    noninferior_relative: bool | None = None
    equivalent_relative: bool | None = None
    p_noninferiority_relative: float | None = None
    p_equivalence_relative: float | None = None
    conclusion_absolute: str = ""
    conclusion_relative: str = ""
    margin_basis: str = "absolute"
    margin_basis_reason: str = ""


@dataclass(frozen=True, slots=True)
class EValue:
    """E-value (VanderWeele & Ding 2017) for an estimate and for its CI limit nearest the null."""

    rr: float
    e_value: float
    e_value_ci: float
    method: str
    n: int = 0


@dataclass(frozen=True, slots=True)
class AdjustedPValues:
    p_values: tuple[float, ...]
    p_holm: tuple[float, ...]
    p_bh: tuple[float, ...]
    method: str = "holm+fdr_bh"
    n: int = 0


@dataclass(frozen=True, slots=True)
class SurvivalCurve:
    """(Weighted) Kaplan–Meier estimate with Greenwood-type pointwise intervals."""

    time: np.ndarray
    survival: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    n: int
    method: str
    at_times: dict[float, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CoxResult:
    """Cox proportional-hazards estimate for the arm indicator with a PH check."""

    hr: Estimate
    ph_test: TestResult
    n: int
    events: int
    method: str


@dataclass(frozen=True, slots=True)
class Interaction:
    """Effect within subgroups and a test that the effects differ."""

    modifier: str
    subgroups: tuple[tuple[str, Any], ...]
    test: TestResult | NotEstimable
    n: int
    method: str
