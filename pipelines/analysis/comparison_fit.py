"""Fitting a comparison: each population's propensity model, weights, balance and diagnostics,
crude and adjusted estimates, the follow-up-weighted estimates and the multinomial (several
arms) rows, collected as :mod:`pipelines.analysis.comparison_rows` rows.

Work on different threads gets a :meth:`Fitter.fresh` fitter of its own; :meth:`Fitter.absorb`
collects its rows after the caller's, so the tables' order never depends on the threads.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from typing import Any

import numpy as np

from pipelines.analysis.comparison_plan import (
    arm_mask,
    by_population,
    label_ranks,
    mask_key,
    plan_tasks,
    read_columns,
)
from pipelines.analysis.comparison_rows import BalanceRow, ComparisonRow, DiagnosticRow

MIN_EQUIPOISE = 0.2
MAX_C_STATISTIC = 0.95


class Fitter:
    """Fits a comparison's populations and accumulates their rows."""

    def __init__(self, arm, reference, methods, min_arm, min_events, max_weight, confidence, primary,
                 min_clusters, multiarm_outcomes=False):
        self.arm, self.reference = arm, reference
        self.min_clusters = min_clusters
        self.multiarm_outcomes = multiarm_outcomes
        self.methods = tuple(methods)
        self.min_arm, self.min_events = min_arm, min_events
        self.max_weight, self.confidence, self.primary = max_weight, confidence, primary
        self.rows: list[ComparisonRow] = []
        self.balance_rows: list[BalanceRow] = []
        self.diag_rows: list[DiagnosticRow] = []
        self.primary_rd: list[tuple[Any, Any]] = []
        self.timings: dict[str, float] = {}
        self._followup_fits: dict[tuple[str, str], Any] = {}

    def fresh(self) -> Fitter:
        """An empty context with the same settings (for work on another thread)."""
        return Fitter(self.arm, self.reference, self.methods, self.min_arm, self.min_events,
                        self.max_weight, self.confidence, self.primary, self.min_clusters,
                        self.multiarm_outcomes)

    def absorb(self, other: Fitter) -> None:
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
    def _row(self, arm, d, method, scale, est, missing_data, pop_id, note_extra=None, ev=None):
        from pipelines.stats.results import NotEstimable

        note = est.reason if isinstance(est, NotEstimable) else est.note
        note = "; ".join(x for x in (note_extra, note) if x) or None
        known = {"definition_id": d.id, "definition_version": str(d.version), "arm": arm,
                 "reference": self.reference, "estimand": scale, "method": method, "missing_data": missing_data,
                 "population": pop_id, "note": note}
        if isinstance(est, NotEstimable):
            self.rows.append(ComparisonRow(**known))
            return
        self.rows.append(ComparisonRow(
            **known, target=est.target, estimate=est.estimate, ci_low=est.ci_low, ci_high=est.ci_high,
            se=est.se, p_value=est.p_value, n_arm=est.n_arm, n_reference=est.n_reference,
            risk_arm=est.risk_arm, risk_reference=est.risk_reference,
            e_value=None if ev is None else ev.e_value, e_value_ci=None if ev is None else ev.e_value_ci,
            variance=est.variance,
        ))

    def _effect_rows(self, d, method, eff, missing_data, pop_id, note=None, e_values=False, arm=None):
        """RD and RR rows of ``arm`` (default: the comparison's arm); adjusted rows carry the
        E-value of the RR (= risk_arm / risk_reference)."""
        from pipelines.stats.results import EValue
        from pipelines.stats.sensitivity import e_value

        ev = e_value(eff.rr) if e_values else None
        ev = ev if isinstance(ev, EValue) else None
        arm = self.arm if arm is None else arm
        self._row(arm, d, method, "rd", eff.rd, missing_data, pop_id, note, ev)
        self._row(arm, d, method, "rr", eff.rr, missing_data, pop_id, note, ev)

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

    def _events_reason(self, y, a, arm=None) -> str | None:
        """Why an outcome model cannot be fitted: too few successes or failures in ``arm`` (default:
        the comparison's arm, rows ``a``) or in the reference (the other rows), else None."""
        for name, rows in ((self.arm if arm is None else arm, a), (self.reference, ~a)):
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
            self.diag_rows.append(DiagnosticRow(
                population=pop_id, definitions=defs, method="propensity", n_arm=n1, n_reference=n0,
                converged=False, passed=False, note=reason,
            ))
            return reason
        overlap_ok = pm.equipoise >= MIN_EQUIPOISE and pm.c_statistic <= MAX_C_STATISTIC
        weights = {
            m: pop.weights[m].weights for m in WEIGHTING_METHODS if m in self.methods or m == "iptw_ate"
        }
        bal = balance_tables(pop_design, a, weights)
        for m, b in bal.items():
            for r in b.rows:
                self.balance_rows.append(BalanceRow(
                    population=pop_id, method=m, n_arm=n1, n_reference=n0,
                    **{f.name: getattr(r, f.name) for f in dataclasses.fields(r)},
                ))
            w = pop.weights[m]
            self.diag_rows.append(DiagnosticRow(
                population=pop_id, definitions=defs, method=m, n_arm=n1, n_reference=n0,
                c_statistic=pm.c_statistic, equipoise=pm.equipoise, ess_arm=w.ess[self.arm],
                ess_reference=w.ess[self.reference], share_truncated=w.share_truncated, converged=True,
                max_abs_smd_after=b.max_abs_smd_after, balance_passed=b.passed, overlap_passed=overlap_ok,
                passed=bool(b.passed and overlap_ok),
            ))
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
        key = (pop_id, mask_key(reached))
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
            codes[arm_mask(frame, x) & (codes < 0)] = k
        keep = codes >= 0
        sub = frame.select(read_columns(frame, definitions, cluster, *covariates)).filter(pl.Series(keep))
        del frame
        codes = codes[keep]
        full = build_design(sub, covariates)
        cl_all = label_ranks(sub, cluster)
        populations = by_population(plan_tasks(sub, definitions, followup=False))
        del sub
        anchor = None  # the model on every row starts each population's fit, as in compare()
        if np.bincount(codes, minlength=len(arms)).min() >= self.min_arm:
            fit = fit_multinomial_propensity(full.matrix, codes, arms).fit
            anchor = (fit.params, full.columns) if fit.converged else None
            del fit  # its fitted probabilities: rows x arms
        for pid, group in enumerate(populations, start=1):
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
                        self.diag_rows.append(DiagnosticRow(
                            population=pop_id, definitions=",".join(t.definition.id for t in group),
                            method="iptw_ate_multinomial", n_arm=int(counts[arms.index(name)]),
                            n_reference=int(counts[0]), ess_arm=w.ess[name], ess_reference=w.ess[self.reference],
                            share_truncated=w.share_truncated, converged=True, passed=True,
                            note=f"{name} vs {self.reference}; weights over {', '.join(arms)}",
                        ))
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
        reasons = {name: reason or self._events_reason(y[(c == k) | (c == 0)], (c == k)[(c == k) | (c == 0)], name)
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
            pair = (c == k) | (c == 0)
            r = reasons[name]
            if r:
                na = NotEstimable(r, "iptw_ate_multinomial", int(pair.sum()))
                eff = Effect(na, na, "iptw_ate_multinomial", "ate", int(pair.sum()))
            else:
                eff = multinomial_effect(y, c, k, 0, w, nu, cluster=cl, confidence=self.confidence)
            note = f"multinomial propensity over {', '.join(arms)}"
            self._effect_rows(t.definition, "iptw_ate_multinomial", eff, t.missing_data, pop_id, note, True,
                              arm=name)
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
                self._effect_rows(t.definition, method, eff, t.missing_data, pop_id, over, True, arm=name)
