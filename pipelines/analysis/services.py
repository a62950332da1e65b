"""What programs are asked about the care itself: dose, length of stay and cost.

Aggregates of ``mart_episodes`` for the reporting period, disclosed here (``analyze`` calls
:func:`service_tables`; the adjusted analyses — cost-effectiveness, dose-response, family
involvement — run with the comparisons, :mod:`pipelines.analysis.comparative`):

* ``dose``: scheduled hours per week of IOP and PHP episodes against the ASAM band of the
  level (IOP, level 2.1: 9–19 hours; PHP, level 2.5: 20 or more), overall, by site and by
  quarter — the share below, within and above the band with Wilson intervals, and the median;
* ``sessions``: sessions attended per week of stay (the records carry attended sessions and
  scheduled hours, not scheduled sessions);
* ``length_of_stay``: IOP length of stay against the 6–12 week range (42–84 days), the same
  shape as ``dose``; ``completion_by_los``: IOP completion by TEDS length-of-stay band, for
  native and TEDS-D episodes apart;
* ``costs``: mean cost per episode by level of care (t interval: the mean of a skewed cost is
  still normal in large samples; with few episodes the interval is too narrow and the note
  says so), and ``cost_per_success``: per definition and level, the total cost of the
  episodes in its population divided by its successes.

Every count passes :func:`pipelines.disclosure.protect_cells` with the totals it adds up to
(site and quarter rows add up to the overall row; bands add up to the episodes counted), and
a rate, median or mean is shown only over more people than the rule's floor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from pipelines import disclosure

if TYPE_CHECKING:
    import duckdb

    from pipelines.stats.results import Design

# level -> (lower, upper or None, label): ASAM Criteria 3rd ed., levels 2.1 and 2.5; IOP's lower
# bound is 6 hours for adolescents (ADOLESCENT_LOWER; data_contracts/discharges.yaml level_meanings)
DOSE_BANDS = {"iop": (9.0, 19.0, "ASAM 2.1: 9-19 hours a week (adolescents 6-19)"),
              "php": (20.0, None, "ASAM 2.5: 20 or more hours a week")}
ADOLESCENT_BANDS = ("12-14", "15-17")
ADOLESCENT_LOWER = {"iop": 6.0}
IOP_LOS = (42.0, 84.0, "6-12 weeks (42-84 days)")
BANDS = ("below", "within", "above")
GROUP_COLUMNS = {"site": "site_id", "quarter": "discharge_quarter"}
# TEDS length-of-stay codes (mart_episodes.los_band) grouped for the completion table
LOS_GROUPS = (("1-30 days", 1, 30), ("31-45 days", 31, 31), ("46-60 days", 32, 32), ("61-90 days", 33, 33),
              ("91-120 days", 34, 34), ("121-180 days", 35, 35), ("more than 180 days", 36, 37))
SMALL_COST_N = 100


def _where(where: str, *more: str) -> str:
    parts = [f"({where})"] if where else []
    parts += list(more)
    return "where " + " and ".join(parts) if parts else ""


def _wilson(k: int | None, n: int | None) -> tuple[float | None, float | None, float | None]:
    from pipelines.stats.proportions import wilson

    if k is None or not n:
        return None, None, None
    p = wilson(int(k), int(n))
    return (k / n, p.ci_low, p.ci_high) if hasattr(p, "ci_low") else (k / n, None, None)


def service_tables(con: duckdb.DuckDBPyConnection, where: str, params: Sequence[Any], rule: Any,
                   definitions: Sequence[Any], groupings: Sequence[str] = ("site", "quarter")) -> dict[str, Any]:
    """The disclosed service tables of the period (``where``/``params``: the period's rows)."""
    r = disclosure.get_rule(rule)
    have = {x[0] for x in con.execute(
        "select column_name from information_schema.columns where table_name = 'mart_episodes'").fetchall()}
    out: dict[str, Any] = {"dose": [], "sessions": [], "length_of_stay": [], "completion_by_los": [],
                           "costs": [], "cost_per_success": []}
    by = [g for g in groupings if g in GROUP_COLUMNS]
    if "hours_per_week" in have:
        for level, (lower, upper, label) in DOSE_BANDS.items():
            out["dose"] += banded(con, where, params, r, "hours_per_week", level, lower, upper, label, by)
    if "sessions_attended" in have:
        out["sessions"] = sessions(con, where, params, r)
    out["length_of_stay"] = banded(con, where, params, r, "los_days", "iop", *IOP_LOS, by)
    out["completion_by_los"] = completion_by_los(con, where, params, r)
    if "episode_cost" in have:
        out["costs"] = costs(con, where, params, r)
        out["cost_per_success"] = cost_per_success(con, where, params, r, definitions)
    return out


def banded(con, where: str, params: Sequence[Any], r: disclosure.Rule, column: str, level: str, lower: float,
           upper: float | None, label: str, by: Sequence[str]) -> list[dict[str, Any]]:
    """Episodes of ``level`` whose ``column`` is below, within (bounds included) or above
    [lower, upper], overall and by each of ``by``, with the median; disclosed together."""
    floor = f"{float(lower)}"
    if column == "hours_per_week" and level in ADOLESCENT_LOWER:
        young = ", ".join(repr(b) for b in ADOLESCENT_BANDS)
        floor = f"(case when age_band in ({young}) then {ADOLESCENT_LOWER[level]} else {float(lower)} end)"
    above = f"{column} > {float(upper)}" if upper is not None else "false"
    within = f"{column} >= {floor}" + (f" and {column} <= {float(upper)}" if upper is not None else "")
    sets = ", ".join(["()", *[f"({GROUP_COLUMNS[g]})" for g in by]])
    keys = ", ".join(f"grouping({GROUP_COLUMNS[g]}) as g_{g}, {GROUP_COLUMNS[g]} as k_{g}" for g in by)
    sql = (f"select {keys + ',' if keys else ''} count(*) filter (where {column} < {floor}) as below, "
           f"count(*) filter (where {within}) as within, count(*) filter (where {above}) as above, "
           f"count(*) as n, median({column}) as median "
           f"from mart_episodes {_where(where, 'source = ' + repr('native'), 'level_of_care = ?', f'{column} is not null')} "
           f"group by grouping sets ({sets})")
    cur = con.execute(sql, [*params, level])
    names = [d[0] for d in cur.description]
    raw = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    if not raw:
        return []
    rows = []
    for x in raw:
        group_by = next((g for g in by if x[f"g_{g}"] == 0), "all")
        group = "all" if group_by == "all" else x[f"k_{group_by}"]
        if group is None:
            continue  # no site or quarter to name (TEDS-D rows are not read here)
        rows.append({"group_by": group_by, "group": str(group), **{k: int(x[k]) for k in (*BANDS, "n")},
                     "median": x["median"]})
    order = {"all": 0, **{g: i + 1 for i, g in enumerate(by)}}
    rows.sort(key=lambda x: (order[x["group_by"]], x["group"]))
    shown, reasons = _protect_bands(rows, r)
    out = []
    for i, x in enumerate(rows):
        cells = shown[i]
        row: dict[str, Any] = {
            "level_of_care": level, "measure": column, "band": label, "lower": lower, "upper": upper,
            "group_by": x["group_by"], "group": x["group"], "n": cells["n"],
            **{b: cells[b] for b in BANDS},
        }
        n = cells["n"]
        ok = n is not None and r.stat_allowed(n)
        for b in BANDS:
            share, lo, hi = _wilson(cells[b], n) if ok else (None, None, None)
            row[f"{b}_share"], row[f"{b}_ci_low"], row[f"{b}_ci_high"] = share, lo, hi
        row["median"] = float(x["median"]) if ok and x["median"] is not None else None
        row["suppression"] = {k: v for k, v in reasons[i].items() if v}
        out.append(row)
    return out


def _protect_bands(rows: list[dict[str, Any]], r: disclosure.Rule):
    """Cells: each row's bands and n. Relations: bands add up to n in each row; each band (and
    n) of the rows of one grouping adds up to the overall row's."""
    cols = (*BANDS, "n")
    values, index = [], {}
    for i, x in enumerate(rows):
        for c in cols:
            index[i, c] = len(values)
            values.append(x[c])
    relations = [([index[i, b] for b in BANDS], index[i, "n"], None) for i in range(len(rows))]
    overall = next((i for i, x in enumerate(rows) if x["group_by"] == "all"), None)
    for g in dict.fromkeys(x["group_by"] for x in rows if x["group_by"] != "all"):
        members = [i for i, x in enumerate(rows) if x["group_by"] == g]
        if overall is not None:
            relations += [([index[i, c] for i in members], index[overall, c], None) for c in cols]
    shown, reasons = disclosure.protect_cells(values, relations, r)
    return ([{c: shown[index[i, c]] for c in cols} for i in range(len(rows))],
            [{c: reasons[index[i, c]] for c in cols} for i in range(len(rows))])


def sessions(con, where: str, params: Sequence[Any], r: disclosure.Rule) -> list[dict[str, Any]]:
    """Sessions attended per week of stay, by level of care (episodes with both recorded)."""
    cur = con.execute(
        "select level_of_care, count(*) as n, median(sessions_attended / (greatest(los_days, 1) / 7.0)) as median, "
        "quantile_cont(sessions_attended / (greatest(los_days, 1) / 7.0), 0.25) as q1, "
        "quantile_cont(sessions_attended / (greatest(los_days, 1) / 7.0), 0.75) as q3, "
        "median(hours_per_week) as median_hours "
        f"from mart_episodes {_where(where, 'source = ' + repr('native'), 'sessions_attended is not null', 'los_days is not null')} "
        "group by level_of_care order by level_of_care", list(params))
    out = []
    for level, n, median, q1, q3, hours in cur.fetchall():
        ok = r.stat_allowed(n)
        out.append({"level_of_care": level, "n": disclosure.shown_count(n, r),
                    "median_sessions_per_week": float(median) if ok else None,
                    "q1": float(q1) if ok else None, "q3": float(q3) if ok else None,
                    "median_scheduled_hours": float(hours) if ok and hours is not None else None,
                    "suppression": {} if ok else {"n": disclosure.SMALL}})
    return out


def completion_by_los(con, where: str, params: Sequence[Any], r: disclosure.Rule) -> list[dict[str, Any]]:
    """IOP completion by TEDS length-of-stay band, per source; each source's table protected
    with its band rows adding up to its total (the total is the source's IOP row, shown)."""
    case = " ".join(f"when los_band between {lo} and {hi} then '{name}'" for name, lo, hi in LOS_GROUPS)
    cur = con.execute(
        f"select source, case {case} end as band, count(*) as n, count(*) filter (where is_completed) as completed "
        f"from mart_episodes {_where(where, 'level_of_care = ' + repr('iop'), 'los_band is not null')} "
        "group by all", list(params))
    raw = cur.fetchall()
    order = {name: i for i, (name, _, _) in enumerate(LOS_GROUPS)}
    out = []
    for source in sorted({x[0] for x in raw}):
        rows = sorted((x for x in raw if x[0] == source), key=lambda x: order[x[1]])
        # cells per band: completed, not completed, n; the source's totals are cells too
        values, relations = [], []
        for _, _, n, done in rows:
            k = len(values)
            values += [done, n - done, n]
            relations.append(([k, k + 1], k + 2, None))
        t = len(values)
        values += [sum(x[3] for x in rows), sum(x[2] - x[3] for x in rows), sum(x[2] for x in rows)]
        relations.append(([t, t + 1], t + 2, None))
        for j in range(3):
            relations.append(([3 * i + j for i in range(len(rows))], t + j, None))
        shown, reasons = disclosure.protect_cells(values, relations, r)
        for i, (_, band, _, _) in enumerate([*rows, (source, "all", 0, 0)]):
            done, n = shown[3 * i], shown[3 * i + 2]
            ok = done is not None and n is not None and r.stat_allowed(n)
            rate, lo, hi = _wilson(done, n) if ok else (None, None, None)
            why = {k: v for k, v in (("completed", reasons[3 * i]), ("n", reasons[3 * i + 2])) if v}
            out.append({"source": source, "los_band": band, "n": n, "completed": done, "rate": rate,
                        "ci_low": lo, "ci_high": hi, "suppression": why})
    return out


def costs(con, where: str, params: Sequence[Any], r: disclosure.Rule) -> list[dict[str, Any]]:
    """Mean cost per episode by level of care, with a t interval."""
    from scipy import stats

    cur = con.execute(
        "select level_of_care, count(episode_cost) as n, count(*) as episodes, avg(episode_cost), "
        "stddev_samp(episode_cost), sum(episode_cost), median(episode_cost) "
        f"from mart_episodes {_where(where, 'source = ' + repr('native'), 'level_of_care is not null')} "
        "group by level_of_care order by level_of_care", list(params))
    out = []
    for level, n, episodes, mean, sd, total, median in cur.fetchall():
        if not n:
            continue
        ok = r.stat_allowed(n)
        # the episodes without a cost (episodes - n) must not be a count the rule forbids
        n_shown = disclosure.shown_count(n, r) if not r.is_small(episodes - n) else None
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) if ok and n > 1 and sd is not None else None
        out.append({
            "level_of_care": level, "n": n_shown,
            "mean_cost": float(mean) if ok else None,
            "ci_low": float(mean - half) if half is not None else None,
            "ci_high": float(mean + half) if half is not None else None,
            "median_cost": float(median) if ok else None,
            "total_cost": float(total) if ok else None,
            "ci_method": "t",
            "note": (f"fewer than {SMALL_COST_N} episodes with a cost: costs are skewed and the t interval may "
                     "be too narrow") if ok and n < SMALL_COST_N else None,
            "suppression": {} if n_shown is not None and ok else {"n": disclosure.SMALL},
        })
    return out


def _by_level(con, where: str, params: Sequence[Any], definitions: Sequence[Any], column: str, flag: str,
              with_cost: bool = False) -> tuple[list[Any], dict[tuple, dict[str, tuple]]]:
    """Per native level of care and value of ``flag`` (an SQL expression of the mart's ``column``),
    for each applicable definition: (episodes in its population, successes[, their total cost]).
    One GROUP BY with plain aggregates (FILTER clauses cost many times as much:
    benchmarks/README.md, Measurements: pipelines/analysis/services.py)."""
    from pipelines.definitions.evaluate import frame_sql, not_applicable

    inapplicable = not_applicable(con, definitions, where=where, where_params=params)
    defs = [d for d in definitions if not inapplicable.get(d.id)]
    if not defs:
        return [], {}
    extra = ["episode_cost"] if with_cost else []
    sql, args = frame_sql(defs, inapplicable, list(dict.fromkeys([*extra, column])), ["level_of_care", "source"],
                          where=where, where_params=params)
    k = 3 if with_cost else 2
    aggs = []
    for d in defs:
        c = f'"{d.id}"'
        aggs += [f"count({c})", f"sum({c})"] + ([f"sum(episode_cost * ({c} is not null)::int)"] if with_cost else [])
    cur = con.execute(f"select level_of_care, {flag} as flag, {', '.join(aggs)} from ({sql}) "
                      "where source = 'native' and level_of_care is not null group by all", args)
    out: dict[tuple, dict[str, tuple]] = {}
    for row in cur.fetchall():
        out[row[0], row[1]] = {d.id: tuple(row[2 + k * i: 2 + k * (i + 1)]) for i, d in enumerate(defs)}
    return defs, out


def _sum(parts: Sequence[tuple], i: int) -> float:
    return sum(float(x[i] or 0) for x in parts)


def cost_per_success(con, where: str, params: Sequence[Any], r: disclosure.Rule,
                     definitions: Sequence[Any]) -> list[dict[str, Any]]:
    """Per definition and level of care: the total cost of the episodes in the definition's
    population (with a cost recorded) over its successes."""
    defs, found = _by_level(con, where, params, definitions, "episode_cost", "episode_cost is not null",
                            with_cost=True)
    out = []
    for level in sorted({key[0] for key in found}):
        for d in defs:
            known = found.get((level, True), {}).get(d.id, (0, 0, 0))
            every = [found[key][d.id] for key in found if key[0] == level]
            n, successes, total = int(known[0]), known[1], known[2]
            n_all, successes_all = int(_sum(every, 0)), int(_sum(every, 1))
            if not n:
                continue
            successes = int(successes or 0)
            # successes and failures with a cost, and those left out for want of a cost (the
            # rates publish the whole population): no count 1..high among them
            derived = (successes, n - successes, n_all - n, int(successes_all or 0) - successes)
            counts_ok = not any(r.is_small(v) for v in derived) and r.stat_allowed(n)
            per = float(total) / successes if successes and counts_ok else None
            out.append({
                "definition_id": d.id, "definition_version": d.version, "level_of_care": level,
                "n": disclosure.shown_count(n, r) if counts_ok else None,
                "successes": disclosure.shown_count(successes, r) if counts_ok else None,
                "total_cost": float(total) if counts_ok and total is not None else None,
                "cost_per_success": per,
                "note": "no successes" if counts_ok and not successes else None,
                "suppression": {} if counts_ok else {"successes": disclosure.SMALL},
            })
    return out


def family_rates(con, where: str, params: Sequence[Any], r: disclosure.Rule,
                 definitions: Sequence[Any]) -> list[dict[str, Any]]:
    """Crude success rates of episodes with and without family involvement, per definition and
    level of care (episodes with involvement recorded). Cells: successes and failures with and
    without involvement and their sums; the level's successes and failures are taken as
    published (the rates show them)."""
    r = disclosure.get_rule(r)

    defs, found = _by_level(con, where, params, definitions, "family_involved", "family_involved")
    out = []
    for level in sorted({key[0] for key in found}):
        for d in defs:
            yes, no = (found.get((level, v), {}).get(d.id, (0, 0)) for v in (True, False))
            every = [found[key][d.id] for key in found if key[0] == level]
            n1, s1, n0, s0 = (int(v or 0) for v in (*yes, *no))
            n_all, s_all = int(_sum(every, 0)), int(_sum(every, 1))
            if not (n1 or n0):
                continue
            # cells: s1, f1, n1, s0, f0, n0; their sums over involvement are taken as known (the
            # rates publish them when involvement is recorded for everyone)
            values = [s1, n1 - s1, n1, s0, n0 - s0, n0]
            relations = [([0, 1], 2, None), ([3, 4], 5, None), ([0, 3], None, s1 + s0),
                         ([1, 4], None, n1 - s1 + n0 - s0), ([2, 5], None, n1 + n0)]
            shown, reasons = disclosure.protect_cells(values, relations, r)
            if r.is_small(n_all - n1 - n0) or r.is_small(s_all - s1 - s0):
                # those without a record would be a small count worked out from the rates
                shown, reasons = [None] * 6, [disclosure.SMALL] * 6
            for involved, (s_i, n_i) in ((True, (0, 2)), (False, (3, 5))):
                succ, n = shown[s_i], shown[n_i]
                ok = succ is not None and n is not None and r.stat_allowed(n)
                rate, lo, hi = _wilson(succ, n) if ok else (None, None, None)
                out.append({"definition_id": d.id, "level_of_care": level, "family_involved": involved,
                            "n": n, "successes": succ, "rate": rate, "ci_low": lo, "ci_high": hi,
                            "suppression": {k2: v for k2, v in (("successes", reasons[s_i]), ("n", reasons[n_i]))
                                            if v}})
    return out


# --------------------------------------------------------------------------- the CSVs
DOSE_COLUMNS = ("level_of_care", "group_by", "group", "n", "within_asam_share", "within_asam_ci_low",
                "within_asam_ci_high", "below_share", "below_ci_low", "below_ci_high", "above_share",
                "above_ci_low", "above_ci_high", "median_hours", "band", "suppression")
LOS_COLUMNS = ("level_of_care", "group_by", "group", "n", "within_share", "within_ci_low", "within_ci_high",
               "below_share", "below_ci_low", "below_ci_high", "above_share", "above_ci_low", "above_ci_high",
               "median_days", "band", "suppression")
COST_COLUMNS = ("measure", "level_of_care", "definition_id", "n", "mean_cost", "ci_low", "ci_high",
                "successes", "total_cost", "cost_per_success", "ci_method", "note", "suppression")
CE_COLUMNS = ("arm", "reference", "method", "cost_difference", "cost_ci_low", "cost_ci_high", "effect_difference",
              "effect_ci_low", "effect_ci_high", "definition_id", "icer", "icer_ci_low", "icer_ci_high",
              "dominance", "n_arm", "n_reference", "ci_method", "cost_model", "icer_note", "note")


def _reasons(x: dict[str, Any]) -> str:
    return ";".join(f"{k}:{v}" for k, v in sorted((x.get("suppression") or {}).items()))


def csv_tables(services: dict[str, Any]) -> dict[str, tuple[list[dict[str, Any]], Sequence[str]]]:
    """The service CSVs (file name -> rows and their leading columns) from the results model's
    ``services``: dose.csv, length_of_stay.csv, costs.csv, cost_effectiveness.csv."""
    dose = []
    for x in services.get("dose") or []:
        row = {k: x[k] for k in ("level_of_care", "group_by", "group", "n", "band")}
        row.update({"within_asam_share": x["within_share"], "within_asam_ci_low": x["within_ci_low"],
                    "within_asam_ci_high": x["within_ci_high"], "median_hours": x["median"],
                    "suppression": _reasons(x)})
        row.update({k: x[k] for k in ("below_share", "below_ci_low", "below_ci_high", "above_share",
                                      "above_ci_low", "above_ci_high")})
        dose.append(row)
    los = [{**{k: x[k] for k in LOS_COLUMNS if k in x}, "median_days": x["median"], "suppression": _reasons(x)}
           for x in services.get("length_of_stay") or []]
    costs = [{"measure": "mean_cost", **x, "suppression": _reasons(x)} for x in services.get("costs") or []]
    costs += [{"measure": "cost_per_success", **x, "suppression": _reasons(x)}
              for x in services.get("cost_per_success") or []]
    ce = []
    for x in services.get("cost_effectiveness") or []:
        row = {k: v for k, v in x.items() if k != "nmb"}
        for point in x.get("nmb") or []:
            wtp = f"{point['wtp']:g}"
            row[f"nmb_{wtp}"] = point["nmb"]
            row[f"nmb_{wtp}_ci_low"] = point["ci_low"]
            row[f"nmb_{wtp}_ci_high"] = point["ci_high"]
            row[f"ceac_{wtp}"] = point["probability_cost_effective"]
        ce.append(row)
    return {"dose.csv": (dose, DOSE_COLUMNS), "length_of_stay.csv": (los, LOS_COLUMNS),
            "costs.csv": (costs, COST_COLUMNS), "cost_effectiveness.csv": (ce, CE_COLUMNS)}


# --------------------------------------------------------------------------- adjusted parts
STATISTICS = {
    "cost_effectiveness": ("cost_difference", "cost_ci_low", "cost_ci_high", "effect_difference", "effect_ci_low",
                           "effect_ci_high", "icer", "icer_ci_low", "icer_ci_high", "dominance"),
    "family_effects": ("odds_ratio", "ci_low", "ci_high", "p_value"),
    "dose_response": ("log_odds_per_hour", "log_odds_ci_low", "log_odds_ci_high", "p_value",
                      "nonlinearity_p_value"),
}
COUNTS = {"cost_effectiveness": ("n_arm", "n_reference"), "family_effects": ("n_involved", "n_not_involved"),
          "dose_response": ("n",)}


def disclose_comparative(parts: dict[str, Any], rule: Any) -> dict[str, Any]:
    """The adjusted service analyses (computed with the comparisons) made safe: each count
    shown alone (no total to protect it against), and a row's statistics only when every group
    it compares holds more people than the rule's floor."""
    r = disclosure.get_rule(rule)
    out: dict[str, Any] = {"notes": list(parts.get("notes") or [])}
    for key, stats_cols in STATISTICS.items():
        rows = []
        for x in parts.get(key) or []:
            x = dict(x)
            counts = [x.get(c) for c in COUNTS[key]]
            ok = all(c is not None and r.stat_allowed(c) for c in counts)
            for c in COUNTS[key]:
                x[c] = disclosure.shown_count(x.get(c), r)
            if not ok:
                for c in stats_cols:
                    x[c] = None
                if key == "cost_effectiveness":
                    x["nmb"] = []
                if key == "dose_response":
                    x["probability"] = x["ci_low"] = x["ci_high"] = []
                    x["grid"] = []
                x["note"] = "not shown: too few people in a group compared"
            rows.append(x)
        out[key] = rows
    return out


# Definitions of the adjusted service analyses (those present in the analysis): the main
# outcomes of the subgroup analyses (pipelines.analysis.comparative.MODIFICATION_DEFINITIONS)
SERVICE_DEFINITIONS = ("completion", "abstinent_90d_itt", "no_readmission_90d")
# the columns of the comparison frame these analyses read beside the design's
SERVICE_COLUMNS = ("episode_cost", "hours_per_week", "family_involved")
WTP = (0.0, 5_000.0, 10_000.0, 20_000.0, 50_000.0, 100_000.0)


def _mask_of(values: np.ndarray) -> np.ndarray:
    return ~np.isnan(values)


def adjusted_services(sub: pl.DataFrame, treated: np.ndarray, design: Design, propensity: Any,
                      definitions: Sequence[Any], arm: str, reference: str) -> dict[str, Any]:
    """Cost-effectiveness of ``arm`` vs ``reference``, dose-response within the arm (IOP or
    PHP) and family involvement within each level, over the comparison's rows (``sub``, with
    ``design`` and the ``propensity`` model fitted on all of them). Not yet disclosed."""
    ids = [d for d in SERVICE_DEFINITIONS if d in {x.id for x in definitions} and d in sub.columns]
    out: dict[str, Any] = {"cost_effectiveness": [], "dose_response": [], "family_effects": [], "notes": []}
    if "episode_cost" in sub.columns and sub.get_column("episode_cost").null_count() < sub.height:
        out["cost_effectiveness"] = _cost_effectiveness(sub, treated, design, propensity, ids, arm, reference)
    else:
        out["notes"].append("cost-effectiveness: no episode cost recorded for the levels compared")
    if arm in DOSE_BANDS and "hours_per_week" in sub.columns:
        out["dose_response"] = _dose_response(sub, treated, design, ids, arm)
    if "family_involved" in sub.columns and sub.get_column("family_involved").null_count() < sub.height:
        out["family_effects"] = _family_effects(sub, treated, design, ids, arm, reference)
    else:
        out["notes"].append("family involvement: not recorded in these data")
    return out


def _outcome(sub: pl.DataFrame, def_id: str) -> np.ndarray:
    return sub.get_column(def_id).cast(pl.Float64).to_numpy()


def _family_effects(sub, treated, design, ids, arm, reference) -> list[dict[str, Any]]:
    """Within each level compared: a logistic model of success on involvement and the design,
    the odds ratio for involvement with a robust (sandwich) interval."""
    from scipy import stats

    from pipelines.stats.design import subset, with_column
    from pipelines.stats.logistic import fit_logistic, solve_information, xtwx

    family = sub.get_column("family_involved").cast(pl.Float64).to_numpy()
    rows = []
    for def_id in ids:
        y = _outcome(sub, def_id)
        for level, in_level in ((arm, treated), (reference, ~treated)):
            keep = in_level & _mask_of(y) & _mask_of(family)
            f = family[keep]
            row = {"definition_id": def_id, "level_of_care": level, "n_involved": int(f.sum()),
                   "n_not_involved": int((1 - f).sum()), "odds_ratio": None, "ci_low": None, "ci_high": None,
                   "p_value": None, "method": "logistic-sandwich", "note": None}
            rows.append(row)
            if f.sum() < 20 or (1 - f).sum() < 20:
                row["note"] = "fewer than 20 episodes with or without involvement"
                continue
            part = subset(design, keep)
            X = with_column(part.matrix, f)
            fit = fit_logistic(X, y[keep])
            if not fit.converged:
                row["note"] = f"the outcome model did not converge ({fit.note})"
                continue
            bread = solve_information(fit.information, np.eye(fit.information.shape[0]))
            cov = bread @ xtwx(X, np.asarray(fit.resid) ** 2) @ bread
            b, se = float(fit.params[-1]), float(np.sqrt(cov[-1, -1]))
            z = stats.norm.ppf(0.975)
            row.update(odds_ratio=math.exp(b), ci_low=math.exp(b - z * se), ci_high=math.exp(b + z * se),
                       p_value=float(2 * stats.norm.sf(abs(b / se))))
    return rows


def _dose_response(sub, treated, design, ids, arm) -> list[dict[str, Any]]:
    """Within the arm's episodes with hours recorded: success by scheduled hours a week."""
    from pipelines.stats.design import subset
    from pipelines.stats.dose import default_grid, dose_response

    hours = sub.get_column("hours_per_week").cast(pl.Float64).to_numpy()
    sites = sub.get_column("site_id").cast(pl.String).to_numpy() if "site_id" in sub.columns else None
    rows = []
    for def_id in ids:
        y = _outcome(sub, def_id)
        keep = treated & _mask_of(y) & _mask_of(hours)
        row = {"definition_id": def_id, "level_of_care": arm, "n": int(keep.sum()), "grid": [], "probability": [],
               "ci_low": [], "ci_high": [], "log_odds_per_hour": None, "log_odds_ci_low": None,
               "log_odds_ci_high": None, "p_value": None, "nonlinearity_p_value": None, "knots": [],
               "method": "logistic-rcs3-standardized", "note": None}
        rows.append(row)
        if keep.sum() < 50:
            row["note"] = "fewer than 50 episodes with hours recorded"
            continue
        # 15 points draw the 3-knot spline smoothly; each point is a pass over the arm's rows
        fit = dose_response(y[keep], hours[keep], subset(design, keep), grid=default_grid(hours[keep], points=15),
                            cluster=sites[keep] if sites is not None else None)
        if not hasattr(fit, "grid"):
            row["note"] = getattr(fit, "reason", "not estimable")
            continue
        row.update(grid=[float(v) for v in fit.grid], probability=[float(v) for v in fit.probability],
                   ci_low=[float(v) for v in fit.ci_low], ci_high=[float(v) for v in fit.ci_high],
                   log_odds_per_hour=float(fit.log_odds_per_hour),
                   log_odds_ci_low=float(fit.log_odds_per_hour_ci_low),
                   log_odds_ci_high=float(fit.log_odds_per_hour_ci_high),
                   p_value=float(fit.log_odds_per_hour_p_value),
                   nonlinearity_p_value=float(fit.nonlinearity_p_value), knots=[float(k) for k in fit.knots],
                   method=fit.method, note=fit.note)
    return rows


def _cost_effectiveness(sub, treated, design, propensity, ids, arm, reference) -> list[dict[str, Any]]:
    """Crude, IPTW (ATE) and AIPW incremental cost and effect of the arm per definition."""
    from pipelines.contracts import level_labels
    from pipelines.stats.costeffect import cost_effectiveness

    cost = sub.get_column("episode_cost").cast(pl.Float64).to_numpy()
    labels = level_labels()
    names = (labels.get(reference, reference), labels.get(arm, arm))
    rows = []
    for def_id in ids:
        found = cost_effectiveness(cost, _outcome(sub, def_id), treated, design, propensity=propensity, wtp=WTP,
                                   names=names)
        for method, x in zip(("crude", "iptw_ate", "aipw"), found, strict=True):
            row = {"definition_id": def_id, "arm": arm, "reference": reference, "method": method}
            if not hasattr(x, "cost_difference"):
                row.update({k: None for k in ("cost_difference", "cost_ci_low", "cost_ci_high", "effect_difference",
                                              "effect_ci_low", "effect_ci_high", "icer", "icer_ci_low",
                                              "icer_ci_high", "icer_note", "dominance")},
                           n_arm=None, n_reference=None, ci_method="", cost_model="", nmb=[],
                           note=getattr(x, "reason", "not estimable"))
                rows.append(row)
                continue
            ceac = dict(x.ceac)
            row.update({k: _finite(getattr(x, k)) for k in (
                "cost_difference", "cost_ci_low", "cost_ci_high", "effect_difference", "effect_ci_low",
                "effect_ci_high", "icer", "icer_ci_low", "icer_ci_high")})
            row.update(icer_note=x.icer_note, dominance=x.dominance, n_arm=x.n_arm, n_reference=x.n_reference,
                       ci_method=x.ci_method, cost_model=x.cost_model, note=x.note,
                       nmb=[{"wtp": float(w), "nmb": _finite(v), "ci_low": _finite(lo), "ci_high": _finite(hi),
                             "probability_cost_effective": _finite(ceac.get(w))} for w, v, lo, hi in x.nmb])
            rows.append(row)
    return rows


def _finite(v: Any) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


def without(not_applicable: Mapping[str, str], services: dict[str, Any]) -> dict[str, Any]:
    """Rows of definitions the data cannot answer leave the service tables (they are listed once,
    with the reason, in ``not_applicable``)."""
    return {k: [x for x in v if not (isinstance(x, Mapping) and x.get("definition_id") in not_applicable)]
            if isinstance(v, list) else v for k, v in services.items()}
