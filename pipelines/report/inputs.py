"""What the report reads: the latest ``results.json`` and aggregates from the warehouse.

Only aggregates leave SQL here (counts by group, means); no row of ``mart_episodes`` is
fetched. Numbers read here are *not yet* safe to publish: :mod:`pipelines.report.tables`
passes every one through :mod:`pipelines.disclosure`.

results.json keys used (docs/interfaces.md), all optional except ``rates``:

* ``rates``: rows of rates.csv. ``group_by`` names one or more comma-separated dimensions
  (``level_group``, ``level_of_care``, ``site``, ``quarter``; mart column names work too); a multi-dimension
  row's ``group`` joins its values with ``|`` in the same order (``iop|2026Q3``).
* ``comparisons``: ``definition_id, arm, reference, method`` (``crude`` or an adjusted method),
  ``estimand`` (``rd`` is plotted; ``rr`` rows stay in comparisons.csv), ``missing_data``
  (None, ``itt``, ``cc``, ...), ``estimate, ci_low, ci_high``, ``n_arm, n_reference``.
* ``balance``: ``population, method, covariate, smd_before, smd_after`` (first population,
  preferred weighting method shown).
* ``diagnostics``: ``data_end_quarter``; ``adjusted`` (rows with equipoise, ESS, share
  truncated, max |SMD| after); ``propensity``: ``bin_edges`` and ``counts`` {arm: [per bin]}.
* ``survival.readmission``: ``groups`` {group: {time, survival, ci_low, ci_high, at_risk}}
  (``at_risk`` None when the analysis already reduced the curve to disclosed grid points),
  ``risk_table`` {times, at_risk: {group: [...]}}, ``cox``; or ``survival.not_available``.
* ``noninferiority``: ``definition_id, arm, reference, method, margin_pp, estimate, ci95_low,
  ci95_high, conclusion``.
* ``modification``: subgroup effects (``definition_id, modifier, level, estimate, ci_low,
  ci_high, interaction_p_value``).
* ``validation``: {``checks``: [{check_id, category, status, failing_rows}], ``data_docs``}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import UserError

RESULTS_FILE = "results.json"
FOLLOWUP_WINDOWS = (30, 90, 180, 365)
# Baseline covariates of Table 1, in display order (those missing from the mart are skipped).
CATEGORICAL = (
    "age_band", "sex", "race", "ethnicity", "primary_substance", "co_occurring_mh",
    "has_prior_episodes", "employed_admit", "homeless_admit", "payer", "referral_source", "mat",
)
CONTINUOUS = ("prior_episodes", "use_days_admit", "phq9_admit", "gad7_admit")


def find_results(out_dir: Path | None, results_dir: Path | None) -> Path:
    """``results.json`` in ``out_dir`` (where ``levelcare analyze --out`` wrote it), else in
    ``results_dir``."""
    tried = []
    for folder in (out_dir, results_dir):
        if folder is None:
            continue
        path = Path(folder) / RESULTS_FILE
        tried.append(str(path))
        if path.is_file():
            return path
    raise UserError(
        f"no {RESULTS_FILE} found (looked at {', '.join(tried) or 'nothing'}); run "
        "`levelcare analyze --out DIR` first or pass --results DIR"
    )


def load_results(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON (line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("rates", []), list):
        raise UserError(f"{path}: not a levelcare results file (no list of rates)")
    return data


@dataclass
class WarehouseAggregates:
    """Counts and means from the warehouse, before disclosure control."""

    ledger: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    cohort: list[dict[str, Any]] = field(default_factory=list)  # per level_group
    categorical: list[dict[str, Any]] = field(default_factory=list)  # covariate, category, level_group, n
    continuous: list[dict[str, Any]] = field(default_factory=list)  # covariate, level_group, n, mean, sd
    followup: list[dict[str, Any]] = field(default_factory=list)  # rates-like rows
    stepdown: list[dict[str, Any]] = field(default_factory=list)  # rates-like rows
    quarters: list[str] = field(default_factory=list)  # discharge quarters in the mart
    sources: list[str] = field(default_factory=list)
    sites: int = 0  # distinct programs in the period (programs, not people)
    missing: dict[str, str] = field(default_factory=dict)  # part -> why it is not available


def _with_rates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rate and Wilson interval for count rows computed here (follow-up, step-down)."""
    from pipelines.disclosure import wilson

    for row in rows:
        k, n = row["numerator"], row["denominator"]
        lo, hi = wilson(k, n) if n else (None, None)
        row.update(rate=k / n if n else None, ci_low=lo, ci_high=hi, ci_method="wilson", suppressed=False)
    return rows


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}


def _columns(con, table: str) -> set[str]:
    rows = con.execute(
        "select column_name from information_schema.columns where table_name = ?", [table]
    ).fetchall()
    return {r[0] for r in rows}


def _dicts(cur) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def read_warehouse(warehouse: Path, quarters: list[str] | None = None) -> WarehouseAggregates:
    """Aggregates for the report; ``quarters`` limits the cohort to those discharge quarters."""
    from pipelines.warehouse import connect

    agg = WarehouseAggregates()
    if not Path(warehouse).exists():
        agg.missing["warehouse"] = f"no warehouse at {warehouse}"
        return agg
    with connect(Path(warehouse), read_only=True) as con:
        have = _tables(con)
        if "ingest_ledger" in have:
            agg.ledger = _dicts(con.execute(
                "select file_sha256, file_name, kind, status, rows_read, rows_loaded, rows_quarantined, "
                "contract_version, cast(ingested_at as date) as ingested_on "
                "from ingest_ledger order by ingested_at, file_name"
            ))
        else:
            agg.missing["ledger"] = "the warehouse has no ingest_ledger table yet"
        if "ingest_quarantine" in have:
            # grouped by check: never a row number, never a value
            agg.quarantine = _dicts(con.execute(
                "select check_id, field, min(reason) as reason, count(*) as n_rows, "
                "count(distinct file_sha256) as files from ingest_quarantine "
                "group by check_id, field order by n_rows desc, check_id, field"
            ))
        if "mart_episodes" not in have:
            agg.missing["mart"] = "the warehouse has no mart_episodes table yet"
            return agg
        _read_mart(con, agg, quarters)
    return agg


def _read_mart(con, agg: WarehouseAggregates, quarters: list[str] | None) -> None:
    cols = _columns(con, "mart_episodes")
    agg.quarters = [r[0] for r in con.execute(
        "select distinct discharge_quarter from mart_episodes where discharge_quarter is not null order by 1"
    ).fetchall()]
    where, params = "where level_group is not null", []
    if quarters:
        where += f" and discharge_quarter in ({', '.join('?' * len(quarters))})"
        params = list(quarters)
    base = f"from mart_episodes {where}"
    agg.sources = [r[0] for r in con.execute(f"select distinct source {base} order by 1", params).fetchall()]
    agg.sites = con.execute(f"select count(distinct site_id) {base}", params).fetchone()[0]
    persons = "count(distinct person_id)" if "person_id" in cols else "null"
    agg.cohort = _dicts(con.execute(
        f"select level_group, count(*) as episodes, {persons} as persons, "
        f"count(distinct site_id) as sites {base} group by level_group order by level_group", params
    ))
    for cov in CATEGORICAL:
        if cov not in cols:
            continue
        rows = _dicts(con.execute(
            f'select coalesce(cast("{cov}" as varchar), \'missing\') as category, level_group, '
            f"count(*) as n {base} group by 1, 2 order by 1, 2", params
        ))
        agg.categorical += [{"covariate": cov, **row} for row in rows]
    for cov in CONTINUOUS:
        if cov not in cols:
            continue
        rows = _dicts(con.execute(
            f'select level_group, count("{cov}") as n, avg("{cov}") as mean, stddev_samp("{cov}") as sd '
            f"{base} group by 1 order by 1", params
        ))
        agg.continuous += [{"covariate": cov, **row} for row in rows]
    _followup(con, agg, cols, base, params)
    _stepdown(con, agg, cols, base, params)


def _followup(con, agg, cols, base, params) -> None:
    """Follow-up response per window: reached / due (discharged at least w days before the
    latest discharge in the data), native episodes only (TEDS-D has no follow-ups)."""
    windows = [w for w in FOLLOWUP_WINDOWS if f"fu{w}_reached" in cols]
    if not windows:
        agg.missing["followup"] = "mart_episodes has no follow-up columns"
        return
    if "native" not in agg.sources:
        agg.missing["followup"] = "only TEDS-D data, which has no follow-ups"
        return
    end = con.execute(f"select max(discharge_date) {base}", params).fetchone()[0]
    for w in windows:
        rows = _dicts(con.execute(
            f"select level_group as \"group\", count(*) as denominator, "
            f"count(*) filter (where fu{w}_reached) as numerator {base} and source = 'native' "
            f"and discharge_date + {int(w)} <= ? group by 1 order by 1", [*params, end]
        ))
        for row in _with_rates(rows):
            agg.followup.append({
                "definition_id": f"followup_response_{w}d", "definition_version": "1",
                "group_by": "level_group", "window_days": w, **row,
            })


def _stepdown(con, agg, cols, base, params) -> None:
    if "stepdown_iop_14d" not in cols:
        agg.missing["stepdown"] = "mart_episodes has no stepdown_iop_14d column"
        return
    for by in ("discharge_quarter", "level_of_care"):
        rows = _dicts(con.execute(
            f"select {by} as \"group\", count(*) as denominator, "
            f"count(*) filter (where stepdown_iop_14d) as numerator {base} "
            f"and level_group = 'residential' group by 1 order by 1", params
        ))
        agg.stepdown += [{"definition_id": "stepdown_iop_14d", "definition_version": "1",
                          "group_by": by, **row} for row in _with_rates(rows)]
    if not agg.stepdown:
        agg.missing["stepdown"] = "no residential discharges in the period"


INSTRUMENTS = ("phq9", "gad7")


def read_instruments(warehouse: Path, quarters: list[str] | None = None) -> list[dict[str, Any]]:
    """Standardized instruments by level of care: people with both an admission and a discharge
    score, and the two means (Joint Commission CTS.03.01.09 EP3: aggregated for the population)."""
    from pipelines.warehouse import connect

    if not Path(warehouse).exists():
        return []
    out: list[dict[str, Any]] = []
    with connect(Path(warehouse), read_only=True) as con:
        if "mart_episodes" not in _tables(con):
            return []
        cols = _columns(con, "mart_episodes")
        where, params = "where level_group is not null", []
        if quarters:
            where += f" and discharge_quarter in ({', '.join('?' * len(quarters))})"
            params = list(quarters)
        for inst in INSTRUMENTS:
            a, d = f"{inst}_admit", f"{inst}_discharge"
            if a not in cols or d not in cols:
                continue
            rows = _dicts(con.execute(
                f'select level_group, count(*) as n, avg("{a}") as mean_admit, avg("{d}") as mean_discharge '
                f'from mart_episodes {where} and "{a}" is not null and "{d}" is not null group by 1 order by 1',
                params,
            ))
            out += [{"instrument": inst, **row} for row in rows]
    return out
