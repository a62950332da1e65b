"""The program against the nation: case-mix-adjusted observed / expected against TEDS-D.

For each definition that both sources support, and each TEDS-D setting (level of care), a
main-effects logistic model is fitted on the reference rows (TEDS-D discharges of the chosen
years) on the covariates both sources carry; it scores the program's own (native) episodes of
that setting. The statistics are :mod:`pipelines.stats.benchmark`; this module reads the
warehouse, builds the pattern designs, applies disclosure control and writes the files.

* Covariates: :data:`COVARIATES` as ``mart_episodes`` holds them (TEDS-D codes already
  harmonised to the native words by ingestion). A missing value is a level of its own. A
  covariate with no value in the program's records or in the reference rows is left out of
  every model and listed with the reason (``covariates``); it is never dropped silently.
* Levels: a covariate level with fewer than :data:`RARE` reference rows in a setting joins the
  setting's most common level (the model's reference level). A program episode with such a
  level, or a level the setting's reference rows never have, or a linear predictor outside the
  reference rows' 0.5-99.5 % range, counts in ``overlap`` (rare or absent); a share above
  :data:`OVERLAP_WARNING` is warned about.
* Hold-out: one reference row in :data:`HOLDOUT` (by a hash of its key, so the split is the
  same on every run) is kept out of the fit; discrimination and calibration are measured on it.
* Retention is read from the TEDS length-of-stay band for both sources (``los_days`` blanked):
  native stays are banded the TEDS way by the marts, so a native 90-day stay counts as a TEDS
  one would.
* Native levels with no TEDS-D setting (PHP, inpatient) are not scored; their episodes are
  counted in ``unmatched_levels``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from pipelines.errors import UserError

log = logging.getLogger(__name__)

COVARIATES = ("age_band", "sex", "race", "ethnicity", "primary_substance", "co_occurring_mh",
              "homeless_admit", "employed_admit", "has_prior_episodes", "referral_source", "payer")
DEFAULT_DEFINITIONS = ("completion", "completion_or_transfer", "retention_90d")
SETTINGS = ("outpatient", "iop", "residential_short", "residential_long", "residential_hospital", "detox")
GROUPINGS = ("site", "level_of_care", "quarter")
GROUP_COLUMN = {"site": "site_id", "level_of_care": "level_of_care", "quarter": "discharge_quarter"}
RARE = 30
HOLDOUT = 5
OVERLAP_WARNING = 0.10
MISSING = "(missing)"
METHOD = (
    "Indirect standardization: per definition and TEDS-D setting, a main-effects logistic model "
    "fitted on the TEDS-D rows (4 in 5; the fifth held out for discrimination and calibration) "
    "gives each program episode its expected probability of success; expected = their sum. The O/E "
    "interval is computed on the scale of the program's log-odds offset from the national model, "
    "with the Poisson-binomial variance of the observed count plus the national model's "
    "coefficient uncertainty (delta method), and mapped back to O/E. Risk-standardized rate = O/E "
    "x the national rate of the same settings."
)
SHRINK_METHOD = (
    " With --shrink, each group's offset is shrunk toward the national rate (empirical Bayes, "
    "normal-normal, between-group variance by DerSimonian-Laird), as CMS's hierarchical measures do."
)


def benchmark(
    con: Any, definitions: Sequence[Any], *, years: tuple[int, int] | None = None,
    by: Sequence[str] = ("site",), shrink: bool = False, where: str = "",
    where_params: Sequence[object] = (), rule: Any = "cms", reference_table: str = "mart_episodes",
) -> Any:
    """The :class:`~pipelines.results.model.Benchmark` of the program's native episodes
    (``where``: a condition on them) against the TEDS-D rows of ``years`` (all when None) in
    ``reference_table`` (this warehouse's mart, or an attached reference warehouse's:
    :func:`reference_table`). A definition TEDS-D cannot support is listed as not applicable;
    none left is an error."""
    from pipelines import disclosure
    from pipelines.definitions.evaluate import not_applicable
    from pipelines.results import model as m

    for g in by:
        if g not in GROUPINGS:
            raise UserError(f"--by {g}: choose from {', '.join(GROUPINGS)}")
    r = disclosure.get_rule(rule)
    if r.round_to > 1:
        raise UserError(f"benchmark: not available under the {r.name} disclosure rule: it rounds counts, and an "
                        "O/E ratio times its expected count gives the exact observed count back (use --disclosure cms)")
    ref_where, ref_params = _reference_where(years)
    n_ref, ref_years = _reference_span(con, reference_table, ref_where, ref_params)
    if n_ref == 0:
        span = f" of {years[0]}-{years[1]}" if years else ""
        raise UserError(f"benchmark: the warehouse holds no TEDS-D rows{span} to compare with: load a "
                        "TEDS-D public use file first (levelcare ingest tedsd_puf_2019.csv)")
    prog_where = "source = 'native'" + (f" and ({where})" if where else "")
    n_prog = con.execute(f"select count(*) from mart_episodes where {prog_where}", list(where_params)).fetchone()[0]
    if n_prog == 0:
        raise UserError("benchmark: the warehouse holds no episodes of your own (native records) "
                        "to benchmark: load your discharges first (levelcare ingest discharges.csv)")

    covariates, uses = _covariates(con, reference_table, ref_where, ref_params, prog_where, where_params)
    if not covariates:
        raise UserError("benchmark: no covariate has values in both your records and the TEDS-D rows "
                        f"({', '.join(COVARIATES)}): nothing to adjust for; check the mapping of your export")
    absent = not_applicable(con, definitions, where=ref_where, where_params=ref_params, table=reference_table)
    mine = not_applicable(con, definitions, where=prog_where, where_params=where_params)
    na: list[dict[str, str]] = []
    usable = []
    for d in definitions:
        if d.followup:
            na.append({"id": d.id, "note": "not applicable: TEDS-D has no follow-up interviews"})
        elif absent.get(d.id):
            na.append({"id": d.id, "note": f"not applicable: TEDS-D has no {', '.join(absent[d.id])}"})
        elif mine.get(d.id):
            na.append({"id": d.id, "note": f"not applicable: your records have no {', '.join(mine[d.id])}"})
        else:
            usable.append(d)
    if not usable:
        raise UserError("benchmark: none of the definitions asked for can be computed from TEDS-D ("
                        + "; ".join(f"{x['id']}: {x['note']}" for x in na) + ")")

    unmatched = dict(con.execute(
        f"select level_of_care, count(*) from mart_episodes where {prog_where} and level_of_care not in "
        f"({', '.join('?' for _ in SETTINGS)}) group by 1 order by 1", [*where_params, *SETTINGS]).fetchall())
    rows: list[dict[str, Any]] = []
    models: list[dict[str, Any]] = []
    calib: list[dict[str, Any]] = []
    overlap: list[dict[str, Any]] = []
    notes: list[str] = []
    groupings = ["all", "level_of_care", *[g for g in by if g != "level_of_care"]]
    ref = _patterns(con, reference_table, usable, covariates, ref_where, ref_params, reference=True)
    prog = _patterns(con, "mart_episodes", usable, covariates, prog_where, list(where_params), reference=False)
    keys, codes = _group_codes(prog, groupings)
    acc = _Accumulator([d.id for d in usable], groupings, keys, r)
    for setting in SETTINGS:
        _setting(setting, [d.id for d in usable], ref, prog, codes, covariates, acc, models, calib, notes)
    del ref, prog
    for d in usable:
        overlap.append(acc.overlap(d.id))
        rows += acc.rows(d.id, shrink)
    rows = _disclose(rows, groupings, r)
    overlap = [{**o, "absent": disclosure.shown_count(o["absent"], r), "rare": disclosure.shown_count(o["rare"], r)}
               for o in overlap]
    calib = [c for c in calib if disclosure.statistic_allowed(c["n"], r)]
    models = [{**x, "n_fit": disclosure.shown_count(x["n_fit"], r),
               "n_holdout": disclosure.shown_count(x["n_holdout"], r)} for x in models]
    y0, y1 = ref_years[0], ref_years[-1]
    return m.Benchmark(
        reference=f"TEDS-D {y0}-{y1} ({n_ref:,} discharges)" if y0 != y1 else f"TEDS-D {y0} ({n_ref:,} discharges)",
        years=ref_years, n_reference=n_ref, n_program=int(n_prog), rows=rows, models=models,
        calibration=calib, overlap=overlap, covariates=uses, not_applicable=na,
        unmatched_levels={k: disclosure.shown_count(v, r) for k, v in unmatched.items()}, shrink=shrink,
        method=METHOD + (SHRINK_METHOD if shrink else ""), notes=notes,
    )


REFERENCE_ALIAS = "levelcare_reference"


@contextmanager
def reference_table(con: Any, path: Any, timeout_seconds: float = 30.0) -> Iterator[str]:
    """The mart to read the TEDS-D rows from: this warehouse's (``path`` None), or the mart of the
    reference warehouse at ``path`` (TEDS-D rows loaded with ``levelcare --warehouse PATH
    ingest``), attached read-only for the block, its marts built first when they are missing or
    older than its TEDS-D rows. The program's warehouse then holds no national row, so its own
    rates stay its own."""
    if path is None:
        yield "mart_episodes"
        return
    from pathlib import Path

    from pipelines import marts
    from pipelines.warehouse import connect

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--reference-warehouse {path}: no such warehouse (load TEDS-D into it first: "
                        f"levelcare --warehouse {path} ingest tedsd_puf_2019.csv)")
    with connect(path, read_only=True, timeout_seconds=timeout_seconds) as ref:
        fresh = _marts_fresh(ref)
    if not fresh:
        with connect(path, timeout_seconds=timeout_seconds) as ref:
            marts.build(ref)
    con.execute(f"attach '{_sql_text(str(path.resolve()))}' as {REFERENCE_ALIAS} (read_only)")
    try:
        yield f"{REFERENCE_ALIAS}.main.mart_episodes"
    finally:
        con.execute(f"detach database if exists {REFERENCE_ALIAS}")


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def _marts_fresh(con: Any) -> bool:
    tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    if not {"mart_episodes", "raw_teds_d"} <= tables:
        return False
    raw = con.execute("select count(*) from raw_teds_d").fetchone()[0]
    built = con.execute("select count(*) from mart_episodes where source = 'teds-d'").fetchone()[0]
    return raw == built


def _reference_where(years: tuple[int, int] | None) -> tuple[str, list[object]]:
    marks = ", ".join("?" for _ in SETTINGS)
    sql = f"source = 'teds-d' and level_of_care in ({marks})"
    params: list[object] = list(SETTINGS)
    if years:
        sql += " and discharge_year between ? and ?"
        params += [int(years[0]), int(years[1])]
    return sql, params


def _reference_span(con: Any, table: str, where: str, params: list[object]) -> tuple[int, list[int]]:
    """The reference rows and the discharge years they hold."""
    years = con.execute(f"select discharge_year, count(*) from {table} where {where} group by 1 order by 1",
                        params).fetchall()
    return sum(int(n) for _, n in years), [int(y) for y, _ in years if y is not None]


def _known(c: str) -> str:
    return f"count(*) filter (where \"{c}\" is not null and cast(\"{c}\" as varchar) not in ('unknown'))"


def _covariates(con: Any, table: str, ref_where: str, ref_params: list[object], prog_where: str,
                prog_params: Sequence[object]) -> tuple[list[str], list[dict[str, Any]]]:
    known = ", ".join(_known(c) for c in COVARIATES)
    *ref, n_ref = con.execute(f"select {known}, count(*) from {table} where {ref_where}", ref_params).fetchone()
    *prog, n_prog = con.execute(f"select {known}, count(*) from mart_episodes where {prog_where}",
                                list(prog_params)).fetchone()
    used, uses = [], []
    for c, a, b in zip(COVARIATES, ref, prog, strict=True):
        shares = {"missing_share_program": 1 - b / n_prog, "missing_share_reference": 1 - a / n_ref}
        if not b:
            uses.append({"covariate": c, "used": False, **shares,
                         "reason": "your records carry no value for it: left out of the model, so the "
                                   "expected counts do not adjust for it"})
        elif not a:
            uses.append({"covariate": c, "used": False, **shares,
                         "reason": "the TEDS-D rows of these years carry no value for it: left out of the model"})
        else:
            used.append(c)
            uses.append({"covariate": c, "used": True, "reason": None, **shares})
    return used, uses


def _patterns(con: Any, table: str, definitions: Sequence[Any], covariates: Sequence[str], where: str,
              params: list[object], *, reference: bool) -> Any:
    """Covariate patterns (polars): per setting (and hold-out flag for the reference rows; site and
    quarter for the program's), the pattern's rows ``n`` and, per definition, its successes
    ``s_<id>`` and rows in the definition's population ``t_<id>``."""
    from pipelines.definitions.evaluate import definition_sql

    sql_params: list[object] = []
    ys = [f"{definition_sql(d, sql_params)} as \"y_{d.id}\"" for d in definitions]
    cov = ", ".join(f"coalesce(cast(\"{c}\" as varchar), '{MISSING}') as \"{c}\"" for c in covariates)
    keys = (f"(hash(episode_key) % {HOLDOUT}) = 0 as holdout" if reference
            else "site_id, discharge_quarter")
    sums = ", ".join(f"sum(\"y_{d.id}\")::bigint as \"s_{d.id}\", count(\"y_{d.id}\")::bigint as \"t_{d.id}\""
                     for d in definitions)
    sql = (f"with src as (select * replace (cast(null as integer) as los_days) from {table} "
           f"where {where}), scored as (select level_of_care, {cov}, {keys}, {', '.join(ys)} from src) "
           f"select level_of_care, {', '.join(f'{chr(34)}{c}{chr(34)}' for c in covariates)}, "
           f"{'holdout' if reference else 'site_id, discharge_quarter'}, count(*)::bigint as n, {sums} "
           # ordered: the same data give the same sums, fits and numbers to the last digit on every run
           f"from scored group by all order by all")
    frame = con.sql(sql, params=[*params, *sql_params]).pl()
    import polars as pl

    # categories, not strings: a few bytes a pattern for each covariate
    return frame.with_columns([pl.col(c).cast(pl.Categorical) for c in covariates])


def _group_codes(prog: Any, groupings: Sequence[str]) -> tuple[dict[str, list[str]], dict[str, np.ndarray]]:
    """Each grouping's group names and the group code of every program pattern (-1: none)."""
    import polars as pl

    keys, codes = {}, {}
    for g in groupings:
        if g == "all":
            keys[g], codes[g] = ["all"], np.zeros(prog.height, dtype=np.int64)
            continue
        col = prog.get_column(GROUP_COLUMN[g]).cast(pl.Utf8)
        names = sorted(col.drop_nulls().unique().to_list())
        keys[g] = names
        codes[g] = col.replace_strict({k: i for i, k in enumerate(names)}, default=-1,
                                      return_dtype=pl.Int64).to_numpy()
    return keys, codes


def _level_codes(frame: Any, covariates: Sequence[str], levels: dict[str, list[str]]) -> list[np.ndarray]:
    """Each covariate's code per pattern: 0 for the reference level (the first of ``levels``; a
    rare or unseen value joins it), k for the k-th other level."""
    import polars as pl

    return [frame.get_column(c).cast(pl.Utf8).replace_strict(
        {v: i + 1 for i, v in enumerate(levels[c][1:])}, default=0, return_dtype=pl.Int32).to_numpy()
        for c in covariates]


def _columns(covariates: Sequence[str], levels: dict[str, list[str]]) -> list[list[int]]:
    """Each covariate's design column per code (-1: the reference level, no column); column 0
    is the intercept."""
    out, col = [], 1
    for c in covariates:
        k = len(levels[c]) - 1
        out.append([-1, *range(col, col + k)])
        col += k
    return out


def _design(frame: Any, covariates: Sequence[str], levels: dict[str, list[str]]) -> np.ndarray:
    """The main-effects design of ``frame``'s patterns as float64 (for the sparse products of
    the scoring)."""
    columns = _columns(covariates, levels)
    X = np.zeros((frame.height, 1 + sum(len(c) - 1 for c in columns)))
    X[:, 0] = 1.0
    rows = np.arange(frame.height)
    for codes, cols in zip(_level_codes(frame, covariates, levels), columns, strict=True):
        hit = codes > 0
        X[rows[hit], np.asarray(cols)[codes[hit]]] = 1.0
    return X


def _compact_design(frame: Any, covariates: Sequence[str], levels: dict[str, list[str]]) -> Any:
    """The same design as category codes (:class:`~pipelines.stats.compact.CompactMatrix`):
    the fits' X'WX comes from sums of the weights by code, not from the rows."""
    from pipelines.stats.compact import Codes, CompactMatrix

    columns = _columns(covariates, levels)
    p = 1 + sum(len(c) - 1 for c in columns)
    return CompactMatrix(frame.height, p, 0, Codes.packed(_level_codes(frame, covariates, levels), columns),
                         np.empty((frame.height, 0), order="F"), np.empty(0, dtype=np.int64))


class _Accumulator:
    """What each setting contributes to each definition's groups: sums per group, and the
    patterns' linear predictors and counts (the offsets are solved over all settings of a group)."""

    def __init__(self, ids: Sequence[str], groupings: Sequence[str], keys: dict[str, list[str]], rule: Any) -> None:
        self.groupings, self.keys, self.rule = list(groupings), keys, rule
        self.sums = {(d, g): np.zeros((5, len(keys[g]))) for d in ids for g in groupings}  # n, O, E, var, nat
        self.parts: dict[str, list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]] = {d: [] for d in ids}
        self.overlaps = {d: [0, 0, 0] for d in ids}  # episodes, absent, rare

    def add(self, def_id: str, eta: np.ndarray, t: np.ndarray, codes: dict[str, np.ndarray],
            sums: dict[str, Any], rate: float) -> None:
        for g, s in sums.items():
            k = len(self.keys[g])  # (the last group of ``sums`` may be the patterns with no group)
            self.sums[(def_id, g)] += np.vstack([s.n, s.observed, s.expected, s.var_expected, s.n * rate])[:, :k]
        self.parts[def_id].append((eta, t, codes))

    def episodes(self, n: int) -> str:
        """A count of episodes for a note, as the disclosure rule allows it to be written."""
        from pipelines import disclosure

        shown = disclosure.shown_count(n, self.rule)
        return f"{self.rule.marker} episodes (a small number)" if shown is None else f"{shown:,} episodes"

    def overlap(self, def_id: str) -> dict[str, Any]:
        n, absent, rare = self.overlaps[def_id]
        share = (absent + rare) / n if n else None
        warning = None
        if share is not None and share > OVERLAP_WARNING:
            warning = (f"{share:.0%} of your episodes have a covariate value that is rare or absent among the "
                       "national rows of their setting, or a risk outside the national range: their expected "
                       "counts rest on extrapolation")
        return {"definition_id": def_id, "n": n, "absent": absent, "rare": rare, "share": share, "warning": warning}

    def rows(self, def_id: str, shrink: bool) -> list[dict[str, Any]]:
        from pipelines.stats import benchmark as bm

        parts = self.parts[def_id]
        if not parts:
            return []
        eta = np.concatenate([p[0] for p in parts])
        t = np.concatenate([p[1] for p in parts]).astype(float)
        out = []
        for g in self.groupings:
            code = np.concatenate([p[2][g] for p in parts])
            n, o, e, v, nat = self.sums[(def_id, g)]
            order = np.argsort(code, kind="stable")
            bounds = np.searchsorted(code[order], np.arange(len(self.keys[g]) + 1))
            groups = []
            for k, key in enumerate(self.keys[g]):
                if n[k] <= 0:
                    continue
                idx = order[bounds[k]:bounds[k + 1]]
                groups.append((key, bm.Scored(n=int(n[k]), observed=int(np.rint(o[k])), expected=float(e[k]),
                                              var_expected=float(v[k]), etas=eta[idx], counts=t[idx]), nat[k] / n[k]))
            shrunk = shrink and g != "all" and len(groups) > 1
            ratios = bm.shrink([s for _, s, _ in groups]) if shrunk else [bm.oe_ratio(s) for _, s, _ in groups]
            for (key, s, rate), ratio in zip(groups, ratios, strict=True):
                out.append({
                    "definition_id": def_id, "group_by": g, "group": key, "n": s.n, "observed": s.observed,
                    "expected": s.expected, "expected_se": s.var_expected ** 0.5, "oe_ratio": ratio.oe, "oe_ci_low": ratio.low, "oe_ci_high": ratio.high,
                    "risk_standardized_rate": ratio.oe * rate, "rsr_ci_low": ratio.low * rate,
                    "rsr_ci_high": ratio.high * rate, "national_rate": rate,
                    "verdict": bm.verdict(ratio.low, ratio.high), "shrunk": shrunk, "suppression": None,
                    "note": None,
                })
        return out


def _setting(setting: str, ids: Sequence[str], ref: Any, prog: Any, codes: dict[str, np.ndarray],
             covariates: Sequence[str], acc: _Accumulator, models: list, calib: list, notes: list) -> None:
    """Fit the setting's national model for each definition, measure it on the held-out rows and
    score the program's patterns of the setting into ``acc``."""
    import polars as pl

    from pipelines.stats import benchmark as bm

    here = ref.get_column("level_of_care") == setting
    train = ref.filter(here & ~ref.get_column("holdout"))
    hold = ref.filter(here & ref.get_column("holdout"))
    mask = (prog.get_column("level_of_care") == setting).to_numpy()
    mine = prog.filter(pl.Series(mask))
    if train.height == 0:
        for d in ids:
            t = int(mine.get_column(f"t_{d}").sum()) if mine.height else 0
            acc.overlaps[d][0] += t
            acc.overlaps[d][1] += t
            if t:
                notes.append(f"{d}: {setting}: no TEDS-D rows of this setting; {acc.episodes(t)} not scored")
        return
    levels, counts = {}, {}
    for c in covariates:
        tally = train.group_by(c).agg(pl.col("n").sum()).with_columns(pl.col(c).cast(pl.Utf8)).sort(
            ["n", c], descending=[True, False])
        counts[c] = dict(zip(tally.get_column(c).to_list(), tally.get_column("n").to_list(), strict=True))
        levels[c] = [v for v, n in counts[c].items() if n >= RARE] or [tally.get_column(c)[0]]
    X = _compact_design(train, covariates, levels)
    Xh = _compact_design(hold, covariates, levels) if hold.height else None
    Xp = _design(mine, covariates, levels) if mine.height else None
    absent, rare = np.zeros(mine.height, dtype=bool), np.zeros(mine.height, dtype=bool)
    for c in covariates:
        n_level = mine.get_column(c).cast(pl.Utf8).replace_strict(
            counts[c], default=0, return_dtype=pl.Int64).to_numpy()
        absent |= n_level == 0
        rare |= (n_level > 0) & (n_level < RARE)
    sub_codes = {g: c[mask] for g, c in codes.items()}
    all_rows = ref.filter(here)
    for d in ids:
        s_col, t_col = f"s_{d}", f"t_{d}"
        t, s = train.get_column(t_col).to_numpy(), train.get_column(s_col).to_numpy()
        use = t > 0
        if not use.any():
            continue
        rate = float(all_rows.get_column(s_col).sum() / max(all_rows.get_column(t_col).sum(), 1))
        cols = _identified(X[use], s[use], t[use])
        Xd = X[use] if cols is None else X[use][:, cols]
        if cols is not None and len(cols) == 1 and s[use].sum() in (0, t[use].sum()):
            fit, note = None, (f"every national row of this setting {'fails' if s[use].sum() == 0 else 'succeeds'}: "
                               "no case-mix model, nothing to expect")
        else:
            fit = bm.fit_reference(Xd, s[use], t[use])
            note = fit.note
            if cols is not None:
                dropped = X.shape[1] - len(cols)
                merged = f"{dropped} covariate level(s) whose national rows all fail or all succeed joined the reference level"
                note = "; ".join(x for x in (note, merged) if x)
        model = {"definition_id": d, "level_of_care": setting, "n_fit": int(t.sum()),
                 "n_holdout": int(hold.get_column(t_col).sum()) if hold.height else 0,
                 "national_rate": rate, "terms": Xd.shape[1], "converged": bool(fit and fit.converged),
                 "c_statistic": None, "calibration_in_the_large": None, "calibration_intercept": None,
                 "calibration_slope": None, "note": note}
        if fit is not None and fit.converged and Xh is not None:
            th, sh = hold.get_column(t_col).to_numpy(), hold.get_column(s_col).to_numpy()
            keep = th > 0
            if keep.any():
                eta_h = (Xh[keep] if cols is None else Xh[keep][:, cols]) @ fit.params
                cal = bm.calibration(eta_h, sh[keep], th[keep])
                model.update(c_statistic=bm.c_statistic(1 / (1 + np.exp(-eta_h)), sh[keep], th[keep] - sh[keep]),
                             calibration_in_the_large=cal.in_the_large, calibration_intercept=cal.intercept,
                             calibration_slope=cal.slope)
                calib += [{"definition_id": d, "level_of_care": setting, "decile": b, "n": n,
                           "predicted": pr, "observed": ob} for b, n, pr, ob in cal.bins]
        models.append(model)
        if Xp is None:
            continue
        tp, sp = mine.get_column(t_col).to_numpy(), mine.get_column(s_col).to_numpy()
        scored = tp > 0
        if fit is None or not fit.converged:
            why = note if fit is None else f"the national model did not converge ({note})"
            if tp.sum():
                notes.append(f"{d}: {setting}: {why}; {acc.episodes(int(tp.sum()))} not scored")
            continue
        lo, hi = _weighted_quantiles(Xd @ fit.params, t[use], (0.005, 0.995))
        here_codes = {g: c[scored] for g, c in sub_codes.items()}
        groupings = {g: (c, len(acc.keys[g])) for g, c in here_codes.items()}
        Xs = Xp[scored] if cols is None else Xp[scored][:, cols]
        eta, sums = bm.score_groups(Xs, tp[scored], sp[scored], fit, _valid(groupings))
        outside = (eta < lo) | (eta > hi)
        acc.overlaps[d][0] += int(tp.sum())
        acc.overlaps[d][1] += int(tp[scored][absent[scored]].sum())
        acc.overlaps[d][2] += int(tp[scored][(rare[scored] | outside) & ~absent[scored]].sum())
        acc.add(d, eta, tp[scored], here_codes, sums, rate)


def _identified(X: Any, s: np.ndarray, t: np.ndarray) -> np.ndarray | None:
    """The design's columns to keep (None: all): a level whose national rows all fail or all
    succeed has no finite coefficient (separation) and joins the reference level; the intercept
    stays."""
    sc, tc = s @ X, t @ X
    keep = (sc > 0) & (sc < tc)
    keep[0] = True
    return None if keep.all() else np.flatnonzero(keep)


def _valid(groupings: dict[str, tuple[np.ndarray, int]]) -> dict[str, tuple[np.ndarray, int]]:
    """A pattern with no group (a null site or quarter) goes to an extra last group, not counted."""
    return {g: (np.where(c < 0, k, c), k + 1) for g, (c, k) in groupings.items()}


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    order = np.argsort(x, kind="stable")
    cum = np.cumsum(w[order]) / w.sum()
    return [float(x[order][min(np.searchsorted(cum, q), len(x) - 1)]) for q in qs]


STATISTICS = ("expected", "expected_se", "national_rate", "oe_ratio", "oe_ci_low", "oe_ci_high", "risk_standardized_rate", "rsr_ci_low",
              "rsr_ci_high", "verdict")


def _disclose(rows: list[dict[str, Any]], groupings: Sequence[str], rule: Any) -> list[dict[str, Any]]:
    """Hide a group's observed count (and everything computed from it) when it, or the group's
    failures, is a small count, or could be worked out from the other groups and the total;
    hide a whole group of too few episodes."""
    from pipelines import disclosure

    out = [dict(x) for x in rows]
    for def_id in dict.fromkeys(x["definition_id"] for x in out):
        mine = [x for x in out if x["definition_id"] == def_id]
        total = next((i for i, x in enumerate(mine) if x["group_by"] == "all"), None)
        if total is None:
            continue
        values = [x["observed"] for x in mine] + [x["n"] - x["observed"] for x in mine]
        k = len(mine)
        relations = []
        for g in groupings[1:]:
            members = [i for i, x in enumerate(mine) if x["group_by"] == g]
            if members:
                relations.append((members, total, None))
                relations.append(([k + i for i in members], k + total, None))
        shown, reasons = disclosure.protect_cells(values, relations, rule)
        for i, x in enumerate(mine):
            reason = reasons[i] or reasons[k + i]
            if not disclosure.statistic_allowed(x["n"], rule):
                reason = reason or "small"
                x["n"] = disclosure.shown_count(x["n"], rule)
            if reason:
                x.update({c: None for c in STATISTICS}, observed=None, suppression=reason)
            else:
                x["observed"] = shown[i]
    return out


CSV_COLUMNS = ["definition_id", "group_by", "group", "n", "observed", "expected", "oe_ratio", "oe_ci_low",
               "oe_ci_high", "risk_standardized_rate", "rsr_ci_low", "rsr_ci_high", "national_rate", "verdict",
               "expected_se", "shrunk", "suppression", "note"]
MODEL_COLUMNS = ["definition_id", "level_of_care", "n_fit", "n_holdout", "national_rate", "terms", "converged",
                 "c_statistic", "calibration_in_the_large", "calibration_intercept", "calibration_slope", "note"]
CALIBRATION_COLUMNS = ["definition_id", "level_of_care", "decile", "n", "predicted", "observed"]


def write_files(bench: Any, out_dir: Any, rule: str) -> list[Any]:
    """benchmark.csv, benchmark_models.csv, benchmark_calibration.csv and benchmark.json, each
    through the last disclosure guard."""
    import json
    from pathlib import Path

    from pipelines import disclosure
    from pipelines.writers import write_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = bench.model_dump(mode="json")
    files = []
    for name, key, columns in (("benchmark.csv", "rows", CSV_COLUMNS),
                               ("benchmark_models.csv", "models", MODEL_COLUMNS),
                               ("benchmark_calibration.csv", "calibration", CALIBRATION_COLUMNS)):
        rows = [{**x, "shrunk": str(x["shrunk"]).lower()} if "shrunk" in x else x for x in data[key]]
        disclosure.check_artifact(rows, rule=rule, name=name)
        write_csv(out / name, rows, columns)
        files.append(out / name)
    path = out / "benchmark.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    files.append(path)
    return files


def configure_benchmark(parser: Any) -> None:
    from pathlib import Path

    parser.add_argument("--out", metavar="DIR", required=True, type=Path, help="output folder")
    parser.add_argument("--definitions", metavar="IDS", default=",".join(DEFAULT_DEFINITIONS),
                        help="comma-separated definition ids (default: " + ",".join(DEFAULT_DEFINITIONS) + ")")
    parser.add_argument("--definitions-dir", metavar="DIR", help="folder of your own definition files")
    parser.add_argument("--reference", choices=("teds-d",), default="teds-d",
                        help="the national reference: TEDS-D rows loaded into the warehouse")
    parser.add_argument("--reference-warehouse", metavar="PATH",
                        help="a warehouse holding the TEDS-D rows (default: the TEDS-D rows of --warehouse); "
                             "keeping them apart keeps your own rates free of national rows")
    parser.add_argument("--years", metavar="FROM..TO", help="TEDS-D discharge years, e.g. 2017..2022 (default: all loaded)")
    parser.add_argument("--by", metavar="GROUPS", default="site",
                        help="comma-separated: site, level_of_care, quarter (default site; all and "
                             "level_of_care are always written)")
    from pipelines.analysis.command import add_period_arguments

    add_period_arguments(parser)
    parser.add_argument("--shrink", action="store_true",
                        help="shrink each group's O/E toward the national rate (empirical Bayes), as CMS does")
    parser.add_argument("--disclosure", choices=("cms", "opensafely"), default="cms",
                        help="small-cell rule (default cms: no count of 1-10)")


def parse_years(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    parts = text.split("..")
    try:
        years = [int(p) for p in parts]
    except ValueError:
        raise UserError(f"--years {text}: write FROM..TO with four-digit years, e.g. 2017..2022") from None
    if len(years) == 1:
        years = years * 2
    if len(years) != 2 or years[0] > years[1] or not all(1990 <= y <= 2100 for y in years):
        raise UserError(f"--years {text}: write FROM..TO with FROM <= TO, e.g. 2017..2022")
    return years[0], years[1]


def run_benchmark(args: Any, settings: Any) -> int:
    from pathlib import Path

    from pipelines import marts
    from pipelines.definitions import registry
    from pipelines.results import warehouse_sections as ws
    from pipelines.results.periods import parse_period
    from pipelines.warehouse import connect

    years = parse_years(args.years)
    by = [g.strip() for g in args.by.split(",") if g.strip()]
    ids = [x.strip() for x in args.definitions.split(",") if x.strip()]
    reg = registry.load_registry(args.definitions_dir or settings.definitions_dir)
    definitions = registry.select(reg, ids)
    period = parse_period(args.period, args.quarter)
    if not Path(settings.warehouse).exists():
        raise UserError(f"{settings.warehouse}: no warehouse here yet (run `levelcare ingest` first)")
    with connect(settings.warehouse, timeout_seconds=settings.lock_timeout_seconds) as con:
        marts.build(con)
        where, params = ws.period_where(period)
        with reference_table(con, args.reference_warehouse, settings.lock_timeout_seconds) as table:
            bench = benchmark(con, definitions, years=years, by=by, shrink=args.shrink, where=where,
                              where_params=params, rule=args.disclosure, reference_table=table)
    files = write_files(bench, args.out, args.disclosure)
    print(f"benchmark against {bench.reference}: {bench.n_program:,} of your episodes")
    for row in bench.rows:
        if row.group_by == "all":
            text = ("hidden (small numbers)" if row.oe_ratio is None else
                    f"O/E {row.oe_ratio:.2f} ({row.oe_ci_low:.2f} to {row.oe_ci_high:.2f}), {row.verdict}")
            print(f"  {row.definition_id}: {text}")
            for verdict in ("better than expected", "worse than expected"):
                sites = [x.group for x in bench.rows if x.definition_id == row.definition_id
                         and x.group_by == "site" and x.verdict == verdict]
                if sites:
                    print(f"    sites {verdict}: {', '.join(sites)}")
    for x in bench.not_applicable:
        print(f"  {x.id}: {x.note}")
    for c in bench.covariates:
        if not c.used:
            print(f"  covariate {c.covariate} not used: {c.reason}")
    for o in bench.overlap:
        if o.warning:
            print(f"  warning: {o.definition_id}: {o.warning}")
    for level, n in bench.unmatched_levels.items():
        print(f"  {level}: {'1-10' if n is None else f'{n:,}'} episodes not scored (no TEDS-D setting)")
    for f in files:
        print(f"  {f}")
    return 0
