"""The report's section on the care itself: dose, length of stay, cost and cost-effectiveness,
family involvement and aftercare — from ``results["services"]`` and the aftercare rates.

Each part says what it measured and how in one or two sentences; the methods are in the
appendix (:data:`METHODS`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipelines.report import charts, numbers, tables
from pipelines.report.model import Section, Table

AFTERCARE = ("aftercare_7d", "aftercare_30d", "stepdown_14d", "stepdown_30d", "further_care_iop_30d")
DOSE_LEVEL_NAMES = {"iop": "IOP", "php": "PHP"}

METHODS = (
    ("Dose: scheduled hours a week against the ASAM band (2.1: 9-19, adolescents 6-19; 2.5: 20 or more), Wilson "
    "intervals; dose-response: a logistic model of success on a restricted cubic spline of hours (3 knots) and the "
    "comparison's covariates, standardized, sandwich variance: an adjusted association, hours are not randomized. "
    "Length of stay: IOP stays against 6-12 weeks; completion by TEDS length-of-stay band."),
    ("Cost: mean with a t interval; cost per success = total cost / successes. Cost-effectiveness: crude, IPTW (ATE) "
    "and AIPW with a gamma log-link cost model (costs are skewed) and a logistic effect model; influence-function "
    "intervals, Fieller's interval for the ICER, NMB = WTP x effect - cost and the acceptability curve P(NMB > 0)."),
    ("Family involvement: within each level an adjusted odds ratio (logistic, sandwich), and the AIPW comparison "
    "within involvement subgroups with Cochran's Q. Aftercare: follow-up care within 7 and 30 days of residential, "
    "inpatient and withdrawal-management discharges (NCQA HEDIS FUI), step-down within 14 and 30 days, further care "
    "within 30 days of IOP."),
)


def _table(id: str, title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
           formats: Mapping[str, str], headers: Mapping[str, str], count_cols: Sequence[str] = (),
           hidden_as: Mapping[str, str] | None = None, **kw: Any) -> Table:
    """A table of disclosed rows; a cell is hidden (the rule's marker) where the row's
    ``suppression`` names its column, or the count column it is computed from (``hidden_as``)."""
    frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=list(columns))
    frame = frame.astype(object).where(frame.notna(), None)
    hidden_as = dict(hidden_as or {})
    reasons = pd.DataFrame([{c: (r.get("suppression") or {}).get(hidden_as.get(c, c)) for c in columns}
                            for r in rows], columns=list(columns), dtype=object)
    return Table(id=id, title=title, frame=frame, count_cols=tuple(count_cols), hidden=reasons,
                 formats=dict(formats), headers=dict(headers), **kw)


def services_section(ctx: Any, headlines: Sequence[str] = ()) -> Section:
    s = Section("services", "Dose, length of stay, cost, family involvement and aftercare")
    sv = ctx.results.get("services") or {}
    s.paragraphs.append(
        "The questions programs are asked about the care itself: how many hours a week, for how long, at what "
        "cost, with the family or not, and what came after. Hours, family involvement and length of stay are "
        "not randomized: their associations with success are adjusted, not proof of effect.")
    s.parts += [_dose(ctx, sv), _length_of_stay(ctx, sv), _costs(ctx, sv, headlines), _family(ctx, sv),
                _aftercare(ctx)]
    for note in sv.get("notes") or []:
        s.unavailable.append(f"not available: {note}")
    return s


def _label(ctx: Any, d: str) -> str:
    return f"{ctx.labels.get(d, d)} [{d}]"


def _dose(ctx: Any, sv: Mapping[str, Any]) -> Section:
    p = Section("services-dose", "Dose: scheduled hours against the ASAM band")
    rows = sv.get("dose") or []
    if not rows:
        p.unavailable.append("not available: no IOP or PHP episode with hours per week recorded")
        return p
    for x in (x for x in rows if x["group_by"] == "all"):
        name = DOSE_LEVEL_NAMES.get(x["level_of_care"], x["level_of_care"])
        if x.get("within_share") is None:
            p.paragraphs.append(f"{name}: too few episodes with hours recorded to show ({x['band']}).")
            continue
        p.paragraphs.append(
            f"{name}: {numbers.pct(x['within_share'])} of {numbers.count(x['n'])} episodes were scheduled within "
            f"{x['band']} (95% CI {numbers.pct_range(x['within_ci_low'], x['within_ci_high'])}); "
            f"{numbers.pct(x['below_share'])} below, {numbers.pct(x['above_share'])} above; median "
            f"{numbers.cell(x['median'], 'num1')} hours.")
    cols = ("level_of_care", "group_by", "group", "n", "below_share", "within_share", "within_ci_low",
            "within_ci_high", "above_share", "median")
    fmt = {"n": "int", "below_share": "pct", "within_share": "pct", "within_ci_low": "pct", "within_ci_high": "pct",
           "above_share": "pct", "median": "num1"}
    hid = {"below_share": "below", "within_share": "within", "within_ci_low": "within", "within_ci_high": "within",
           "above_share": "above", "median": "n"}
    head = {"group_by": "by", "below_share": "below band", "within_share": "within band", "within_ci_low": "95% CI low",
            "within_ci_high": "95% CI high", "above_share": "above band", "median": "median hours",
            "level_of_care": "level"}
    p.tables.append(_table("table-dose", "Scheduled hours against the ASAM band, by site and quarter (dose.csv)",
                           rows, cols, fmt, head, ("n",), hid, detail=True))
    sessions = sv.get("sessions") or []
    if sessions:
        p.tables.append(_table(
            "table-sessions", "Sessions attended per week of stay", sessions,
            ("level_of_care", "n", "median_sessions_per_week", "q1", "q3", "median_scheduled_hours"),
            {"n": "int", "median_sessions_per_week": "num1", "q1": "num1", "q3": "num1", "median_scheduled_hours": "num1"},
            {"level_of_care": "level", "median_sessions_per_week": "median sessions a week", "q1": "25th pct",
             "q3": "75th pct", "median_scheduled_hours": "median scheduled hours"}, ("n",),
            {c: "n" for c in ("median_sessions_per_week", "q1", "q3", "median_scheduled_hours")},
            note="The records hold sessions attended, not sessions scheduled; scheduled intensity is hours a week.",
            detail=True))
    curves = [c for c in sv.get("dose_response") or [] if c.get("grid")]
    for c in curves[:1]:
        band = DOSE_BANDS_FOR_CHART.get(c["level_of_care"])
        p.charts.append(charts.dose_curve(c, _label(ctx, c["definition_id"]), band))
    shown = sv.get("dose_response") or []
    for c in shown:
        if c.get("log_odds_per_hour") is not None:
            p.paragraphs.append(
                f"Within {DOSE_LEVEL_NAMES.get(c['level_of_care'], c['level_of_care'])}, {_label(ctx, c['definition_id'])}: "
                f"odds of success x{numbers.ratio(math.exp(c['log_odds_per_hour']))} per extra scheduled hour a week "
                f"(95% CI {numbers.ratio(math.exp(c['log_odds_ci_low']))} to "
                f"{numbers.ratio(math.exp(c['log_odds_ci_high']))}; adjusted, not randomized).")
    if shown:
        p.tables.append(_table(
            "table-dose-response", "Dose-response within the arm: log-odds of success per scheduled hour",
            shown, ("definition_id", "level_of_care", "n", "log_odds_per_hour", "log_odds_ci_low", "log_odds_ci_high",
                    "p_value", "nonlinearity_p_value"),
            {"n": "int", "log_odds_per_hour": "num3", "log_odds_ci_low": "num3", "log_odds_ci_high": "num3",
             "p_value": "p", "nonlinearity_p_value": "p"},
            {"definition_id": "definition", "level_of_care": "level", "log_odds_per_hour": "log-odds per hour",
             "log_odds_ci_low": "lower 95% limit", "log_odds_ci_high": "upper 95% limit", "p_value": "p",
             "nonlinearity_p_value": "p (nonlinear)"}, ("n",), detail=True,
            note="Hours are not randomized: the slopes are adjusted associations, not effects of scheduling more hours."))
    points = [{"definition_id": c["definition_id"], "level_of_care": c["level_of_care"], "hours": h, "adjusted": pr,
               "lower": lo, "upper": hi}
              for c in curves for h, pr, lo, hi in zip(c["grid"], c["probability"], c["ci_low"], c["ci_high"],
                                                      strict=True)]
    if points:
        p.tables.append(_table(
            "table-dose-curve", "Dose-response curves: adjusted success by scheduled hours", points,
            ("definition_id", "level_of_care", "hours", "adjusted", "lower", "upper"),
            {"hours": "num1", "adjusted": "pct", "lower": "pct", "upper": "pct"},
            {"definition_id": "definition", "level_of_care": "level", "adjusted": "adjusted rate",
             "lower": "95% CI low", "upper": "95% CI high"}, detail=True))
    return p


DOSE_BANDS_FOR_CHART = {"iop": (9.0, 19.0), "php": (20.0, None)}


def _length_of_stay(ctx: Any, sv: Mapping[str, Any]) -> Section:
    p = Section("services-los", "Length of stay")
    rows = sv.get("length_of_stay") or []
    overall = next((x for x in rows if x["group_by"] == "all"), None)
    if overall is not None and overall.get("within_share") is not None:
        p.paragraphs.append(
            f"IOP: {numbers.pct(overall['within_share'])} of {numbers.count(overall['n'])} stays lasted 6-12 weeks "
            f"(95% CI {numbers.pct_range(overall['within_ci_low'], overall['within_ci_high'])}); "
            f"{numbers.pct(overall['below_share'])} were shorter and {numbers.pct(overall['above_share'])} longer; "
            f"median {numbers.count(overall['median'])} days.")
    if rows:
        cols = ("group_by", "group", "n", "below_share", "within_share", "within_ci_low", "within_ci_high",
                "above_share", "median")
        p.tables.append(_table(
            "table-los", "IOP length of stay against 6-12 weeks, by site and quarter (length_of_stay.csv)", rows, cols,
            {"n": "int", "below_share": "pct", "within_share": "pct", "within_ci_low": "pct", "within_ci_high": "pct",
             "above_share": "pct", "median": "num1"},
            {"group_by": "by", "below_share": "under 6 weeks", "within_share": "6-12 weeks", "within_ci_low": "95% CI low",
             "within_ci_high": "95% CI high", "above_share": "over 12 weeks", "median": "median days"}, ("n",),
            {"below_share": "below", "within_share": "within", "within_ci_low": "within", "within_ci_high": "within",
             "above_share": "above", "median": "n"}, detail=True))
    by_band = sv.get("completion_by_los") or []
    if by_band:
        p.tables.append(_table(
            "table-los-completion", "IOP completion by length of stay", [{**x, "share": x["rate"]} for x in by_band],
            ("source", "los_band", "n", "completed", "share", "ci_low", "ci_high"),
            {"n": "int", "completed": "int", "share": "pct", "ci_low": "pct", "ci_high": "pct"},
            {"los_band": "length of stay", "share": "completed (%)", "ci_low": "95% CI low", "ci_high": "95% CI high"},
            ("n", "completed"), {"share": "completed", "ci_low": "completed", "ci_high": "completed"},
            note="Completion and length of stay are decided together (people who leave early have short stays): "
                 "this describes, it does not say that longer stays cause completion."))
    if not p.paragraphs and not p.tables:
        p.unavailable.append("not available: no IOP episode with a length of stay in the period")
    return p


def dominance_sentences(ctx: Any, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The adjusted (AIPW) cost-effectiveness of each definition in words."""
    out = []
    for x in rows:
        if x.get("method") != "aipw":
            continue
        label = _label(ctx, x["definition_id"])
        if x.get("cost_difference") is None:
            out.append(f"{label}: {x.get('note') or 'not estimable'}.")
            continue
        words = str(x.get("dominance") or "").rstrip(".")
        out.append(
            f"{label}: {words}. Incremental cost {numbers.usd(x['cost_difference'])} per episode "
            f"(95% CI {numbers.usd(x['cost_ci_low'])} to {numbers.usd(x['cost_ci_high'])}); incremental effect "
            f"{numbers.pp(x['effect_difference'])} ({numbers.pp_range(x['effect_ci_low'], x['effect_ci_high'])}).")
    return out


def _costs(ctx: Any, sv: Mapping[str, Any], headlines: Sequence[str]) -> Section:
    p = Section("services-cost", "Cost and cost-effectiveness")
    costs = sv.get("costs") or []
    if not costs:
        p.unavailable.append("not available: no episode cost recorded")
        return p
    p.tables.append(_table(
        "table-costs", "Mean cost per episode by level of care (costs.csv)", costs,
        ("level_of_care", "n", "mean_cost", "ci_low", "ci_high", "median_cost", "note"),
        {"n": "int", "mean_cost": "usd", "ci_low": "usd", "ci_high": "usd", "median_cost": "usd"},
        {"level_of_care": "level", "n": "episodes with a cost", "mean_cost": "mean", "ci_low": "lower 95% limit",
         "ci_high": "upper 95% limit", "median_cost": "median"}, ("n",),
        {c: "n" for c in ("mean_cost", "ci_low", "ci_high", "median_cost")}))
    heads = list(headlines)
    per = [x for x in sv.get("cost_per_success") or [] if not heads or x["definition_id"] in heads]
    first = next((d for d in heads if any(x["definition_id"] == d for x in per)), None)
    said = [f"{tables.level_label(x['level_of_care'])} {numbers.usd(x['cost_per_success'])}" for x in per
            if x["definition_id"] == first and x.get("cost_per_success") is not None]
    if said:
        p.paragraphs.append(f"Cost per success, {_label(ctx, first)}: " + "; ".join(said) + ".")
    if per:
        p.tables.append(_table(
            "table-cost-per-success", "Cost per success by definition and level of care (costs.csv)", per,
            ("definition_id", "level_of_care", "n", "successes", "total_cost", "cost_per_success"),
            {"n": "int", "successes": "int", "total_cost": "usd", "cost_per_success": "usd"},
            {"definition_id": "definition", "level_of_care": "level", "total_cost": "total cost",
             "cost_per_success": "cost per success"}, ("n", "successes"),
            {c: "successes" for c in ("n", "total_cost", "cost_per_success")}, detail=True))
    ce = sv.get("cost_effectiveness") or []
    if ce:
        p.paragraphs += dominance_sentences(ctx, ce)
        p.tables.append(_table(
            "table-cost-effectiveness", "Cost-effectiveness, crude and adjusted (cost_effectiveness.csv)", ce,
            ("definition_id", "method", "n_arm", "n_reference", "cost_difference", "cost_ci_low", "cost_ci_high",
             "effect_difference", "effect_ci_low", "effect_ci_high", "icer", "icer_ci_low", "icer_ci_high"),
            {"n_arm": "int", "n_reference": "int", "cost_difference": "usd", "cost_ci_low": "usd", "cost_ci_high": "usd",
             "effect_difference": "rd", "effect_ci_low": "rd", "effect_ci_high": "rd", "icer": "usd",
             "icer_ci_low": "usd", "icer_ci_high": "usd"},
            {"definition_id": "definition", "n_arm": f"n {ctx.arm}", "n_reference": f"n {ctx.reference}",
             "cost_difference": "incremental cost", "cost_ci_low": "cost lower 95% limit",
             "cost_ci_high": "cost upper 95% limit", "effect_difference": "incremental effect",
             "effect_ci_low": "effect lower 95% limit", "effect_ci_high": "effect upper 95% limit",
             "icer": "ICER ($ per success)", "icer_ci_low": "ICER 95% CI low", "icer_ci_high": "ICER 95% CI high"},
            ("n_arm", "n_reference"),
            note="Incremental = arm minus reference. An ICER is meaningful only when the effect differs; when one "
                 "option costs less and does at least as well, it dominates and the ICER is not needed.",
            detail=True))
        adjusted = [x for x in ce if x.get("method") == "aipw" and x.get("nmb")]
        if adjusted:
            p.charts.append(charts.acceptability(adjusted, ctx.labels))
        nmb = [{"definition_id": x["definition_id"], "method": x["method"], **pt} for x in ce for pt in x.get("nmb") or []]
        if nmb:
            p.tables.append(_table(
                "table-nmb", "Net monetary benefit and acceptability by willingness to pay", nmb,
                ("definition_id", "method", "wtp", "nmb", "ci_low", "ci_high", "probability_cost_effective"),
                {"wtp": "usd", "nmb": "usd", "ci_low": "usd", "ci_high": "usd", "probability_cost_effective": "pct"},
                {"definition_id": "definition", "wtp": "willingness to pay per success", "nmb": "NMB per episode",
                 "ci_low": "lower 95% limit", "ci_high": "upper 95% limit",
                 "probability_cost_effective": "P(cost-effective)"}, detail=True))
    return p


def _family(ctx: Any, sv: Mapping[str, Any]) -> Section:
    p = Section("services-family", "Family involvement")
    rates = sv.get("family_rates") or []
    effects = sv.get("family_effects") or []
    if not rates and not effects:
        p.unavailable.append("not available: family involvement is not recorded in these data")
        return p
    if rates:
        p.tables.append(_table(
            "table-family-rates", "Success with and without family involvement (crude)",
            [{**x, "share": x["rate"]} for x in rates],
            ("definition_id", "level_of_care", "family_involved", "n", "successes", "share", "ci_low", "ci_high"),
            {"n": "int", "successes": "int", "share": "pct", "ci_low": "pct", "ci_high": "pct"},
            {"definition_id": "definition", "level_of_care": "level", "family_involved": "family involved",
             "share": "success rate", "ci_low": "95% CI low", "ci_high": "95% CI high"}, ("n", "successes"),
            {"share": "successes", "ci_low": "successes", "ci_high": "successes"}, detail=True))
    for x in effects:
        if x.get("odds_ratio") is not None and x["definition_id"] == "completion":
            p.paragraphs.append(
                f"{tables.level_label(x['level_of_care'])}, {_label(ctx, 'completion')}: adjusted odds ratio for "
                f"family involvement {numbers.ratio(x['odds_ratio'])} (95% CI {numbers.ratio(x['ci_low'])} to "
                f"{numbers.ratio(x['ci_high'])}; p {numbers.p_value(x['p_value'])}).")
    if effects:
        p.tables.append(_table(
            "table-family-effects", "Family involvement within each level, adjusted", effects,
            ("definition_id", "level_of_care", "n_involved", "n_not_involved", "odds_ratio", "ci_low", "ci_high",
             "p_value", "note"),
            {"n_involved": "int", "n_not_involved": "int", "odds_ratio": "ratio", "ci_low": "ratio", "ci_high": "ratio",
             "p_value": "p"},
            {"definition_id": "definition", "level_of_care": "level", "n_involved": "n involved",
             "n_not_involved": "n not involved", "odds_ratio": "odds ratio", "ci_low": "lower 95% limit",
             "ci_high": "upper 95% limit"}, ("n_involved", "n_not_involved"), detail=True))
    mod = [x for x in ctx.results.get("modification") or [] if x.get("modifier") == "family_involved"]
    by_def: dict[str, list] = {}
    for x in mod:
        by_def.setdefault(x["definition_id"], []).append(x)
    for d, xs in by_def.items():
        parts = [f"{x['level']}: {numbers.pp(x['estimate'])} ({numbers.pp_range(x['ci_low'], x['ci_high'])})"
                 for x in xs if x.get("estimate") is not None]
        if parts:
            p.paragraphs.append(
                f"Does involvement change the {tables.level_label(ctx.arm)} vs {tables.level_label(ctx.reference)} "
                f"comparison? {_label(ctx, d)}, adjusted difference within each group: " + "; ".join(parts)
                + f" (interaction p {numbers.p_value(xs[0].get('interaction_p_value'))}).")
    return p


def _aftercare(ctx: Any) -> Section:
    p = Section("services-aftercare", "Aftercare: what came after discharge")
    present = [d for d in AFTERCARE if d in ctx.labels]
    rows = [x for x in ctx.rows(("level_group",)) if x["definition_id"] in present and x.get("denominator")]
    overall = [x for x in ctx.rows(("all",)) if x["definition_id"] in present and x.get("denominator")]
    if not rows and not overall:
        gone = [f"{d}: {ctx.not_applicable[d]}" for d in present if d in ctx.not_applicable]
        p.unavailable.append("not available: " + ("; ".join(gone) if gone else "no aftercare definition analysed, or "
                             "no discharge in their populations"))
        return p
    for x in overall:
        p.paragraphs.append(f"{_label(ctx, x['definition_id'])}: {tables.rate_text(x) or ctx.marker_of(x)}.")
    if rows:
        by_level = tables.rates_table(rows, ctx.labels, id="table-aftercare", title="Aftercare by level of care",
                                      group_title="level")
        by_level.detail = True
        p.tables.append(by_level)
    return p
