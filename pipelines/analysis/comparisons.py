"""Compare one level of care with another for every success definition, crude and adjusted.

:func:`compare` takes the analysis frame (docs/interfaces.md: baseline columns of
mart_episodes plus one Int8 column per definition id, 1 / 0 / null) and returns the rows of
``comparisons.csv``, ``balance.csv``, the diagnostics and the non-inferiority verdicts.
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

import hashlib
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pipelines import progress
from pipelines.stats.blas import single_blas_thread

if TYPE_CHECKING:
    import polars as pl

    from pipelines.stats.results import Design, LogisticFit

DEFAULT_METHODS = ("crude", "gcomp", "iptw_ate", "iptw_att", "overlap", "aipw")
MIN_ARM = 20
MIN_EVENTS = 5
MIN_EQUIPOISE = 0.2
MAX_C_STATISTIC = 0.95


class DefinitionLike(Protocol):
    """What compare needs from a success definition (pipelines.definitions.Definition fits)."""

    id: str
    version: Any
    window_days: int | None
    missing: str | None
    followup: str | None  # "interview": read from the follow-up interview of window_days


def _interview_column(d: DefinitionLike) -> str | None:
    """The ``fu{w}_reached`` column of a follow-up-interview definition, else None."""
    if getattr(d, "followup", None) != "interview" or d.window_days is None:
        return None
    return f"fu{d.window_days}_reached"


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


@dataclass(frozen=True, slots=True)
class _Task:
    definition: Any
    kind: str  # "standard" | "followup"
    mask: np.ndarray
    y: np.ndarray
    missing_data: str | None
    reached: np.ndarray | None = None


def _arm_mask(frame: pl.DataFrame, value: str) -> np.ndarray:
    import polars as pl

    expr = pl.lit(False)
    for col in ("level_group", "level_of_care"):
        if col in frame.columns:
            expr = expr | (pl.col(col).cast(pl.String) == value).fill_null(False)
    return frame.select(expr.alias("m")).to_series().to_numpy().astype(bool)


#: Threads for independent statistics (populations, the multinomial comparison, survival
#: and subgroup tables): the reference machine's two cores.
STATS_THREADS = 2


@contextmanager
def concurrently(executor=None):
    """A pool of STATS_THREADS threads for independent statistics (or ``executor``, a pool
    the caller already has). numpy's ufuncs and BLAS release the GIL, and each BLAS call stays
    single-threaded (single_blas_thread), so the threads share the cores without spin-waiting.
    Results do not depend on it: each piece of work is computed exactly as it would be alone
    and collected in a fixed order."""
    from concurrent.futures import ThreadPoolExecutor

    if executor is not None:
        yield executor
        return
    with ThreadPoolExecutor(max_workers=STATS_THREADS, thread_name_prefix="levelcare-stats") as pool:
        yield pool


def _key(mask: np.ndarray) -> str:
    return hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=12).hexdigest()


def _label_ranks(frame: pl.DataFrame, column: str | None) -> np.ndarray | None:
    """Ranks 0.. of ``column``'s labels in sorted order (null as "(missing)"), sorted by polars
    (numpy's unique of one Python string per row held the GIL for ~30 s and ~70 bytes a row at
    14 M rows). Each population's cluster_codes then sorts integers, not strings."""
    import polars as pl

    if not column or column not in frame.columns:
        return None
    labels = frame.get_column(column).cast(pl.String).fill_null("(missing)")
    return (labels.rank("dense") - 1).cast(pl.Int64).to_numpy()


def _read_columns(frame: pl.DataFrame, definitions: Iterable[DefinitionLike], *others: str | None) -> list[str]:
    """The columns of ``frame`` that _tasks reads for ``definitions`` (their own and their
    follow-up columns), and ``others``: what a filtered copy of the frame needs to hold."""
    names: list[str | None] = [*others]
    for d in definitions:
        names += [d.id, _interview_column(d)]
    return [c for c in dict.fromkeys(names) if c is not None and c in frame.columns]


def _tasks(frame: pl.DataFrame, definitions: Iterable[DefinitionLike], followup: bool = True) -> list[_Task]:
    """One task per definition (and one more per follow-up definition, unless not ``followup``).
    Equal masks are one array: definitions mostly share their populations."""
    tasks = []
    masks: dict[str, np.ndarray] = {}

    def one(mask: np.ndarray) -> np.ndarray:
        return masks.setdefault(_key(mask), mask)

    for d in definitions:
        if d.id not in frame.columns:
            raise KeyError(f"definition {d.id!r} has no column in the analysis frame")
        col = frame.get_column(d.id)
        if col.dtype.is_float():
            col = col.fill_nan(None)
        has = one(col.is_not_null().to_numpy())
        # 1 / 0 in the column's own type (Int8 in the analysis frame), 0 where null: a byte a
        # row per definition instead of float64 (27 definitions x 14 M rows: 3 GB)
        y = col.fill_null(0).to_numpy()
        fu_col = _interview_column(d)
        if fu_col is None or fu_col not in frame.columns:
            tasks.append(_Task(d, "standard", has, y, None))
            continue
        policy = "itt" if (d.missing or "failure") == "failure" else "cc"
        tasks.append(_Task(d, "standard", has, y, policy))
        if not followup:
            continue
        reached = one(frame.get_column(fu_col).fill_null(False).to_numpy().astype(bool))
        due = has if policy == "itt" else one(has | ~reached)
        tasks.append(_Task(d, "followup", due, y, "cc" if policy == "itt" else "itt", one(reached & has)))
    return tasks


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
    arm over all of them: three more fits a definition; at 1.7 M episodes the statistics take
    ~1.9 times as long, hence not by default).
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
        ctx = _Context(arm, reference, methods, min_arm, min_events, max_weight, confidence, primary,
                       min_clusters, multiarm_outcomes)
        covariates = tuple(covariates or DEFAULT_COVARIATES)
        with ctx.timed("design"):
            in_arm = _arm_mask(frame, arm)
            in_ref = _arm_mask(frame, reference) & ~in_arm
            # the columns read from here on only (a copy of every column of the frame's rows was
            # the largest allocation of the statistics at national scale)
            read = _read_columns(frame, definitions, cluster, *(covariates if design is None else ()))
            sub = frame.select(read).filter(pl.Series(in_arm | in_ref))
            treated = in_arm[in_arm | in_ref]
            if design is None:
                design = build_design(sub, covariates)
            elif design.n != sub.height:
                raise ValueError(f"design has {design.n} rows, the comparison {sub.height}")
            cl_values = _label_ranks(sub, cluster)
            rule = variance_rule(cluster, cl_values, min_clusters)
            tasks = _tasks(sub, definitions)
            n_rows = sub.height
            del sub  # what the populations need is in the design and the tasks
        by_pop: dict[str, list[_Task]] = {}
        for t in tasks:
            by_pop.setdefault(_key(t.mask), []).append(t)
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
            for pid, group in enumerate(by_pop.values(), start=1):
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
            comparisons = _with_adjusted_p(
                pl.DataFrame(ctx.rows, schema=_polars_schema(_COMPARISON_SCHEMA), orient="row")
            )
            ni = [_ni_row(r, margin_pp, arm, reference, margin_ratio, margin_basis) for r in ctx.primary_rd]
        return ComparisonResult(
            comparisons=comparisons,
            balance=pl.DataFrame(ctx.balance_rows, schema=_polars_schema(_BALANCE_SCHEMA), orient="row"),
            diagnostics=pl.DataFrame(ctx.diag_rows, schema=_polars_schema(_DIAG_SCHEMA), orient="row"),
            noninferiority=pl.DataFrame(ni, schema=_polars_schema(_NI_SCHEMA), orient="row"),
            arm=arm,
            reference=reference,
            n=n_rows,
            timings=dict(ctx.timings),
            variance=rule,
        )


def variance_rule(cluster: str | None, ranks: np.ndarray | None, min_clusters: int) -> str:
    """The variance rule as applied to a comparison's rows, in words."""
    g = 0 if ranks is None else int(np.unique(ranks).size)
    if ranks is not None and g >= max(2, min_clusters):
        return (f"cluster-robust (CR2, t({g - 1}) quantiles): {g} {cluster} clusters, at least {min_clusters}; "
                f"a population with fewer gets the person-level sandwich")
    if not cluster or ranks is None:
        return "person-level sandwich (HC0): no cluster column"
    return (f"person-level sandwich (HC0) with {cluster} as a fixed effect: {g} {cluster} clusters are "
            f"fewer than the {min_clusters} a cluster-robust variance needs")


_COMPARISON_SCHEMA = {
    "definition_id": "str", "definition_version": "str", "arm": "str", "reference": "str",
    "estimand": "str", "method": "str", "target": "str", "missing_data": "str",
    "estimate": "f64", "ci_low": "f64", "ci_high": "f64", "se": "f64", "p_value": "f64",
    "n_arm": "i64", "n_reference": "i64", "risk_arm": "f64", "risk_reference": "f64",
    "e_value": "f64", "e_value_ci": "f64", "population": "str", "note": "str", "variance": "str",
}  # fmt: skip
_BALANCE_SCHEMA = {
    "population": "str", "method": "str", "covariate": "str", "smd_before": "f64", "smd_after": "f64",
    "variance_ratio_before": "f64", "variance_ratio_after": "f64",
}  # fmt: skip
_DIAG_SCHEMA = {
    "population": "str", "definitions": "str", "method": "str", "n_arm": "i64", "n_reference": "i64",
    "c_statistic": "f64", "equipoise": "f64", "ess_arm": "f64", "ess_reference": "f64",
    "share_truncated": "f64", "converged": "bool", "max_abs_smd_after": "f64", "balance_passed": "bool",
    "overlap_passed": "bool", "passed": "bool", "note": "str",
}  # fmt: skip
_NI_SCHEMA = {
    "definition_id": "str", "arm": "str", "reference": "str", "method": "str", "margin_pp": "f64",
    "estimate": "f64", "ci95_low": "f64", "ci95_high": "f64", "ci90_low": "f64", "ci90_high": "f64",
    "noninferior": "bool", "equivalent": "bool", "p_noninferiority": "f64", "p_equivalence": "f64",
    "conclusion": "str", "margin_ratio": "f64", "rr": "f64", "rr_ci95_low": "f64", "rr_ci95_high": "f64",
    "rr_ci90_low": "f64", "rr_ci90_high": "f64", "noninferior_relative": "bool", "equivalent_relative": "bool",
    "p_noninferiority_relative": "f64", "p_equivalence_relative": "f64", "conclusion_absolute": "str",
    "conclusion_relative": "str", "margin_basis": "str", "margin_basis_reason": "str",
}  # fmt: skip


def _polars_schema(schema: dict[str, str]) -> dict[str, Any]:
    import polars as pl

    types = {"str": pl.String, "f64": pl.Float64, "i64": pl.Int64, "bool": pl.Boolean}
    return {k: types[v] for k, v in schema.items()}


class _Context:
    """Accumulates output rows while populations are processed one at a time."""

    def __init__(self, arm, reference, methods, min_arm, min_events, max_weight, confidence, primary,
                 min_clusters, multiarm_outcomes=False):
        self.arm, self.reference = arm, reference
        self.min_clusters = min_clusters
        self.multiarm_outcomes = multiarm_outcomes
        self.methods = tuple(methods)
        self.min_arm, self.min_events = min_arm, min_events
        self.max_weight, self.confidence, self.primary = max_weight, confidence, primary
        self.rows: list[tuple] = []
        self.balance_rows: list[tuple] = []
        self.diag_rows: list[tuple] = []
        self.primary_rd: list[tuple[Any, Any]] = []
        self.timings: dict[str, float] = {}
        self._followup_fits: dict[tuple[str, str], Any] = {}

    def fresh(self) -> _Context:
        """An empty context with the same settings (for work on another thread)."""
        return _Context(self.arm, self.reference, self.methods, self.min_arm, self.min_events,
                        self.max_weight, self.confidence, self.primary, self.min_clusters,
                        self.multiarm_outcomes)

    def absorb(self, other: _Context) -> None:
        """Append ``other``'s rows after this context's own, and add its timings."""
        self.rows += other.rows
        self.balance_rows += other.balance_rows
        self.diag_rows += other.diag_rows
        self.primary_rd += other.primary_rd
        for stage, seconds in other.timings.items():
            self.timings[stage] = self.timings.get(stage, 0.0) + seconds

    def timed_call(self, stage: str, fn, *args):
        with self.timed(stage):
            return fn(*args)

    @contextmanager
    def timed(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0

    # -- rows -------------------------------------------------------------------------------
    def _row(self, d, method, scale, est, missing_data, pop_id, note_extra=None, ev=None):
        from pipelines.stats.results import NotEstimable

        note = est.reason if isinstance(est, NotEstimable) else est.note
        note = "; ".join(x for x in (note_extra, note) if x) or None
        if isinstance(est, NotEstimable):
            self.rows.append((
                d.id, str(d.version), self.arm, self.reference, scale, method, None, missing_data,
                None, None, None, None, None, None, None, None, None, None, None, pop_id, note, None,
            ))  # fmt: skip
            return
        self.rows.append((
            d.id, str(d.version), self.arm, self.reference, scale, method, est.target, missing_data,
            est.estimate, est.ci_low, est.ci_high, est.se, est.p_value, est.n_arm, est.n_reference,
            est.risk_arm, est.risk_reference, None if ev is None else ev.e_value,
            None if ev is None else ev.e_value_ci, pop_id, note, est.variance,
        ))  # fmt: skip

    def _effect_rows(self, d, method, eff, missing_data, pop_id, note=None, e_values=False):
        """RD and RR rows; adjusted rows carry the E-value of the RR (= risk_arm / risk_reference)."""
        from pipelines.stats.results import EValue
        from pipelines.stats.sensitivity import e_value

        ev = e_value(eff.rr) if e_values else None
        ev = ev if isinstance(ev, EValue) else None
        self._row(d, method, "rd", eff.rd, missing_data, pop_id, note, ev)
        self._row(d, method, "rr", eff.rr, missing_data, pop_id, note, ev)

    # -- one population ---------------------------------------------------------------------
    def run_population(self, pop_id, tasks, design, treated, cl_values, anchor=None):
        from pipelines.stats.adjusted import estimate, fit_outcome, prepare
        from pipelines.stats.balance import balance_tables
        from pipelines.stats.design import start_from, subset
        from pipelines.stats.inference import Nuisance, cluster_codes
        from pipelines.stats.proportions import risk_difference, risk_ratio
        from pipelines.stats.results import Effect, NotEstimable

        mask = tasks[0].mask
        a = treated[mask]
        n1, n0 = int(a.sum()), int((~a).sum())
        adjusted = [m for m in self.methods if m != "crude"]
        with self.timed("population subset"):
            pop_design = design if mask.all() else (subset(design, mask) if mask.any() else None)
        cl = cluster_codes(cl_values[mask], self.min_clusters) if cl_values is not None else None
        pop = None
        pop_reason = None
        if min(n1, n0) < self.min_arm:
            pop_reason = (
                f"fewer than {self.min_arm} people in an arm ({self.arm}: {n1}, {self.reference}: {n0})"
            )
        elif adjusted:
            with self.timed("propensity + weights"):
                start = None if anchor is None else start_from(*anchor, pop_design.columns)
                pop = prepare(pop_design, a, arms=(self.arm, self.reference), max_weight=self.max_weight,
                              start=start)
                pop_design = pop.design  # the same columns, a view of pop.Xa: the subset copy goes
            with self.timed("balance + diagnostics"):
                pop_reason = self._diagnose(pop_id, tasks, pop, pop_design, a, balance_tables)
        for t in tasks:
            d = t.definition
            y = t.y[mask].astype(float)
            if t.kind == "followup":
                with self.timed("follow-up"):
                    self._followup(pop_id, t, pop, pop_reason, a, y, t.reached[mask], cl, Nuisance)
                continue
            if "crude" in self.methods:
                e1, e0 = int(y[a].sum()), int(y[~a].sum())
                rd, rr = (
                    risk_difference(e1, n1, e0, n0, self.confidence),
                    risk_ratio(e1, n1, e0, n0, self.confidence),
                )
                self._effect_rows(
                    d, "crude", Effect(rd, rr, "crude", "crude", n1 + n0), t.missing_data, pop_id
                )
            reason = pop_reason or self._events_reason(y, a)
            outcome = None
            if not reason and ({"gcomp", "aipw"} & set(adjusted)):
                with self.timed("outcome models"):
                    outcome = fit_outcome(pop, y)
            for m in adjusted:
                if reason:
                    na = NotEstimable(reason, m, n1 + n0)
                    eff = Effect(na, na, m, "ate", n1 + n0)
                else:
                    with self.timed("estimators"):
                        eff = estimate(pop, y, m, outcome=outcome, cluster=cl, confidence=self.confidence)
                self._effect_rows(d, m, eff, t.missing_data, pop_id, e_values=True)
                if m == self.primary:
                    self.primary_rd.append((d, eff.rd, eff.rr))
            del outcome

    def _events_reason(self, y, a) -> str | None:
        for name, rows in ((self.arm, a), (self.reference, ~a)):
            s = int(y[rows].sum())
            f = int(rows.sum()) - s
            if min(s, f) < self.min_events:
                return f"fewer than {self.min_events} successes or failures in {name} ({s} / {f})"
        return None

    def _diagnose(self, pop_id, tasks, pop, pop_design, a, balance_tables) -> str | None:
        from pipelines.stats.adjusted import WEIGHTING_METHODS

        pm = pop.propensity
        defs = ",".join(dict.fromkeys(t.definition.id for t in tasks))
        n1, n0 = int(a.sum()), int((~a).sum())
        if not pm.fit.converged:
            reason = f"propensity model: {pm.fit.note}"
            self.diag_rows.append((
                pop_id, defs, "propensity", n1, n0, None, None, None, None, None, False, None, None,
                None, False, reason,
            ))  # fmt: skip
            return reason
        overlap_ok = pm.equipoise >= MIN_EQUIPOISE and pm.c_statistic <= MAX_C_STATISTIC
        weights = {
            m: pop.weights[m].weights for m in WEIGHTING_METHODS if m in self.methods or m == "iptw_ate"
        }
        bal = balance_tables(pop_design, a, weights)
        for m, b in bal.items():
            for r in b.rows:
                self.balance_rows.append((
                    pop_id, m, r.covariate, r.smd_before, r.smd_after, r.variance_ratio_before,
                    r.variance_ratio_after,
                ))  # fmt: skip
            w = pop.weights[m]
            self.diag_rows.append((
                pop_id, defs, m, n1, n0, pm.c_statistic, pm.equipoise, w.ess[self.arm],
                w.ess[self.reference], w.share_truncated, True, b.max_abs_smd_after, b.passed,
                overlap_ok, bool(b.passed and overlap_ok), None,
            ))  # fmt: skip
        if not overlap_ok:
            return (
                f"no overlap: equipoise {pm.equipoise:.2f} (needs >= {MIN_EQUIPOISE}), "
                f"c-statistic {pm.c_statistic:.3f} (needs <= {MAX_C_STATISTIC})"
            )
        return None

    def _followup(self, pop_id, t, pop, pop_reason, a, y, reached, cl, Nuisance):
        from pipelines.stats.followup import fit_followup, followup_estimates
        from pipelines.stats.results import Effect, NotEstimable

        d = t.definition
        n = int(a.size)
        reason = pop_reason or self._events_reason(np.where(reached, y, 0.0), a)
        if reason is None and min(int((reached & a).sum()), int((reached & ~a).sum())) < self.min_arm:
            reason = f"fewer than {self.min_arm} people reached in an arm"
        if reason:
            na = NotEstimable(reason, "followup", n)
            eff = Effect(na, na, "iptw_ate", "ate", n)
            self._effect_rows(d, "iptw_ate", eff, t.missing_data, pop_id)
            self._effect_rows(d, "ipw_followup", eff, "ipfw", pop_id)
            return
        w = pop.weights["iptw_ate"]
        # One follow-up model per (population, reached pattern): definitions of the same
        # window share it.
        key = (pop_id, _key(reached))
        if key not in self._followup_fits:
            # pop.Xa is the design with the arm column last, as the follow-up model wants it
            self._followup_fits = {key: fit_followup(pop.Xa[:, :-1], a, reached, Xa=pop.Xa)}
        fe = followup_estimates(
            y, reached, a, pop.Xa[:, :-1], w, Nuisance(pop.Xa[:, :-1], pop.propensity.fit),
            followup_fit=self._followup_fits[key], cluster=cl, confidence=self.confidence, Xa=pop.Xa,
        )  # fmt: skip
        other = fe.itt if t.missing_data == "itt" else fe.complete_case
        label = "itt: unreached counted as failure" if t.missing_data == "itt" else "cc: reached people only"
        self._effect_rows(
            d, "iptw_ate", other, t.missing_data, pop_id, f"follow-up sensitivity, {label}", True
        )
        self._effect_rows(d, "ipw_followup", fe.ipw_followup, "ipfw", pop_id, None, True)

    # -- several arms -----------------------------------------------------------------------
    def run_multinomial(self, holder, arms, definitions, covariates, cluster, pool):
        """The multinomial rows; ``holder``: a list holding the frame, emptied here so that the
        frame can be freed while the job runs; ``pool``: the threads its definitions' jobs may
        also run on."""
        import polars as pl

        from pipelines.stats.design import build_design, start_from, subset
        from pipelines.stats.gcomp import arm_designs
        from pipelines.stats.inference import Nuisance, cluster_codes
        from pipelines.stats.propensity import fit_multinomial_propensity
        from pipelines.stats.weighting import multinomial_weights

        frame = holder.pop()
        arms = [self.reference] + [x for x in arms if x != self.reference]
        codes = np.full(frame.height, -1)
        for k, x in enumerate(arms):
            codes[_arm_mask(frame, x) & (codes < 0)] = k
        keep = codes >= 0
        sub = frame.select(_read_columns(frame, definitions, cluster, *covariates)).filter(pl.Series(keep))
        del frame
        codes = codes[keep]
        full = build_design(sub, covariates)
        cl_all = _label_ranks(sub, cluster)
        by_pop: dict[str, list[_Task]] = {}
        for t in _tasks(sub, definitions, followup=False):
            by_pop.setdefault(_key(t.mask), []).append(t)
        del sub
        anchor = None  # the model on every row starts each population's fit, as in compare()
        if np.bincount(codes, minlength=len(arms)).min() >= self.min_arm:
            fit = fit_multinomial_propensity(full.matrix, codes, arms).fit
            anchor = (fit.params, full.columns) if fit.converged else None
            del fit  # its fitted probabilities: rows x arms
        saved = self.arm
        for pid, group in enumerate(by_pop.values(), start=1):
            mask = group[0].mask
            c = codes[mask]
            counts = np.bincount(c, minlength=len(arms))
            pop_id = f"m{pid}"
            reason = None
            if counts.min() < self.min_arm:
                reason = f"fewer than {self.min_arm} people in an arm of {', '.join(arms)}"
            else:
                dsg = full if mask.all() else subset(full, mask)
                start = None if anchor is None else start_from(*anchor, dsg.columns)
                pm = fit_multinomial_propensity(dsg.matrix, c, arms, start=start)
                if not pm.fit.converged:
                    reason = f"multinomial propensity model: {pm.fit.note}"
                else:
                    w = multinomial_weights(pm, max_weight=self.max_weight)
                    nu = Nuisance(dsg.matrix, pm.fit)
                    X = dsg.matrix
                    for name in arms[1:]:
                        self.diag_rows.append((
                            pop_id, ",".join(t.definition.id for t in group), "iptw_ate_multinomial",
                            int(counts[arms.index(name)]), int(counts[0]), None, None, w.ess[name],
                            w.ess[self.reference], w.share_truncated, True, None, None, None, True,
                            f"{name} vs {self.reference}; weights over {', '.join(arms)}",
                        ))  # fmt: skip
            cl = cluster_codes(cl_all[mask], self.min_clusters) if cl_all is not None else None
            designs = None
            if reason is None:
                if self.multiarm_outcomes and any(m in self.methods for m in ("gcomp", "aipw")):
                    with self.timed("outcome models"):  # each arm's rows, copied once for every definition
                        designs = arm_designs(X, c, len(arms))
                shared = (arms, pop_id, mask, c, X, designs, pm, w, nu, cl)
            else:
                shared = (arms, pop_id, mask, c, None, None, None, None, None, cl)
            if designs is None:  # IPTW rows only: light work, done here
                for t in group:
                    self._multinomial_definition(t, reason, shared)
            else:
                # one job a definition: queued on the pool for a thread that is free, and taken
                # back here (from the last) while they wait, so that the per-arm outcome models of
                # the definitions run on both cores; rows are collected in definition order. The
                # jobs reach the population through ``box``, emptied after: a job cancelled here
                # stays in the pool's queue until a thread passes it, and must not hold the
                # population's design and models meanwhile.
                box = [shared]
                jobs = []
                for t in group:
                    job_ctx = self.fresh()
                    jobs.append((job_ctx, t, pool.submit(
                        lambda c_=job_ctx, t_=t, r_=reason, b_=box: c_._multinomial_definition(t_, r_, b_[0]))))
                for job_ctx, t, future in reversed(jobs):
                    if future.cancel():  # not started: do it here
                        job_ctx._multinomial_definition(t, reason, shared)
                for job_ctx, _, future in jobs:
                    if not future.cancelled():
                        future.result()
                    self.absorb(job_ctx)
                box.clear()
            # let this population's subset go before the next one is copied
            dsg = pm = w = nu = X = designs = shared = jobs = None
        self.arm = saved

    def _multinomial_definition(self, t, reason, shared) -> None:
        """One definition's multi-arm rows (multinomial IPTW, and g-computation and AIPW with one
        outcome model per arm) on a population of run_multinomial (``shared``)."""
        from pipelines.stats.gcomp import outcome_models
        from pipelines.stats.ipw import multinomial_effect
        from pipelines.stats.multiarm import MULTIARM_METHODS, multiarm_effects
        from pipelines.stats.results import Effect, NotEstimable

        arms, pop_id, mask, c, X, designs, pm, w, nu, cl = shared
        per_arm = [m for m in ("gcomp", "aipw") if m in self.methods and self.multiarm_outcomes]
        y = t.y[mask].astype(float)
        reasons = {name: reason or self._events_reason(y[(c == k) | (c == 0)], (c == k)[(c == k) | (c == 0)])
                   for k, name in enumerate(arms[1:], start=1)}
        effects: dict[str, dict[str, Any]] = {}
        if per_arm and not all(reasons.values()):
            # per-arm outcome models over all K arms (each arm's mean standardized over everyone),
            # fitted once for g-computation and AIPW
            with self.timed("outcome models"):
                outcome = outcome_models(y, X, c, len(arms), designs=designs)
            with self.timed("estimators"):
                for m in per_arm:
                    effects[m] = multiarm_effects(y, X, c, tuple(arms), m, outcome=outcome, propensity=pm,
                                                  cluster=cl, confidence=self.confidence)
            del outcome
        for k, name in enumerate(arms[1:], start=1):
            self.arm = name
            pair = (c == k) | (c == 0)
            r = reasons[name]
            if r:
                na = NotEstimable(r, "iptw_ate_multinomial", int(pair.sum()))
                eff = Effect(na, na, "iptw_ate_multinomial", "ate", int(pair.sum()))
            else:
                eff = multinomial_effect(y, c, k, 0, w, nu, cluster=cl, confidence=self.confidence)
            note = f"multinomial propensity over {', '.join(arms)}"
            self._effect_rows(t.definition, "iptw_ate_multinomial", eff, t.missing_data, pop_id, note, True)
            for m in per_arm:
                method = MULTIARM_METHODS[m]
                if r:
                    na = NotEstimable(r, method, int(pair.sum()))
                    eff = Effect(na, na, method, "ate", int(pair.sum()))
                else:
                    eff = effects[m][name]
                over = f"one outcome model per arm of {', '.join(arms)}, standardized over all of them"
                if m == "aipw":
                    over += "; multinomial propensity"
                self._effect_rows(t.definition, method, eff, t.missing_data, pop_id, over, True)


def _with_adjusted_p(df: pl.DataFrame) -> pl.DataFrame:
    import polars as pl

    from pipelines.stats.sensitivity import adjust_pvalues

    df = df.with_row_index("_i")
    holm = np.full(df.height, np.nan)
    bh = np.full(df.height, np.nan)
    keys = ["arm", "method", "estimand", "missing_data"]
    for _, part in df.group_by(keys, maintain_order=True):
        idx = part.get_column("_i").to_numpy()
        adj = adjust_pvalues(part.get_column("p_value").to_list())
        holm[idx] = adj.p_holm
        bh[idx] = adj.p_bh
    return df.drop("_i").with_columns(
        pl.Series("p_holm", holm, nan_to_null=True), pl.Series("p_bh", bh, nan_to_null=True)
    )


def _ni_row(item, margin_pp, arm, reference, margin_ratio=0.8, margin_basis="auto"):
    """One row of ``_NI_SCHEMA``: the absolute and relative verdicts of the primary estimate."""
    from pipelines.stats.noninferiority import noninferiority

    d, est, rr = item
    r = noninferiority(est, d.id, margin_pp, arm, reference, rr=rr, margin_ratio=margin_ratio, basis=margin_basis)
    known = {"definition_id": d.id, "arm": arm, "reference": reference, "method": getattr(est, "method", "")}
    row = (known[k] if k in known else getattr(r, k) for k in _NI_SCHEMA)
    # an unbounded ratio limit (a degenerate standard error) is no number JSON can hold
    return tuple(None if isinstance(v, float) and not np.isfinite(v) else v for v in row)


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
    in_arm = _arm_mask(frame, arm)
    in_ref = _arm_mask(frame, reference) & ~in_arm
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

    cox = cox_ph(time_, event, a, w, cluster=_label_ranks(sub, cluster),
                 min_clusters=MIN_CLUSTERS if min_clusters is None else int(min_clusters))
    return SurvivalComparison(curves, cox, logrank(time_, event, a), weights, horizon_days, sub.height)
