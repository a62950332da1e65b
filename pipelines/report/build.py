"""Assemble the quarterly report (sections in reading order) from results and warehouse aggregates.

Every number passes :mod:`pipelines.disclosure` before it reaches a table, a chart or a
sentence; the summary's sentences are written from the disclosed tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelines import disclosure
from pipelines.errors import UserError
from pipelines.report import charts, tables
from pipelines.report.inputs import WarehouseAggregates
from pipelines.report.model import Report, Section

ARM, REFERENCE = "iop", "residential"
HEADLINE = ("completion", "retention_90d", "abstinent_90d_itt", "abstinent_90d_cc", "no_readmission_30d",
            "phq9_response")
FOLLOWUP_TARGET = 0.80  # GPRA: grantees are held to an 80% follow-up rate
SMD_THRESHOLD, EQUIPOISE_MIN = 0.1, 0.2  # OHDSI CohortMethod diagnostics
TREND_QUARTERS = 8
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")


def parse_quarter(q: str) -> tuple[int, int]:
    m = _QUARTER.match(q or "")
    if not m:
        raise UserError(f"--quarter: {q!r} is not a quarter like 2026Q3")
    return int(m.group(1)), int(m.group(2))


def last_quarters(q: str, n: int = TREND_QUARTERS) -> list[str]:
    year, quarter = parse_quarter(q)
    k = year * 4 + quarter - 1
    return [f"{(k - i) // 4}Q{(k - i) % 4 + 1}" for i in range(n - 1, -1, -1)]


def report_quarter(results: Mapping[str, Any], agg: WarehouseAggregates, quarter: str | None) -> str | None:
    if quarter:
        parse_quarter(quarter)
        return quarter
    q = (results.get("diagnostics") or {}).get("data_end_quarter")
    if q and _QUARTER.match(str(q)):
        return str(q)
    seen = [str(r.get("group")).split("|")[-1] for r in results.get("rates", [])
            if any(k in str(r.get("group_by")) for k in tables.QUARTER_KEYS)]
    seen += agg.quarters
    seen = [s for s in seen if _QUARTER.match(s)]
    return max(seen) if seen else None


ADJUSTED_PREFERENCE = ("aipw", "gcomp", "iptw_ate", "iptw", "overlap")  # the headline adjusted method, in order


FOREST_METHODS = ("crude", "iptw_ate", "iptw", "overlap", "gcomp", "aipw")
# a definition's missing-data policy -> the comparisons' name for the same approach
POLICY_ROWS = {"failure": "itt", "exclude": "cc"}


def _forest_rows(rows: Sequence[Mapping[str, Any]], definitions: Sequence[Mapping[str, Any]] = ()
                 ) -> list[dict[str, Any]]:
    """The risk-difference rows of the forest plot: crude and the average-treatment-effect
    methods, under the definition's own missing-data policy (comparisons.csv keeps every row)."""
    policy = {str(d.get("id")): POLICY_ROWS.get(str(d.get("missing"))) for d in definitions}
    rd = [dict(x) for x in rows
          if str(x.get("estimand") or x.get("measure") or "rd") in ("rd", "risk_difference")
          and str(x.get("method")) in FOREST_METHODS]
    chosen: dict[str, Any] = {}
    for x in rd:
        d, m = str(x.get("definition_id")), x.get("missing_data")
        order = (policy.get(d), None, "as_defined", "itt", "cc")
        rank = order.index(m) if m in order else 99
        if d not in chosen or rank < chosen[d][0]:
            chosen[d] = (rank, m)
    return [x for x in rd if x.get("missing_data") == chosen[str(x.get("definition_id"))][1]]


def _ni_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Non-inferiority rows with ``margin`` (0-1 scale) and the 95% interval as ci_low/ci_high."""
    out = []
    for x in rows:
        x = dict(x)
        if x.get("margin") is None and x.get("margin_pp") is not None:
            x["margin"] = x["margin_pp"] / 100
        x.setdefault("ci_low", x.get("ci95_low"))
        x.setdefault("ci_high", x.get("ci95_high"))
        out.append(x)
    return out


def _preferred(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One row per definition: the first adjusted method of ADJUSTED_PREFERENCE present."""
    best: dict[str, Mapping[str, Any]] = {}
    rank = {m: i for i, m in enumerate(ADJUSTED_PREFERENCE)}
    for x in rows:
        d = str(x.get("definition_id"))
        if d not in best or rank.get(str(x.get("method")), 99) < rank.get(str(best[d].get("method")), 99):
            best[d] = x
    return list(best.values())


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _rate_phrase(r: Mapping[str, Any] | None, marker: str) -> str:
    if r is None:
        return "no data"
    if r.get("rate") is None:
        return f"not shown ({marker}: small numbers)"
    if r.get("ci_low") is None:
        return _pct(r["rate"])
    return f"{_pct(r['rate'])} (95% CI {_pct(r['ci_low'])}–{_pct(r['ci_high'])})"


def build_report(
    results: Mapping[str, Any], agg: WarehouseAggregates, *, quarter: str | None = None, rule: str = "cms",
    data_docs: str | None = None,
) -> Report:
    r = disclosure.get_rule(rule)
    q = report_quarter(results, agg, quarter)
    definitions = list(results.get("definitions") or [])
    labels = tables.definition_labels(definitions)
    raw_rates = [dict(x) for x in results.get("rates") or []]
    for x in raw_rates:  # rows of definitions not in the list still get a label
        labels.setdefault(str(x.get("definition_id")), str(x.get("definition_id")))
    shown_rates = disclosure.apply_rates(raw_rates, rule=r)
    pairs = list(zip(raw_rates, shown_rates))
    ctx = _Context(results=results, agg=agg, quarter=q, rule=r, labels=labels, pairs=pairs,
                   marker=r.marker, data_docs=data_docs)
    ctx.facts["window"] = last_quarters(q) if q else []
    comparisons = disclosure.apply_comparisons(_forest_rows(results.get("comparisons") or [], definitions),
                                               shown_rates, rule=r)
    noninferiority = disclosure.apply_comparisons(_ni_rows(results.get("noninferiority") or []), shown_rates, rule=r)
    ctx.comparisons, ctx.noninferiority = comparisons, noninferiority

    sections = [
        _data_quality(ctx), _cohort(ctx), _rates(ctx), _comparison(ctx), _survival(ctx), _trends(ctx),
        _sites(ctx), _stepdown(ctx), _appendix(ctx, definitions),
    ]
    sections.insert(0, _summary(ctx))  # last: it reads the facts and flags the others found
    return Report(
        title="Outcomes after intensive outpatient and residential treatment",
        quarter=q, run_id=str(results.get("run_id", "")), created_at=str(results.get("created_at", "")),
        rule_name=r.name, marker=r.marker, disclosure_note=r.note, sections=sections,
    )


class _Context:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)
        self.flags: list[str] = []
        self.facts: dict[str, Any] = {}

    def rows(self, keys: Sequence[str]) -> tuple[list[dict], list[dict]]:
        raw = [a for a, b in self.pairs if str(a.get("group_by")) in keys]
        shown = [b for a, b in self.pairs if str(a.get("group_by")) in keys]
        return raw, shown


# --------------------------------------------------------------------------- sections
def _summary(ctx: _Context) -> Section:
    s = Section("summary", "Summary")
    f = ctx.facts
    period = f"{f['first_quarter']} to {f['last_quarter']}" if f.get("first_quarter") else "the analysed period"
    if f.get("episodes") is not None:
        s.paragraphs.append(
            f"Who was served: {f['episodes']} discharges ({period}) from {f.get('sites', '–')} programs "
            f"were analysed: {f.get('by_level', '')}."
        )
    else:
        s.paragraphs.append("Who was served: not available: the warehouse has no episodes for the period.")
    _, shown = ctx.rows(("level_group",))
    if not shown:
        _, shown = ctx.rows(("level_of_care",))
    heads = [d for d in HEADLINE if any(str(x.get("definition_id")) == d for x in shown)]
    heads = heads or list(dict.fromkeys(str(x.get("definition_id")) for x in shown))[:4]
    if heads:
        s.paragraphs.append("Headline success rates (more definitions in 'Success rates by definition'):")
    for d in heads:
        by = {x.get("group"): x for x in shown if str(x.get("definition_id")) == d}
        s.paragraphs.append(f"{ctx.labels.get(d, d)}: IOP {_rate_phrase(by.get(ARM), ctx.marker)}; "
                            f"residential {_rate_phrase(by.get(REFERENCE), ctx.marker)}.")
    if not heads:
        s.unavailable.append("not available: results.json holds no rates by level of care")
    ni = _preferred([x for x in ctx.noninferiority if x.get("arm", ARM) == ARM])
    if ni:
        head = [x for x in ni if str(x.get("definition_id")) in heads] or ni[:4]
        for x in head:
            s.paragraphs.append(_ni_sentence(x, ctx))
        if len(ni) > len(head):
            s.paragraphs.append(f"Non-inferiority for all {len(ni)} definitions: see 'IOP compared with "
                                "residential'.")
    else:
        s.paragraphs.append("Non-inferiority of IOP to residential: not available: no non-inferiority "
                            "analysis in these results.")
    if ctx.flags:
        s.paragraphs.append("Data-quality flags:")
        s.bullets += list(ctx.flags)
    else:
        s.paragraphs.append("Data-quality flags: none raised by the checks in this report.")
    return s


def _ni_sentence(x: Mapping[str, Any], ctx: _Context) -> str:
    label = ctx.labels.get(str(x.get("definition_id")), x.get("definition_id"))
    margin = x.get("margin")
    if x.get("estimate") is None or x.get("ci_low") is None:
        return f"Non-inferiority for {label}: not shown ({x.get('conclusion') or 'small numbers'})."
    conclusion = x.get("conclusion")
    if not conclusion and margin is not None:
        lo, hi = x["ci_low"], x["ci_high"]
        conclusion = "non-inferior" if lo > -margin else "inferior" if hi < -margin else "inconclusive"
    m = f" with a margin of {100 * margin:.1f} percentage points" if margin is not None else ""
    if conclusion and len(str(conclusion)) > 40:  # the analysis wrote the verdict as a sentence
        return f"{label}: {str(conclusion)[0].upper()}{str(conclusion)[1:]} ({x.get('method', 'adjusted')})."
    return (f"Was IOP non-inferior to residential for {label}? {str(conclusion).capitalize()}{m}: "
            f"difference {100 * x['estimate']:+.1f} points (95% CI {100 * x['ci_low']:+.1f} to "
            f"{100 * x['ci_high']:+.1f}; {x.get('method', 'adjusted')}).")


def _data_quality(ctx: _Context) -> Section:
    s = Section("data-quality", "Data quality")
    agg, rule = ctx.agg, ctx.rule
    if agg.ledger:
        t = tables.ledger_table(agg.ledger, rule.name)
        s.tables.append(t)
        read = sum(x["rows_read"] or 0 for x in agg.ledger)
        quarantined = sum(x["rows_quarantined"] or 0 for x in agg.ledger)
        refused = sum(1 for x in agg.ledger if x["status"] == "refused")
        s.paragraphs.append(f"{len(agg.ledger)} files received; {refused} refused whole.")
        if refused:
            ctx.flags.append(f"{refused} file(s) refused whole at ingestion.")
        if read and quarantined / read > 0.05:
            ctx.flags.append(f"{_pct(quarantined / read)} of rows read were quarantined (above 5%).")
    else:
        s.unavailable.append(f"ingest ledger: not available: {agg.missing.get('ledger') or agg.missing.get('warehouse', 'no files ingested')}")
    if agg.quarantine:
        s.tables.append(tables.quarantine_table(agg.quarantine, rule.name))
    elif agg.ledger:
        s.paragraphs.append("No rows were quarantined.")
    if agg.followup:
        shown = disclosure.apply_rates(agg.followup, rule=rule)
        t = tables.rates_table(agg.followup, shown, {f"followup_response_{w}d": f"Follow-up reached, {w} days"
                                                     for w in (30, 90, 180, 365)},
                               id="table-followup", title="Follow-up response rate (target 80%)",
                               note="Reached / discharges whose window had passed by the latest discharge "
                                    "date (native records only).")
        s.tables.append(t)
        rated = [x for x in shown if x.get("rate") is not None]
        low = [x for x in rated if x["rate"] < FOLLOWUP_TARGET]
        if low:
            worst = min(low, key=lambda x: x["rate"])
            ctx.flags.append(f"follow-up response is below the 80% target in {len(low)} of {len(rated)} "
                             f"window/level cells shown (lowest {_pct(worst['rate'])}: {worst['group']} at "
                             f"{worst['window_days']} days).")
    else:
        s.unavailable.append(f"follow-up response: not available: {agg.missing.get('followup', 'no follow-ups')}")
    validation = ctx.results.get("validation") or {}
    checks = validation.get("checks") or []
    if checks:
        recs = [{**c, "failing_rows": disclosure.shown_count(c.get("failing_rows"), rule)} for c in checks]
        import pandas as pd

        t = tables.simple_table("table-validation", "Validation results", recs,
                                ["check_id", "category", "status", "failing_rows"], {"failing_rows": "int"})
        t.count_cols = ("failing_rows",)
        t.hidden = pd.DataFrame({"failing_rows": [r["failing_rows"] is None and c.get("failing_rows")
                                                  not in (None, 0) for r, c in zip(recs, checks)]})
        s.tables.append(t)
        failed = [c for c in checks if str(c.get("status")).lower() in ("failed", "error")]
        if failed:
            ctx.flags.append(f"{len(failed)} validation check(s) failed.")
    else:
        s.unavailable.append("validation results: not available: results.json holds no validation section")
    docs = ctx.data_docs or validation.get("data_docs")
    if docs:
        s.links.append(("Data Docs (validation detail)", str(docs)))
    for item in ctx.results.get("not_applicable") or []:
        s.paragraphs.append(f"Definition {item.get('id')}: {item.get('note')}.")
    return s


def _cohort(ctx: _Context) -> Section:
    s = Section("cohort", "Who was served")
    agg = ctx.agg
    if not agg.cohort:
        s.unavailable.append(f"not available: {agg.missing.get('mart') or agg.missing.get('warehouse', 'no episodes')}")
        return s
    t = tables.cohort_table(agg.cohort, ctx.rule.name)
    s.tables.append(t)
    frame = t.frame
    total_i = len(frame) - 1
    ctx.facts["episodes"] = t.text(total_i, "episodes", ctx.marker)
    ctx.facts["sites"] = agg.sites
    ctx.facts["by_level"] = ", ".join(f"{frame.iloc[i]['level_group']} {t.text(i, 'episodes', ctx.marker)}"
                                      for i in range(total_i))
    window = [q for q in ctx.facts["window"] if q in agg.quarters] or agg.quarters
    if window:
        ctx.facts["first_quarter"], ctx.facts["last_quarter"] = window[0], window[-1]
    if "teds-d" in agg.sources:
        s.paragraphs.append("Includes SAMHSA TEDS-D discharges: they carry no follow-ups, person links or "
                            "standardized instruments.")
    one = tables.table_one(agg.categorical, agg.continuous, ctx.rule.name, ARM, REFERENCE)
    if one is not None:
        s.tables.append(one)
        big = [one.frame.iloc[i] for i in range(len(one.frame))
               if one.frame.iloc[i]["smd"] is not None and abs(one.frame.iloc[i]["smd"]) > SMD_THRESHOLD]
        s.paragraphs.append(f"{len(big)} baseline rows differ between IOP and residential by more than "
                            f"{SMD_THRESHOLD} SMD before adjustment: people are not sent to a level of care "
                            "at random, which is why the comparison below is adjusted.")
    return s


def _rates(ctx: _Context) -> Section:
    s = Section("rates", "Success rates by definition")
    key = next((k for k in tables.LEVEL_KEYS if ctx.rows((k,))[0]), None)
    if key is None:
        s.unavailable.append("not available: results.json holds no rates by level of care")
        return s
    raw, shown = ctx.rows((key,))
    s.paragraphs.append("Every common definition of success, computed on the same discharges. The rate moves "
                        "with the definition: read a program's 'success rate' only with its definition.")
    groups = sorted({x.get("group") for x in shown if x.get("group") is not None}, key=tables.level_order)
    s.charts.append(charts.rates_by_definition(shown, ctx.labels, groups))
    s.tables.append(tables.rates_table(raw, shown, ctx.labels, id="table-rates",
                                       title=f"Success rates by {key.replace('_', ' ')} (95% intervals)"))
    return s


def _comparison(ctx: _Context) -> Section:
    s = Section("comparison", "IOP compared with residential")
    rows = [x for x in ctx.comparisons if x.get("arm", ARM) == ARM]
    if not rows:
        s.unavailable.append("comparison: not available: results.json holds no comparisons yet")
    else:
        margins = {str(x["definition_id"]): float(x["margin"]) for x in ctx.noninferiority
                   if x.get("margin") is not None}
        rows = sorted(rows, key=lambda x: str(x.get("method")) != "crude")
        s.charts.append(charts.forest(rows, ctx.labels, margins))
        s.tables.append(tables.comparisons_table(rows, ctx.labels))
    if ctx.noninferiority:
        s.tables.append(tables.simple_table(
            "table-noninferiority", "Non-inferiority of IOP to residential",
            [{**x, "definition": ctx.labels.get(str(x.get("definition_id")))} for x in ctx.noninferiority],
            ["definition", "method", "margin", "estimate", "ci_low", "ci_high", "conclusion"],
            {"margin": "num3", "estimate": "num3", "ci_low": "num3", "ci_high": "num3"},
            headers={"ci_low": "95% CI low", "ci_high": "95% CI high"}))
    balance = _balance_rows(ctx.results.get("balance") or [])
    if balance:
        s.charts.append(charts.love_plot(balance))
        worst = max((abs(x["smd_adjusted"]) for x in balance if x.get("smd_adjusted") is not None), default=None)
        if worst is not None and worst > SMD_THRESHOLD:
            ctx.flags.append(f"after adjustment a covariate's |SMD| is {worst:.2f} (> {SMD_THRESHOLD}): the "
                             "adjusted comparison may be biased.")
        s.tables.append(tables.simple_table("table-balance", "Covariate balance", balance,
                                            ["covariate", "smd_unadjusted", "smd_adjusted"],
                                            {"smd_unadjusted": "num3", "smd_adjusted": "num3"}))
    else:
        s.unavailable.append("balance: not available: results.json holds no balance rows")
    diag = ctx.results.get("diagnostics") or {}
    prop = diag.get("propensity") or {}
    if prop.get("bin_edges") and prop.get("counts"):
        s.charts.append(_overlap_chart(prop, ctx))
    else:
        s.unavailable.append("propensity overlap: not available: no propensity diagnostics in results.json")
    adjusted = [dict(x) for x in diag.get("adjusted") or []]
    if not adjusted and any(k in diag for k in ("equipoise", "share_truncated", "max_abs_smd_after")):
        adjusted = [{k: diag.get(k) for k in ("equipoise", "share_truncated", "max_abs_smd_after")}]
    if adjusted:
        cols = [c for c in ("population", "method", "c_statistic", "equipoise", "ess_arm", "ess_reference",
                            "share_truncated", "max_abs_smd_after", "passed", "note")
                if any(c in x for x in adjusted)]
        s.tables.append(tables.simple_table("table-diagnostics", "Diagnostics of the adjusted comparison",
                                            adjusted, cols, {c: "num3" for c in cols if c not in
                                                             ("population", "method", "passed", "note")}))
        low = [x["equipoise"] for x in adjusted if x.get("equipoise") is not None and x["equipoise"] < EQUIPOISE_MIN]
        if low:
            ctx.flags.append(f"equipoise {min(low):.2f} is below {EQUIPOISE_MIN}: IOP and residential "
                             "patients overlap too little for a trustworthy adjusted comparison.")
    mod = [x for x in ctx.results.get("modification") or []]
    if mod:
        s.tables.append(tables.simple_table(
            "table-modification", "Effect modification (adjusted risk difference within subgroups)",
            [{**x, "definition": ctx.labels.get(str(x.get("definition_id")), x.get("definition_id"))} for x in mod],
            ["definition", "modifier", "level", "estimate", "ci_low", "ci_high", "interaction_p_value"],
            {"estimate": "num3", "ci_low": "num3", "ci_high": "num3", "interaction_p_value": "num3"},
            note="Rychtarik 2000: heavier involvement may do better in residential care; a small interaction "
                 "p-value says the IOP-residential difference varies across the subgroups."))
    return s


def _balance_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per covariate, from the first population and the preferred weighting method."""
    if not rows:
        return []
    population = rows[0].get("population")
    mine = [x for x in rows if x.get("population") == population]
    methods = list(dict.fromkeys(x.get("method") for x in mine))
    method = next((m for m in ("iptw", "overlap", *methods) if m in methods), None)
    out: dict[str, dict[str, Any]] = {}
    for x in mine:
        if x.get("method") != method:
            continue
        cov = str(x.get("covariate") or x.get("term"))
        out.setdefault(cov, {"covariate": cov, "method": method,
                             "smd_unadjusted": x.get("smd_unadjusted", x.get("smd_before")),
                             "smd_adjusted": x.get("smd_adjusted", x.get("smd_after"))})
    return list(out.values())


def _overlap_chart(prop: Mapping[str, Any], ctx: _Context):
    import pandas as pd

    edges = list(prop["bin_edges"])
    names = list(prop["counts"])
    df = pd.DataFrame({n: list(prop["counts"][n]) for n in names})
    df.insert(0, "bin", range(len(df)))
    shown, _ = disclosure.suppress_table(df, names, rule=ctx.rule)
    shown = shown.iloc[:-1]  # drop the total row
    counts = {n: list(shown[n]) for n in names}
    disclosure.check_artifact(shown, names, rule=ctx.rule, name="propensity overlap")
    arm = ARM if ARM in counts else names[0]
    ref = REFERENCE if REFERENCE in counts else names[-1]
    return charts.overlap(edges, counts, arm, ref)


def _survival(ctx: _Context) -> Section:
    s = Section("survival", "Time to readmission")
    km = (ctx.results.get("survival") or {}).get("readmission") or {}
    groups = km.get("groups") or {}
    if not groups:
        why = (ctx.results.get("survival") or {}).get("not_available")
        s.unavailable.append(f"not available: {why or 'results.json holds no readmission survival curves'}")
        return s
    curves = {}
    for g, c in groups.items():
        n = len(c.get("time") or [])
        if c.get("at_risk") is None:  # disclosed by the analysis already: grid points only
            curves[g] = [{"time": c["time"][i], "survival": c["survival"][i],
                          "ci_low": (c.get("ci_low") or [None] * n)[i], "ci_high": (c.get("ci_high") or [None] * n)[i]}
                         for i in range(n)]
            continue
        curves[g] = disclosure.apply_km(c.get("time", []), c.get("survival", []), c.get("at_risk", []),
                                        c.get("ci_low"), c.get("ci_high"), rule=ctx.rule)
    risk = km.get("risk_table") or {}
    times = list(risk.get("times") or [])
    at_risk = {g: disclosure.apply_risk_table(v, ctx.rule) for g, v in (risk.get("at_risk") or {}).items()}
    s.charts.append(charts.kaplan_meier(curves, times, at_risk, ctx.marker))
    recs = [{"group": g, **{f"at_risk_day_{int(t)}": n for t, n in zip(times, v)}} for g, v in at_risk.items()]
    cols = ["group"] + [f"at_risk_day_{int(t)}" for t in times]
    import pandas as pd

    t = tables.simple_table("table-at-risk", "Numbers at risk", recs, cols, {c: "int" for c in cols[1:]},
                            headers={c: f"day {c.rsplit('_', 1)[1]}" for c in cols[1:]})
    t.count_cols = tuple(cols[1:])
    t.hidden = pd.DataFrame({c: [x.get(c) is None for x in recs] for c in cols[1:]})
    s.tables.append(t)
    cox = km.get("cox") or {}
    if cox.get("hazard_ratio") is not None:
        s.paragraphs.append(
            f"Hazard ratio of readmission, IOP vs residential ({cox.get('method', 'Cox')}): "
            f"{cox['hazard_ratio']:.2f} (95% CI {cox.get('ci_low', float('nan')):.2f}–{cox.get('ci_high', float('nan')):.2f}); "
            f"proportional-hazards check p = {cox.get('ph_test_p_value', float('nan')):.3f}.")
    return s


def _trend_series(ctx: _Context) -> tuple[str | None, dict[str, dict[str, Any]]]:
    window = ctx.facts["window"]
    multi = [b for a, b in ctx.pairs if "," in str(a.get("group_by"))
             and any(k in str(a.get("group_by")) for k in tables.QUARTER_KEYS)]
    single = [b for a, b in ctx.pairs if str(a.get("group_by")) in tables.QUARTER_KEYS]
    candidates = list(HEADLINE) + list(ctx.labels)
    for rows, multi_dim in ((multi, True), (single, False)):
        for d in candidates:
            mine = [x for x in rows if str(x.get("definition_id")) == d]
            if not mine:
                continue
            series: dict[str, dict[str, Any]] = {}
            for x in mine:
                parts = str(x.get("group")).split("|")
                g, qq = (parts[0], parts[-1]) if multi_dim else ("all levels", parts[-1])
                if window and qq not in window:
                    continue
                series.setdefault(g, {}).setdefault(qq, x)
            if not series:
                continue
            out = {}
            for g in sorted(series, key=tables.level_order):
                if multi_dim and g not in (ARM, REFERENCE) and len(series) > 2:
                    continue
                qs = window or sorted(series[g])
                rows_q = [series[g].get(qq, {}) for qq in qs]
                pbar, limits = tables.p_chart_limits(rows_q)
                out[g] = {"quarters": qs, "rate": [x.get("rate") for x in rows_q],
                          "ci_low": [x.get("ci_low") for x in rows_q], "ci_high": [x.get("ci_high") for x in rows_q],
                          "numerator": [x.get("numerator") for x in rows_q],
                          "denominator": [x.get("denominator") for x in rows_q], "pbar": pbar, "limits": limits,
                          "present": [bool(x) for x in rows_q]}
            return d, out
    return None, {}


def _trends(ctx: _Context) -> Section:
    s = Section("trends", f"Trends over the last {TREND_QUARTERS} quarters")
    d, series = _trend_series(ctx)
    if d is None:
        s.unavailable.append("not available: results.json holds no rates by quarter")
        return s
    label = ctx.labels.get(d, d)
    s.charts.append(charts.trends(series, label))
    recs = []
    for g, x in series.items():
        for i, qq in enumerate(x["quarters"]):
            lim = x["limits"][i]
            signal = None
            if lim and x["rate"][i] is not None:
                signal = "above" if x["rate"][i] > lim[1] else "below" if x["rate"][i] < lim[0] else ""
            recs.append({"group": g, "quarter": qq, "present": x["present"][i], "numerator": x["numerator"][i],
                         "denominator": x["denominator"][i], "rate": x["rate"][i], "ci_low": x["ci_low"][i],
                         "ci_high": x["ci_high"][i], "lcl": lim[0] if lim else None,
                         "ucl": lim[1] if lim else None, "signal": signal})
    import pandas as pd

    t = tables.simple_table("table-trend", f"{label} by quarter, with p-chart limits", recs,
                            ["group", "quarter", "numerator", "denominator", "rate", "ci_low", "ci_high", "lcl",
                             "ucl", "signal"],
                            {"numerator": "int", "denominator": "int", "rate": "pct", "ci_low": "pct",
                             "ci_high": "pct", "lcl": "pct", "ucl": "pct"},
                            note="Centre line and limits use shown quarters only.")
    t.count_cols = ("numerator", "denominator")
    # a quarter with a row but no value was suppressed; a quarter without a row has no data
    t.hidden = pd.DataFrame({c: [x["present"] and x[c] is None for x in recs]
                             for c in ("numerator", "denominator", "rate", "ci_low", "ci_high")})
    s.tables.append(t)
    return s


def _sites(ctx: _Context) -> Section:
    s = Section("sites", "Sites compared")
    raw_all, shown_all = ctx.rows(tables.SITE_KEYS)
    candidates = list(HEADLINE) + list(ctx.labels)
    d = next((d for d in candidates if any(str(x.get("definition_id")) == d for x in shown_all)), None)
    if d is None:
        s.unavailable.append("not available: results.json holds no rates by site")
        return s
    pairs = [(a, b) for a, b in zip(raw_all, shown_all) if str(b.get("definition_id")) == d]
    raw, shown = [a for a, _ in pairs], [b for _, b in pairs]
    points = [dict(x) for x in shown if x.get("rate") is not None and x.get("denominator")]
    label = ctx.labels.get(d, d)
    if not points:
        s.unavailable.append("funnel plot: not available: every site's rate is too small to show")
    else:
        pbar = sum(p["numerator"] for p in points) / sum(p["denominator"] for p in points)
        for p in points:
            lo, hi = tables.funnel_limits(pbar, p["denominator"], 3.090232)
            p["outlier"] = p["rate"] < lo or p["rate"] > hi
        s.charts.append(charts.funnel(points, pbar, label))
        out = [p["group"] for p in points if p["outlier"]]
        s.paragraphs.append(f"{len(points)} sites shown for {label}; {len(shown) - len(points)} not shown "
                            f"(small numbers). Outside the 99.8% limits: {', '.join(map(str, out)) or 'none'}.")
    s.tables.append(tables.rates_table(raw, shown, ctx.labels, id="table-sites", title=f"{label} by site",
                                       group_title="site"))
    return s


def _stepdown(ctx: _Context) -> Section:
    s = Section("stepdown", "Step-down from residential to IOP")
    rows = ctx.agg.stepdown
    if not rows:
        s.unavailable.append(f"not available: {ctx.agg.missing.get('stepdown') or ctx.agg.missing.get('mart', 'no data')}")
        return s
    shown = disclosure.apply_rates(rows, rule=ctx.rule)
    lab = {"stepdown_iop_14d": "Stepped down to IOP within 14 days"}
    by_q = [(a, b) for a, b in zip(rows, shown) if a["group_by"] == "discharge_quarter"]
    if by_q:
        s.charts.append(charts.stepdown([b for _, b in by_q]))
    s.paragraphs.append("Share of residential discharges followed by an IOP admission within 14 days "
                        "(continuity of care after high-intensity treatment, as in HEDIS FUI).")
    for by, title in (("discharge_quarter", "by quarter"), ("level_of_care", "by residential setting")):
        sel = [(a, b) for a, b in zip(rows, shown) if a["group_by"] == by]
        if sel:
            s.tables.append(tables.rates_table([a for a, _ in sel], [b for _, b in sel], lab,
                                               id=f"table-stepdown-{by.split('_')[-1]}",
                                               title=f"Step-down {title}", group_title=by.replace("_", " ")))
    return s


def _appendix(ctx: _Context, definitions: Sequence[Mapping[str, Any]]) -> Section:
    s = Section("appendix", "Appendix: definitions and methods")
    if definitions:
        recs = [{"id": d.get("id"), "version": d.get("version"), "label": d.get("label"),
                 "description": d.get("description"), "population": d.get("population") or "every episode",
                 "success": d.get("success"), "missing": d.get("missing"),
                 "references": "; ".join(d.get("references") or [])} for d in definitions]
        s.tables.append(tables.simple_table("table-definitions", "Success definitions (from the registry)", recs,
                                            list(recs[0])))
    else:
        s.unavailable.append("definitions: not available: results.json lists no definitions")
    methods = sorted({str(x.get("ci_method")) for _, x in ctx.pairs if x.get("ci_method")})
    adj = sorted({str(x.get("method")) for x in ctx.comparisons if x.get("method") not in (None, "crude")})
    s.bullets += [
        "Rates: successes / episodes in the definition's population; 95% intervals by "
        f"{', '.join(methods) or 'the method named in each row'}.",
        "Comparison: crude risk difference beside adjusted estimates "
        f"({', '.join(adj) or 'none in these results'}); balance is acceptable when every |SMD| <= 0.1 "
        "(OHDSI CohortMethod); non-inferiority is a claim about the lower interval bound against a stated "
        "margin, never 'p > 0.05'.",
        "Trends: p-chart, centre line = pooled rate of the shown quarters, limits = centre ± 3·sqrt(p(1-p)/n).",
        "Sites: funnel plot, limits = overall rate ± z·sqrt(p(1-p)/n) with z = 1.96 (95%) and 3.09 (99.8%).",
        "Time to readmission: Kaplan–Meier, read every 15 days; each drop stands for 0 or more than "
        f"{ctx.rule.high} readmissions and the curve stops when few remain at risk.",
        f"Disclosure control ({ctx.rule.name}): {ctx.rule.note}",
        f"Results run {ctx.results.get('run_id', '–')}, created {ctx.results.get('created_at', '–')}, "
        f"levelcare {ctx.results.get('levelcare_version', '–')}.",
    ]
    if ctx.results.get("inputs"):
        s.tables.append(tables.simple_table("table-inputs", "Input files", ctx.results["inputs"],
                                            ["file_name", "kind", "file_sha256"]))
    return s


def find_data_docs(*folders: Path | None) -> str | None:
    for folder in folders:
        if folder is None:
            continue
        for rel in ("data_docs/index.html", "gx/uncommitted/data_docs/local_site/index.html"):
            if (Path(folder) / rel).is_file():
                return str(Path(folder) / rel)
    return None
