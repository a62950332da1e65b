"""The comparative part of an analysis: IOP vs residential (or any pair), crude and adjusted.

Wires the analysis frame (:mod:`pipelines.definitions.evaluate`) to the statistics
(:mod:`pipelines.analysis.comparisons`, :mod:`pipelines.stats`) and returns JSON-ready tables
for ``results.json``, ``comparisons.csv`` and ``balance.csv``:

* ``comparisons`` / ``balance`` / ``diagnostics`` / ``noninferiority``: from ``compare``;
* ``propensity``: a histogram of the propensity score by arm (the overlap chart), binned here
  so that no individual score leaves the warehouse;
* ``survival.readmission``: time to readmission by arm — Kaplan–Meier unweighted and
  IPTW(ATE)-weighted, Cox hazard ratio (robust variance, proportional-hazards check) and the
  log-rank test. Episodes are censored at the data end date (``days_observed``); step-downs
  are not readmissions (docs/interfaces.md);
* ``modification``: the AIPW risk difference of the headline definitions within subgroups of
  baseline severity, co-occurring disorder and primary substance, with Cochran's Q.

Nothing here is disclosed yet: :func:`pipelines.analysis.command.analyze` applies
:mod:`pipelines.disclosure` before anything is written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.stats.blas import single_blas_thread

if TYPE_CHECKING:
    import duckdb
    import polars as pl

    from pipelines.stats.results import Design, LogisticFit

# Definitions whose subgroup effects are reported (when present in the analysis).
MODIFICATION_DEFINITIONS = ("completion", "abstinent_90d_itt", "no_readmission_90d")
PROPENSITY_BINS = 20
KM_TIMES = (30, 90, 180, 365)
# Pathway and follow-up columns compare needs beside the baseline columns of the frame.
EXTRA_COLUMNS = ("fu30_reached", "fu90_reached", "fu180_reached", "fu365_reached",
                 "days_observed", "days_to_readmission", "episode_cost", "hours_per_week", "family_involved")
FRAME_BATCH_ROWS = 1 << 20


def _clean(value: Any) -> Any:
    """JSON-safe scalars: NaN and infinities become None, numpy scalars Python ones."""
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _records(df: pl.DataFrame) -> list[dict[str, Any]]:
    return [{k: _clean(v) for k, v in row.items()} for row in df.to_dicts()]


def _extra_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    have = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_name = 'mart_episodes'"
    ).fetchall()}
    return [c for c in EXTRA_COLUMNS if c in have]


def analysis_frame(con: duckdb.DuckDBPyConnection, definitions: Sequence[Any]) -> pl.DataFrame:
    """The analysis frame plus the follow-up and pathway columns the comparisons use."""
    from pipelines.definitions.evaluate import evaluate

    # one query: a join of the extra columns afterwards would copy the whole frame
    return evaluate(con, definitions, extra=_extra_columns(con))


def statistics_frame(
    con: duckdb.DuckDBPyConnection, definitions: Sequence[Any], levels: Sequence[str] | None = None,
    where: str = "", where_params: Sequence[Any] = (),
) -> pl.DataFrame:
    """The part of :func:`analysis_frame` that :func:`comparative_results` reads (arms, cluster,
    covariates, definitions, follow-up), its text columns Categorical; only the rows whose
    ``level_group`` or ``level_of_care`` is one of ``levels`` when given (an arm's rows) and
    that meet ``where`` (the reporting period, with ``where_params``), in
    the mart's key order (``evaluate.FRAME_ORDER``: the same numbers however the marts were built).

    Read in batches of FRAME_BATCH_ROWS, each batch's text made Categorical before the next:
    DuckDB's text handed to polars whole holds several times the frame's size at the peak, most
    of it the allocators' and not given back (benchmarks/README.md, Measurements:
    pipelines/analysis/comparative.py)."""
    import polars as pl

    from pipelines.definitions.evaluate import frame_sql, not_applicable
    from pipelines.stats.design import DEFAULT_COVARIATES

    baseline = list(dict.fromkeys(("level_group", "level_of_care", "site_id", *DEFAULT_COVARIATES)))
    conditions, params = ([f"({where})"], list(where_params)) if where else ([], [])
    if levels is not None:
        marks = ", ".join("?" for _ in levels)
        conditions.append(f"(level_group in ({marks}) or level_of_care in ({marks}))")
        params += [*levels, *levels]
    inapplicable = not_applicable(con, definitions, where=where, where_params=where_params)
    sql, params = frame_sql(definitions, inapplicable, _extra_columns(con), baseline,
                            where=" and ".join(conditions), where_params=params, ordered=True)
    reader = con.sql(sql, params=params).to_arrow_reader(FRAME_BATCH_ROWS)
    parts = [_categorical(pl.from_arrow(batch)) for batch in reader]
    return pl.concat(parts, how="vertical") if parts else _categorical(pl.from_arrow(reader.schema.empty_table()))


def _categorical(df: pl.DataFrame) -> pl.DataFrame:
    import polars as pl

    return df.with_columns(pl.col(pl.String).cast(pl.Categorical))


@single_blas_thread()
def comparative_results(
    con: duckdb.DuckDBPyConnection,
    definitions: Sequence[Any],
    *,
    arm: str = "iop",
    reference: str = "residential",
    arms: Sequence[str] | None = None,
    margin_pp: float = 5.0,
    margin_ratio: float = 0.8,
    margin_basis: str = "auto",
    min_clusters: int = 30,
    multiarm_outcomes: bool = False,
    where: str = "",
    where_params: Sequence[Any] = (),
) -> dict[str, Any]:
    """Every comparative table of ``results.json`` for ``arm`` vs ``reference`` over the
    mart's rows that meet ``where`` (the reporting period; "" = all) (DuckDB keeps little
    memory meanwhile: the frame is loaded, the rest is numpy). The non-inferiority margins
    (``margin_pp``, ``margin_ratio``, ``margin_basis``) are those of ``compare``."""
    from pipelines import heap
    from pipelines.warehouse import memory_returned

    try:
        # reading the frame needs little of DuckDB either; the free heap is handed back past 1 GiB
        with memory_returned(con), heap.trimmed():
            # the rows of the levels compared only (at 25 M, 15.5 M of the rows), handed on in a
            # list that _comparative empties: nothing here keeps the frame alive
            levels = list(dict.fromkeys((arm, reference, *(arms or ()))))
            return _comparative([statistics_frame(con, definitions, levels, where, where_params)], definitions,
                                arm, reference, arms, margin_pp, margin_ratio, margin_basis, min_clusters,
                                multiarm_outcomes)
    finally:
        heap.release()  # the heap keeps freed blocks for reuse: none are needed now


def _comparative(holder: list[pl.DataFrame], definitions: Sequence[Any], arm: str, reference: str,
                 arms: Sequence[str] | None, margin_pp: float, margin_ratio: float = 0.8,
                 margin_basis: str = "auto", min_clusters: int = 30,
                 multiarm_outcomes: bool = False) -> dict[str, Any]:
    """The tables of comparative_results from the frame in ``holder`` (a list of one, emptied
    here: compare() lets go of the frame once it has what it reads, and the frame's memory,
    gigabytes at national scale, is then free for the rest of the statistics)."""
    import polars as pl

    from pipelines.analysis.comparison_plan import arm_mask, concurrently
    from pipelines.analysis.comparisons import compare
    from pipelines.analysis.services import SERVICE_COLUMNS, SERVICE_DEFINITIONS, adjusted_services
    from pipelines.stats.design import DEFAULT_COVARIATES, build_design
    from pipelines.stats.propensity import fit_propensity
    from pipelines.stats.weighting import iptw_weights

    frame = holder.pop()
    in_arm = arm_mask(frame, arm)
    in_ref = arm_mask(frame, reference) & ~in_arm
    out: dict[str, Any] = {"arm": arm, "reference": reference, "margin_pp": margin_pp,
                           "margin_ratio": margin_ratio, "margin_basis": margin_basis}
    if in_arm.sum() == 0 or in_ref.sum() == 0:
        missing = arm if in_arm.sum() == 0 else reference
        out["not_estimable"] = f"no episodes at level {missing!r} in the data"
        return out
    available_arms = [a for a in (arms or ()) if arm_mask(frame, a).any()]
    # the columns of the design, the survival curves and the subgroups (compare() takes its own)
    side_columns = (*DEFAULT_COVARIATES, "days_observed", "days_to_readmission", *MODIFICATION_DEFINITIONS,
                    *SERVICE_DEFINITIONS, *SERVICE_COLUMNS)
    sub = frame.select(c for c in dict.fromkeys(side_columns) if c in frame.columns).filter(
        pl.Series(in_arm | in_ref))
    treated = in_arm[in_arm | in_ref]
    # one design and one propensity model on every row of the comparison, for compare() (its
    # populations' fits start from it), the weights of the overlap chart and the survival
    # curves, and the subgroup fits
    design = build_design(sub)
    model = fit_propensity(design.matrix, treated)

    def side_tables() -> dict[str, Any]:
        side: dict[str, Any] = {}
        weights = None
        if model.fit.converged:
            weights = np.asarray(iptw_weights(model, "ate").weights)
            side["propensity"] = _histogram(np.asarray(model.ps), treated, arm, reference)
        side["survival"] = _survival(sub, treated, weights, arm, reference)
        side["modification"] = _modification(sub, treated, definitions, design, model.fit)
        side["services"] = adjusted_services(sub, treated, design, model, definitions, arm, reference)
        return side

    # the survival and subgroup tables are independent of compare(): one more job on the
    # threads compare() runs its populations on (queued first: it is long)
    passed = [frame]
    del frame
    with concurrently() as pool:
        pending = pool.submit(side_tables)
        result = compare(passed.pop(), definitions, arm=arm, reference=reference,
                         arms=available_arms if len(available_arms) >= 3 else None, margin_pp=margin_pp,
                         margin_ratio=margin_ratio, margin_basis=margin_basis, executor=pool, design=design,
                         propensity=model.fit, min_clusters=min_clusters, multiarm_outcomes=multiarm_outcomes)
        side = pending.result()
    out["comparisons"] = _records(result.comparisons)
    out["balance"] = _records(result.balance)
    out["diagnostics"] = _records(result.diagnostics)
    out["noninferiority"] = _records(result.noninferiority)
    out["variance"] = result.variance
    if "propensity" in side:
        out["propensity"] = side["propensity"]
    out["survival"] = side["survival"]
    out["modification"] = side["modification"]
    out["services"] = side["services"]
    return out


def _histogram(ps: np.ndarray, treated: np.ndarray, arm: str, reference: str) -> dict[str, Any]:
    edges = np.linspace(0.0, 1.0, PROPENSITY_BINS + 1)
    return {
        "bin_edges": [float(e) for e in edges],
        "counts": {
            arm: np.histogram(ps[treated], bins=edges)[0].astype(int).tolist(),
            reference: np.histogram(ps[~treated], bins=edges)[0].astype(int).tolist(),
        },
    }


def _survival(sub: pl.DataFrame, treated: np.ndarray, weights: np.ndarray | None,
              arm: str, reference: str) -> dict[str, Any]:
    from pipelines.stats.survival import cox_ph, kaplan_meier, logrank

    if "days_observed" not in sub.columns or sub.get_column("days_observed").null_count() == sub.height:
        return {"not_available": "no dates of readmission in these data (TEDS-D has none)"}
    observed = sub.get_column("days_observed").cast(float).to_numpy()
    to_readmit = sub.get_column("days_to_readmission").cast(float).to_numpy()
    keep = ~np.isnan(observed)
    event = ~np.isnan(to_readmit) & (to_readmit <= observed)
    time = np.where(event, to_readmit, observed)
    time, event, a = time[keep], event[keep], treated[keep]
    w = weights[keep] if weights is not None else None
    groups = {}
    for name, rows in ((arm, a), (reference, ~a)):
        curve = kaplan_meier(time[rows], event[rows], None if w is None else w[rows], at=KM_TIMES)
        groups[name] = {
            "time": curve.time.tolist(), "survival": curve.survival.tolist(),
            "ci_low": curve.ci_low.tolist(), "ci_high": curve.ci_high.tolist(),
            "at_risk": curve.at_risk.astype(int).tolist(), "weighted": w is not None,
        }
    risk = {
        name: [int(((time >= t) & rows).sum()) for t in (0, *KM_TIMES)]
        for name, rows in ((arm, a), (reference, ~a))
    }
    if event.sum() < 2 or a.sum() == 0 or (~a).sum() == 0:
        return {"readmission": {"not_estimable": "fewer than 2 readmissions, or an arm without episodes"}}
    cox = cox_ph(time, event, a, w)
    try:
        test = logrank(time, event, a)
        logrank_result = {"statistic": _clean(test.statistic), "p_value": _clean(test.p_value)}
    except np.linalg.LinAlgError:  # no information to compare (e.g. every event in one arm)
        logrank_result = {"not_estimable": "the log-rank variance is singular for these data"}
    survival: dict[str, Any] = {
        "readmission": {
            "groups": groups,
            "risk_table": {"times": [0, *KM_TIMES], "at_risk": risk},
            "events": {arm: int(event[a].sum()), reference: int(event[~a].sum())},
            "logrank": logrank_result,
            "weights": "iptw_ate" if w is not None else "none",
        }
    }
    if hasattr(cox, "hr"):
        survival["readmission"]["cox"] = {
            "hazard_ratio": _clean(cox.hr.estimate), "ci_low": _clean(cox.hr.ci_low),
            "ci_high": _clean(cox.hr.ci_high), "p_value": _clean(cox.hr.p_value),
            "ph_test_p_value": _clean(cox.ph_test.p_value), "method": cox.method,
        }
    else:
        survival["readmission"]["cox"] = {"not_estimable": getattr(cox, "reason", "not estimable")}
    return survival


def _shared_labels(values: pl.Series) -> np.ndarray:
    """``values`` as text in an object array (None for null) whose rows share one string per
    label: polars' to_numpy makes a string object per row (benchmarks/README.md, Measurements:
    pipelines/analysis/comparative.py)."""
    import polars as pl

    text = values.cast(pl.String)
    labels = text.drop_nulls().unique(maintain_order=True)
    table = np.array([*labels.to_list(), None], dtype=object)
    at = text.replace_strict(labels, pl.int_range(labels.len(), eager=True), default=None,
                             return_dtype=pl.Int64)
    return table[at.fill_null(labels.len()).to_numpy()]


def _modification(sub: pl.DataFrame, treated: np.ndarray, definitions: Sequence[Any],
                  whole: Design, propensity: LogisticFit) -> list[dict[str, Any]]:
    """Subgroup effects of MODIFICATION_DEFINITIONS (``whole``: the design of all of ``sub``,
    ``propensity``: the propensity model fitted on it)."""
    import polars as pl

    from pipelines.stats.design import build_design
    from pipelines.stats.modification import effect_modifications, whole_population_starts

    modifiers: dict[str, np.ndarray] = {}
    if "use_days_admit" in sub.columns and sub.get_column("use_days_admit").null_count() < sub.height:
        days = sub.get_column("use_days_admit")
        modifiers["severity"] = _shared_labels(
            pl.select(pl.when(days >= 20).then(pl.lit("daily or near-daily use (20+ days)"))
                      .when(days.is_not_null()).then(pl.lit("less than 20 days")).otherwise(None))
            .to_series()
        )
    for col in ("co_occurring_mh", "primary_substance"):
        if col in sub.columns:
            modifiers[col] = _shared_labels(sub.get_column(col))
    # does family involvement change the comparison? (involvement is not randomized)
    if "family_involved" in sub.columns and sub.get_column("family_involved").null_count() < sub.height:
        involved = sub.get_column("family_involved")
        modifiers["family_involved"] = _shared_labels(
            pl.select(pl.when(involved).then(pl.lit("family involved"))
                      .when(involved.is_not_null()).then(pl.lit("no family involvement")).otherwise(None))
            .to_series())
    ids = {d.id for d in definitions}
    results: dict[tuple[str, str], Any] = {}

    def run(def_ids: list[str], ys: list[np.ndarray], rows: np.ndarray | slice, design: Design, starts: list) -> None:
        """``rows``: the rows of ``design`` (``slice(None)``: every row, a view, nothing copied)."""
        for name, values in modifiers.items():
            found = effect_modifications(ys, treated[rows], design, values[rows], name, starts=starts)
            results.update(((def_id, name), result) for def_id, result in zip(def_ids, found))

    # the definitions measured on every row share the whole design, and with it each
    # subgroup's propensity model (fitted once for all of them: it does not depend on the
    # outcome), by whether their fits have starts; the others have a design of their own
    # rows, run at once (one such design at a time)
    shared: dict[bool, tuple[list[str], list[np.ndarray], list]] = {}
    for def_id in (d for d in MODIFICATION_DEFINITIONS if d in ids):
        y = sub.get_column(def_id).cast(float).to_numpy()
        has = ~np.isnan(y)
        if has.sum() == 0:
            continue
        if has.all():
            starts = whole_population_starts(y, treated, whole, propensity)
            def_ids, ys, all_starts = shared.setdefault(starts is not None, ([], [], []))
            def_ids.append(def_id)
            ys.append(y)
            all_starts.append(starts)
        else:
            design = build_design(sub.filter(pl.Series(has)))
            run([def_id], [y[has]], has, design, [whole_population_starts(y[has], treated[has], design)])
            del design
    for def_ids, ys, all_starts in shared.values():
        run(def_ids, ys, slice(None), whole, all_starts)
    rows = []
    for def_id in (d for d in MODIFICATION_DEFINITIONS if d in ids):
        for name in modifiers:
            result = results.get((def_id, name))
            if result is None:
                continue
            p_value = _clean(getattr(result.test, "p_value", None))
            for level, effect in result.subgroups:
                rd = effect.rd
                rows.append({
                    "definition_id": def_id, "modifier": name, "level": level,
                    "estimate": _clean(getattr(rd, "estimate", None)),
                    "ci_low": _clean(getattr(rd, "ci_low", None)), "ci_high": _clean(getattr(rd, "ci_high", None)),
                    "n": int(effect.n), "note": getattr(rd, "reason", None),
                    "interaction_p_value": p_value,
                })
    return rows
