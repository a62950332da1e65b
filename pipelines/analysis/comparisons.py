"""Compare one level of care with another for every success definition, crude and adjusted.

:func:`compare` takes the analysis frame (docs/interfaces.md: baseline columns of
mart_episodes plus one Int8 column per definition id, 1 / 0 / null) and returns the rows of
``comparisons.csv``, ``balance.csv``, the diagnostics and the non-inferiority verdicts.
The work is in three modules: :mod:`~pipelines.analysis.comparison_plan` (arms, columns,
populations), :mod:`~pipelines.analysis.comparison_fit` (models and estimates, population by
population) and :mod:`~pipelines.analysis.comparison_rows` (the tables' rows and columns).
:func:`compare_survival` gives time to readmission (weighted Kaplan–Meier per arm with
numbers at risk, Cox hazard ratio with a proportional-hazards check, log-rank).

Decisions, stated once
----------------------
* Arms: a row belongs to ``arm`` (or ``reference``) when its ``level_group`` *or*
  ``level_of_care`` equals that value, so ``reference="residential"`` takes the whole
  residential group and ``arm="residential_long"`` one level.
* Populations: a definition's population is its rows with a non-null outcome. The
  propensity model is fitted once per *distinct* population (definitions sharing one share
  the fit) rather than reusing the full-frame fit, because weights from a larger population
  do not balance a subset of it. Definitions are processed grouped by population, so only
  one population's design is held in memory at a time.
* Follow-up-interview definitions (``followup: interview`` in the registry, ``window_days``
  set and a ``fu{w}_reached`` column in the frame; a registry outcome such as readmission
  has a window but no interview, and gets none of this):
  the standard methods use the definition's own missing-data policy (``missing="failure"``:
  ITT, ``"exclude"``: complete case, labelled in ``missing_data``); in addition the other of
  ITT / complete case and the inverse-probability-of-follow-up weighted estimate
  (``ipw_followup``: IPTW-ATE x 1/P(reached | arm, covariates)) are given for the population
  of people due a follow-up. For ``missing="exclude"`` that population is taken as the
  non-null rows plus the rows never reached (``fu{w}_reached`` false); if the definition
  also restricts its population by other criteria, unreached people outside it cannot be
  told apart in the frame and are included.
* Not estimable (estimate null, note with the reason) for the adjusted methods when an arm
  has fewer than ``min_arm`` (20) people or fewer than ``min_events`` (5) successes or
  failures; when there is no overlap (equipoise < 0.2 or c-statistic > 0.95, as
  CohortMethod); or when a model did not converge. Crude estimates are given whenever both
  arms have people (Newcombe / Katz intervals are valid in small samples).
* Variance: sandwich from stacked estimating equations that include the estimated
  propensity (and outcome / follow-up) models: person-level (HC0) with site as a fixed
  effect, cluster-robust by ``cluster`` (CR2, t(G-1)) only when the population has at least
  ``min_clusters`` (30) of them (:mod:`pipelines.stats.inference`). Each row's ``variance``
  says which; :attr:`ComparisonResult.variance` states the rule as applied.
* Multiplicity: Holm and Benjamini–Hochberg adjusted p-values across definitions within each
  (method, estimand, missing_data) family.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines import progress
from pipelines.analysis.comparison_fit import Fitter
from pipelines.analysis.comparison_plan import (
    DefinitionLike,
    arm_mask,
    by_population,
    concurrently,
    label_ranks,
    plan_tasks,
    read_columns,
    variance_rule,
)
from pipelines.stats.blas import single_blas_thread

if TYPE_CHECKING:
    import polars as pl

    from pipelines.stats.results import Design, LogisticFit

DEFAULT_METHODS = ("crude", "gcomp", "iptw_ate", "iptw_att", "overlap", "aipw")
MIN_ARM = 20
MIN_EVENTS = 5


@dataclass(frozen=True, slots=True)
class ComparisonResult:
    """Tables of one comparison run (polars frames, one row per estimate / covariate / check)."""

    comparisons: pl.DataFrame
    balance: pl.DataFrame
    diagnostics: pl.DataFrame
    noninferiority: pl.DataFrame
    arm: str
    reference: str
    n: int
    method: str = "levelcare-compare"
    timings: dict[str, float] = field(default_factory=dict)
    variance: str = ""  # the variance rule as applied (how many clusters, which variance)



def compare(
    frame: pl.DataFrame,
    definitions: Sequence[DefinitionLike],
    arm: str = "iop",
    reference: str = "residential",
    arms: Sequence[str] | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    margin_pp: float = 5.0,
    margin_ratio: float = 0.8,
    margin_basis: str = "auto",
    cluster: str | None = "site_id",
    min_clusters: int | None = None,
    multiarm_outcomes: bool = False,
    min_arm: int = MIN_ARM,
    min_events: int = MIN_EVENTS,
    covariates: Sequence[str] | None = None,
    max_weight: float | None = 10.0,
    primary: str = "aipw",
    confidence: float = 0.95,
    executor: Any = None,
    design: Design | None = None,
    propensity: LogisticFit | None = None,
) -> ComparisonResult:
    """Compare ``arm`` with ``reference`` for every definition; see the module docstring.

    ``arms`` (e.g. ``("iop", "php", "residential")``) adds multinomial-propensity IPTW-ATE
    rows (method ``iptw_ate_multinomial``) for each listed arm against ``reference``, and with
    ``multiarm_outcomes`` also ``gcomp_multiarm`` and ``aipw_multinomial`` (one outcome model per
    arm over all of them: three more fits a definition, which makes the statistics markedly
    longer, hence not by default; benchmarks/README.md, Measurements:
    pipelines/analysis/comparisons.py).
    ``primary`` is the adjusted method whose RD and RR intervals decide non-inferiority: against
    ``margin_pp`` percentage points (absolute) and a risk-ratio margin ``margin_ratio``
    (relative), both reported; ``margin_basis`` (``auto``: relative when the reference rate is
    below 20%, else absolute; or ``absolute`` / ``relative``) picks the headline conclusion
    (:mod:`pipelines.stats.noninferiority`).
    ``executor``: a thread pool to run the populations on (default: a pool of its own).
    ``design``: the comparison rows' design (``arm`` or ``reference`` rows of ``frame`` in order,
    built with ``covariates``) when the caller has it already; ``propensity``: the propensity
    model fitted on all of it (each population's fit starts from it).
    """
    import polars as pl

    from pipelines.analysis.comparison_rows import (
        BalanceRow,
        ComparisonRow,
        DiagnosticRow,
        NoninferiorityRow,
        noninferiority_row,
        to_frame,
        with_adjusted_p,
    )
    from pipelines.stats.design import DEFAULT_COVARIATES, build_design
    from pipelines.stats.inference import MIN_CLUSTERS
    from pipelines.stats.propensity import fit_propensity

    min_clusters = MIN_CLUSTERS if min_clusters is None else int(min_clusters)
    if arm == reference:
        raise ValueError("arm and reference must differ")
    unknown = set(methods) - set(DEFAULT_METHODS)
    if unknown:
        raise ValueError(f"unknown methods: {sorted(unknown)}")
    # single BLAS thread in a with block, not as a decorator: the decorator's call would hold
    # ``frame`` until the end, and the frame is let go once its rows are read (below)
    with single_blas_thread():
        ctx = Fitter(arm, reference, methods, min_arm, min_events, max_weight, confidence, primary,
                       min_clusters, multiarm_outcomes)
        covariates = tuple(covariates or DEFAULT_COVARIATES)
        with ctx.timed("design"):
            in_arm = arm_mask(frame, arm)
            in_ref = arm_mask(frame, reference) & ~in_arm
            # the columns read from here on only (a copy of every column of the frame's rows
            # would be the largest allocation of the statistics at national scale)
            read = read_columns(frame, definitions, cluster, *(covariates if design is None else ()))
            sub = frame.select(read).filter(pl.Series(in_arm | in_ref))
            treated = in_arm[in_arm | in_ref]
            if design is None:
                design = build_design(sub, covariates)
            elif design.n != sub.height:
                raise ValueError(f"design has {design.n} rows, the comparison {sub.height}")
            cl_values = label_ranks(sub, cluster)
            rule = variance_rule(cluster, cl_values, min_clusters)
            populations_tasks = by_population(plan_tasks(sub, definitions))
            n_rows = sub.height
            del sub  # what the populations need is in the design and the tasks
        with concurrently(executor) as pool:
            # Populations and the multinomial comparison share nothing: each is a job with its
            # own context on the pool's threads (numpy and BLAS release the GIL), and the rows are
            # collected in the order a single thread would have produced them (populations in
            # order, then the multinomial rows), so the numbers do not depend on the threads.
            multinomial = []  # submitted first: the longest job
            if arms:
                mctx = ctx.fresh()
                multinomial.append((mctx, pool.submit(
                    mctx.timed_call, "multinomial", mctx.run_multinomial, [frame], list(arms), definitions,
                    covariates, cluster, pool,
                )))  # fmt: skip
            # the frame is not read here any more: the multinomial job lets go of it once it has
            # its rows (a caller that passed the frame on without keeping it frees it then)
            del frame
            anchor = None
            if any(m != "crude" for m in methods) and min(int(treated.sum()), int((~treated).sum())) >= min_arm:
                # The propensity model on every row of the comparison starts each population's fit
                # (populations are subsets of these rows): fewer Newton steps than a cold start.
                if propensity is None:
                    with ctx.timed("propensity + weights"):
                        propensity = fit_propensity(design.matrix, treated).fit
                anchor = (propensity.params, design.columns) if propensity.converged else None
            populations = []
            for pid, group in enumerate(populations_tasks, start=1):
                pctx = ctx.fresh()
                populations.append((pctx, pool.submit(pctx.run_population, f"p{pid}", group, design, treated,
                                                      cl_values, anchor)))
            jobs = populations + multinomial
            for done, (job_ctx, future) in enumerate(jobs, start=1):
                future.result()
                ctx.absorb(job_ctx)
                progress.status("analyze", f"comparisons {arm} vs {reference}: {done}/{len(jobs)} "
                                "populations fitted")
        with ctx.timed("tables"):
            comparisons = with_adjusted_p(to_frame(ctx.rows, ComparisonRow))
            ni = [noninferiority_row(d, rd, rr, margin_pp, arm, reference, margin_ratio, margin_basis)
                  for d, rd, rr in ctx.primary_rd]
        return ComparisonResult(
            comparisons=comparisons,
            balance=to_frame(ctx.balance_rows, BalanceRow),
            diagnostics=to_frame(ctx.diag_rows, DiagnosticRow),
            noninferiority=to_frame(ni, NoninferiorityRow),
            arm=arm,
            reference=reference,
            n=n_rows,
            timings=dict(ctx.timings),
            variance=rule,
        )


@dataclass(frozen=True, slots=True)
class SurvivalComparison:
    """Time to readmission, arm vs reference: weighted KM per arm, Cox HR, log-rank."""

    curves: dict[str, Any]
    cox: Any
    logrank: Any
    weights: str
    horizon_days: int
    n: int
    method: str = "survival-readmission"


@single_blas_thread()
def compare_survival(
    frame: pl.DataFrame,
    arm: str = "iop",
    reference: str = "residential",
    *,
    horizon_days: int = 180,
    weights: str = "iptw_ate",
    at: Sequence[float] = (30, 90, 180),
    cluster: str | None = "site_id",
    min_clusters: int | None = None,
    covariates: Sequence[str] | None = None,
    max_weight: float | None = 10.0,
) -> SurvivalComparison:
    """Time to readmission within ``horizon_days`` after discharge, weighted for confounding.

    People with ``readmit_{horizon}d`` known (not null: followed long enough) are included;
    time is ``days_to_readmission`` when readmitted within the horizon, else censored at the
    horizon. ``weights`` is ``"iptw_ate"``, ``"overlap"`` or ``"none"``; the propensity model
    is fitted on this population. Numbers at risk are unweighted head counts.
    """
    import polars as pl

    from pipelines.stats.adjusted import prepare
    from pipelines.stats.design import DEFAULT_COVARIATES, build_design
    from pipelines.stats.results import NotEstimable
    from pipelines.stats.survival import cox_ph, kaplan_meier, logrank

    flag = f"readmit_{horizon_days}d"
    in_arm = arm_mask(frame, arm)
    in_ref = arm_mask(frame, reference) & ~in_arm
    known = frame.get_column(flag).is_not_null().to_numpy()
    keep = (in_arm | in_ref) & known
    sub = frame.filter(pl.Series(keep))
    a = in_arm[keep]
    event = sub.get_column(flag).cast(pl.Boolean).to_numpy().astype(bool)
    days = sub.get_column("days_to_readmission").cast(pl.Float64).fill_null(float(horizon_days)).to_numpy()
    event &= days <= horizon_days
    time_ = np.where(event, days, float(horizon_days))
    w = None
    if weights != "none":
        pop = prepare(build_design(sub, tuple(covariates or DEFAULT_COVARIATES)), a, max_weight=max_weight)
        if not pop.propensity.fit.converged:
            na = NotEstimable(f"propensity model: {pop.propensity.fit.note}", "survival", sub.height)
            return SurvivalComparison({}, na, na, weights, horizon_days, sub.height)
        w = np.asarray(pop.weights[weights].weights)
    curves = {
        name: kaplan_meier(time_[rows], event[rows], None if w is None else w[rows], at=at)
        for name, rows in ((arm, a), (reference, ~a))
    }
    from pipelines.stats.inference import MIN_CLUSTERS

    cox = cox_ph(time_, event, a, w, cluster=label_ranks(sub, cluster),
                 min_clusters=MIN_CLUSTERS if min_clusters is None else int(min_clusters))
    return SurvivalComparison(curves, cox, logrank(time_, event, a), weights, horizon_days, sub.height)
