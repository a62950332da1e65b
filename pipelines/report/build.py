"""Assemble the report (sections in reading order) from the results model alone.

The results model (:mod:`pipelines.results`) holds every number already disclosed; this
module only arranges, labels and draws them. It opens no warehouse and recomputes no
number: a report written after ``rerun`` shows that run's numbers only. The summary's
sentences are written from the same rows as the tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipelines import disclosure
from pipelines.report import charts, tables
from pipelines.report.model import Report, Section

HEADLINE = ("completion", "retention_90d", "abstinent_90d_itt", "abstinent_90d_cc", "no_readmission_30d",
            "phq9_response")
FOLLOWUP_TARGET = 0.80  # GPRA: grantees are held to an 80% follow-up rate
FOLLOWUP_PREFIX = "followup_reached_"
SMD_THRESHOLD, EQUIPOISE_MIN = 0.1, 0.2  # OHDSI CohortMethod diagnostics
ADJUSTED_PREFERENCE = ("aipw", "gcomp", "iptw_ate", "overlap")  # the headline adjusted method, in order
FOREST_METHODS = ("crude", "iptw_ate", "overlap", "gcomp", "aipw")
# the weighting behind each adjusted method whose estimate the report shows
WEIGHTING_OF = {"iptw_ate": "iptw_ate", "aipw": "iptw_ate", "iptw_att": "iptw_att", "overlap": "overlap"}
WEIGHTING_TITLES = {"iptw_ate": "IPTW weighting (ATE; also AIPW's weights)", "iptw_att": "IPTW weighting (ATT)",
                    "overlap": "overlap weighting (ATO)"}
# a definition's missing-data policy -> the comparisons' name for the same approach
POLICY_ROWS = {"failure": "itt", "exclude": "cc"}


def _forest_rows(rows: Sequence[Mapping[str, Any]], definitions: Sequence[Mapping[str, Any]] = ()
                 ) -> list[dict[str, Any]]:
    """The risk-difference rows of the forest plot: crude and the average-treatment-effect
    methods, under the definition's own missing-data policy (comparisons.csv keeps every row)."""
    policy = {str(d.get("id")): POLICY_ROWS.get(str(d.get("missing"))) for d in definitions}
    rd = [dict(x) for x in rows if x.get("estimand") == "rd" and str(x.get("method")) in FOREST_METHODS]
    chosen: dict[str, Any] = {}
    for x in rd:
        d, m = str(x.get("definition_id")), x.get("missing_data")
        order = (policy.get(d), None, "itt", "cc")
        rank = order.index(m) if m in order else 99
        if d not in chosen or rank < chosen[d][0]:
            chosen[d] = (rank, m)
    return [x for x in rd if x.get("missing_data") == chosen[str(x.get("definition_id"))][1]]


def _ni_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Non-inferiority rows with the figures of their margin basis: ``margin`` (percentage points,
    or a risk ratio), ``value`` / ``ci_low`` / ``ci_high`` (the risk difference in percentage
    points, or the risk ratio, with its 95% interval) and ``margin_rd`` (the absolute margin on
    the 0-1 scale of the forest plot; None on a relative basis, whose margin is not a difference)."""
    out = []
    for x in rows:
        if x.get("margin_basis") == "relative":
            figures = [x.get(k) for k in ("margin_ratio", "rr", "rr_ci95_low", "rr_ci95_high")]
        else:
            figures = [x.get("margin_pp"), *(None if x.get(k) is None else 100 * x[k]
                                             for k in ("estimate", "ci95_low", "ci95_high"))]
        if x.get("margin_basis") is None:  # hidden: the basis would say on which side of 20% the rate is
            figures[0] = None
        out.append({**x, **dict(zip(("margin", "value", "ci_low", "ci_high"), figures, strict=True)),
                    "margin_rd": x["margin_pp"] / 100 if x.get("margin_basis") == "absolute" else None})
    return out


_BASIS = {"absolute": "absolute (risk difference, pp)", "relative": "relative (risk ratio)"}


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


def _rate_phrase(r: Mapping[str, Any] | None, ctx: _Context) -> str:
    if r is None:
        return "no data"
    if r.get("rate") is None:
        if r.get("denominator") == 0:
            return "no one in the population"
        why = "withheld to protect a small count" if r.get("suppression") == "complementary" else "small numbers"
        return f"not shown ({ctx.marker_of(r)}: {why})"
    n = f"; {r['numerator']:,}/{r['denominator']:,}" if r.get("numerator") is not None else ""
    if r.get("ci_low") is None:
        return f"{_pct(r['rate'])}{n}"
    return f"{_pct(r['rate'])} (95% CI {_pct(r['ci_low'])}–{_pct(r['ci_high'])}{n})"


def build_report(results: Mapping[str, Any], *, data_docs: Sequence[tuple[str, str]] = ()) -> Report:
    """The report of ``results`` (a results model as a dict); ``data_docs``: (file name, href)
    of each file's great-expectations Data Docs, relative to where the report is written."""
    d = results["disclosure"]
    definitions = list(results.get("definitions") or [])
    labels = tables.definition_labels(definitions)
    ctx = _Context(results=results, labels=labels, marker=d["marker"], complementary=d["complementary_marker"],
                   rule=disclosure.get_rule(d["rule"]), data_docs=list(data_docs), definitions=definitions)
    ctx.arm = results["diagnostics"]["arm"]
    ctx.reference = results["diagnostics"]["reference"]
    ctx.comparisons = [x for x in _forest_rows(results.get("comparisons") or [], definitions)
                       if x.get("arm") == ctx.arm]
    ctx.noninferiority = _ni_rows(results.get("noninferiority") or [])
    sections = [
        _data_quality(ctx), _cohort(ctx), _rates(ctx), _comparison(ctx), _survival(ctx), _trends(ctx),
        _sites(ctx), _stepdown(ctx), _appendix(ctx),
    ]
    sections.insert(0, _summary(ctx))  # last: it reads the facts and flags the others found
    note = d["note"]
    if d["complementary_marker"] != d["marker"]:
        note += (f" {d['complementary_marker']} not shown: withheld only so that a small count elsewhere cannot "
                 "be worked out from totals.")
    return Report(
        title="Outcomes after intensive outpatient and residential treatment",
        period=results["period"]["label"], run_id=str(results.get("run_id", "")),
        created_at=str(results.get("created_at", "")), rule_name=d["rule"], marker=d["marker"],
        disclosure_note=note, sections=sections, complementary_marker=d["complementary_marker"],
    )


class _Context:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)
        self.flags: list[str] = []
        self.facts: dict[str, Any] = {}
        self.not_applicable = {x["id"]: x["note"] for x in self.results.get("not_applicable") or []}

    def rows(self, keys: Sequence[str], section: str = "rates") -> list[dict]:
        return [x for x in self.results.get(section) or [] if str(x.get("group_by")) in keys]

    def marker_of(self, row: Mapping[str, Any]) -> str:
        return self.complementary if row.get("suppression") == "complementary" else self.marker


# --------------------------------------------------------------------------- sections
def _summary(ctx: _Context) -> Section:
    s = Section("summary", "Summary")
    f = ctx.facts
    period = ctx.results["period"]["label"]
    if f.get("episodes") is not None:
        s.paragraphs.append(
            f"Who was served: {f['episodes']} discharges ({period}) from {f.get('sites', '–')} programs "
            f"were analysed: {f.get('by_level', '')}."
        )
    else:
        s.paragraphs.append(f"Who was served: not available: no discharges in the period ({period}).")
    shown = ctx.rows(("level_group",)) or ctx.rows(("level_of_care",))
    present = list(dict.fromkeys(str(x.get("definition_id")) for x in shown))
    heads = [d for d in HEADLINE if d in present] or present[:4]
    if heads:
        s.paragraphs.append("Headline success rates (definition id and people counted in brackets; more "
                            "definitions in 'Success rates by definition'):")
    for d in heads:
        by = {x.get("group"): x for x in shown if str(x.get("definition_id")) == d}
        s.paragraphs.append(f"{ctx.labels.get(d, d)} [{d}]: IOP {_rate_phrase(by.get(ctx.arm), ctx)}; "
                            f"residential {_rate_phrase(by.get(ctx.reference), ctx)}.")
    if not heads:
        s.unavailable.append("not available: the results hold no rates by level of care for the period")
    ni = _preferred([x for x in ctx.noninferiority if x.get("arm") == ctx.arm])
    if ni:
        head = [x for x in ni if str(x.get("definition_id")) in heads] or ni[:4]
        for x in head:
            s.paragraphs.append(_ni_sentence(x, ctx))
        if len(ni) > len(head):
            s.paragraphs.append(f"Non-inferiority for all {len(ni)} applicable definitions: see 'IOP compared "
                                "with residential'.")
    else:
        why = ctx.results["diagnostics"].get("not_estimable") or "no non-inferiority analysis in these results"
        s.paragraphs.append(f"Non-inferiority of IOP to residential: not available: {why}.")
    if ctx.flags:
        s.paragraphs.append("Data-quality flags:")
        s.bullets += list(ctx.flags)
    else:
        s.paragraphs.append("Data-quality flags: none raised by the checks in this report.")
    return s


def _ni_sentence(x: Mapping[str, Any], ctx: _Context) -> str:
    label = ctx.labels.get(str(x.get("definition_id")), x.get("definition_id"))
    conclusion = f"{str(x['conclusion'])[0].upper()}{str(x['conclusion'])[1:]}" if x.get("conclusion") else ""
    if x.get("margin_basis") == "relative":
        if x.get("rr") is None or x.get("ci_low") is None:
            return f"Non-inferiority for {label}: not shown ({x.get('conclusion') or 'small numbers'})."
        why = str(x.get("margin_basis_reason") or "").removeprefix("relative: ")
        return (f"{label} [{x.get('definition_id')}]: {conclusion} (relative margin: a risk ratio of "
                f"{x['margin_ratio']:g}, {'because ' + why if why else 'as set'}; {x.get('method')}).")
    if x.get("estimate") is None or x.get("ci_low") is None:
        return f"Non-inferiority for {label}: not shown ({x.get('conclusion') or 'small numbers'})."
    return (f"{label} [{x.get('definition_id')}]: {conclusion} "
            f"(difference {x['value']:+.1f} percentage points, 95% CI {x['ci_low']:+.1f} to "
            f"{x['ci_high']:+.1f}; {x.get('method')}).")


def _margin_rule(diag: Mapping[str, Any]) -> str:
    """The methods' sentence on the non-inferiority margins and the rule choosing between them."""
    pp, ratio, basis = diag.get("margin_pp", 5.0), diag.get("margin_ratio", 0.8), diag.get("margin_basis", "auto")
    both = (f"Non-inferiority margins: absolute, {pp:g} percentage points on the risk difference; relative, a risk "
            f"ratio of {ratio:g} (IOP keeps at least {ratio:.0%} of residential's successes). Non-inferior when "
            "the lower 95% limit is above the margin; equivalent when the 90% interval lies within ±the margin "
            f"(for the ratio: {ratio:g} to {1 / ratio:.3g}). ")
    if basis == "auto":
        return both + (f"The verdict shown is absolute unless the residential rate is below 20%, then relative: "
                       f"at a low rate a fixed {pp:g} points is most of the successes (at 5% it is all of them) and "
                       "would call an IOP that keeps a third of them 'equivalent'. Both verdicts are in results.json.")
    return both + f"The verdict shown is {basis} for every definition (set in the analysis); both are in results.json."


def _data_quality(ctx: _Context) -> Section:
    s = Section("data-quality", "Data quality")
    dq = ctx.results["data_quality"]
    ledger = dq.get("ledger") or []
    if ledger:
        s.tables.append(tables.ledger_table(ledger))
        refused = sum(1 for x in ledger if x["status"] == "refused")
        s.paragraphs.append(f"{len(ledger)} files received; {refused} refused whole.")
        if refused:
            ctx.flags.append(f"{refused} file(s) refused whole at ingestion.")
        read = sum(x["rows_read"] or 0 for x in ledger)
        quarantined = sum(x["rows_quarantined"] or 0 for x in ledger)
        if read and quarantined / read > 0.05:
            ctx.flags.append(f"{_pct(quarantined / read)} of rows read were quarantined (above 5%).")
    else:
        s.unavailable.append("ingest ledger: not available: no files were ingested into this warehouse")
    if dq.get("quarantine"):
        s.tables.append(tables.quarantine_table(dq["quarantine"]))
    elif ledger:
        s.paragraphs.append("No rows were quarantined.")
    _followup(ctx, s)
    _validation(ctx, s, dq.get("validation") or {})
    for item in ctx.results.get("not_applicable") or []:
        s.paragraphs.append(f"Definition {item['id']}: {item['note']}.")
    return s


def _followup(ctx: _Context, s: Section) -> None:
    """Follow-up response: the registry's followup_reached_* definitions (the same numbers as
    rates.csv); a window the program does not run is not applicable, never 0%."""
    rows = [x for x in ctx.rows(("level_group",)) if str(x["definition_id"]).startswith(FOLLOWUP_PREFIX)]
    na = sorted((k for k in ctx.not_applicable if k.startswith(FOLLOWUP_PREFIX)), key=_window)
    if rows:
        by_window = sorted({str(x["definition_id"]) for x in rows}, key=_window)  # 30, 90, 180, 365 days
        s.tables.append(tables.rates_table(
            rows, {d: ctx.labels.get(d, d) for d in by_window}, id="table-followup", title="Follow-up response rate (target 80%)",
            note="Reached / native discharges whose window had ended by the data end date (deaths excluded), as "
                 "in the followup_reached_* definitions."))
        rated = [x for x in rows if x.get("rate") is not None]
        low = [x for x in rated if x["rate"] < FOLLOWUP_TARGET]
        if low:
            worst = min(low, key=lambda x: x["rate"])
            ctx.flags.append(f"follow-up response is below the 80% target in {len(low)} of {len(rated)} "
                             f"window/level cells shown (lowest {_pct(worst['rate'])}: {worst['group']} at "
                             f"{_window(worst['definition_id'])} days).")
    for d in na:
        s.paragraphs.append(f"Follow-up at {_window(d)} days: {ctx.not_applicable[d]} "
                            "(the program does not run this window).")
    if not rows and not na:
        s.unavailable.append("follow-up response: not available: no followup_reached_* definition was analysed")


def _window(definition_id: str) -> int:
    return int(str(definition_id).removeprefix(FOLLOWUP_PREFIX).rstrip("d"))


def _validation(ctx: _Context, s: Section, validation: Mapping[str, Any]) -> None:
    files, checks = validation.get("files") or [], validation.get("checks") or []
    if not files:
        why = ("no validation report found for " + ", ".join(validation["missing"])) if validation.get("missing") \
            else "no file was loaded"
        s.unavailable.append(f"validation results: not available: {why}")
        return
    import pandas as pd

    recs = []
    for f in files:
        mine = [c for c in checks if c["file_sha256"] == f["file_sha256"]]
        recs.append({
            "file_name": f["file_name"], "suite": f["suite"], "rows_validated": f["rows_validated"],
            "sampled": "yes" if f["sampled"] else "no",
            "great_expectations": "passed" if f["success"] else "failed",
            "checks_passed": sum(c["status"] == "passed" for c in mine),
            "checks_failed": sum(c["status"] != "passed" for c in mine)})
    s.tables.append(tables.simple_table(
        "table-validation", "Validation results (levelcare checks and great-expectations suites)", recs,
        list(recs[0]), {"rows_validated": "int", "checks_passed": "int", "checks_failed": "int"},
        note="rows validated: great-expectations validates every row up to 50,000 and a systematic sample "
             "beyond; levelcare's own checks cover every row."))
    bad = [c for c in checks if c["status"] != "passed"]
    if bad:
        t = tables.simple_table("table-validation-failed", "Checks that did not pass", bad,
                                ["file_name", "source", "check_id", "category", "severity", "status",
                                 "failing_rows"], {"failing_rows": "int"})
        t.count_cols = ("failing_rows",)
        t.hidden = pd.DataFrame({"failing_rows": [c.get("suppression") for c in bad]}, dtype=object)
        s.tables.append(t)
        ctx.flags.append(f"{len(bad)} validation check(s) did not pass.")
    else:
        s.paragraphs.append(f"All {len(checks)} validation checks passed.")
    for name, href in ctx.data_docs:
        s.links.append((f"Data Docs (great-expectations validation detail): {name}", href))


def _cohort(ctx: _Context) -> Section:
    s = Section("cohort", "Who was served")
    cohort = ctx.results["cohort"]
    rows = cohort.get("rows") or []
    if not rows:
        s.unavailable.append(f"not available: no discharges in the period ({ctx.results['period']['label']})")
        return s
    t = tables.cohort_table(rows)
    s.tables.append(t)
    total_i = len(t.frame) - 1
    ctx.facts["episodes"] = t.text(total_i, "episodes", ctx.marker)
    ctx.facts["sites"] = cohort.get("sites")
    ctx.facts["by_level"] = ", ".join(f"{t.frame.iloc[i]['level_group']} {t.text(i, 'episodes', ctx.marker)}"
                                      for i in range(total_i))
    if "teds-d" in (cohort.get("sources") or []):
        s.paragraphs.append("Includes SAMHSA TEDS-D discharges: they carry no follow-ups, person links or "
                            "standardized instruments.")
    one = tables.table_one(ctx.results.get("table_one"))
    if one is not None:
        s.tables.append(one)
        big = [x for x in ctx.results["table_one"]["smd"] if x["smd"] is not None and abs(x["smd"]) > SMD_THRESHOLD]
        s.paragraphs.append(f"{len(big)} baseline rows differ between IOP and residential by more than "
                            f"{SMD_THRESHOLD} SMD before adjustment: people are not sent to a level of care "
                            "at random, which is why the comparison below is adjusted.")
    return s


def _rates(ctx: _Context) -> Section:
    s = Section("rates", "Success rates by definition")
    key = next((k for k in ("level_group", "level_of_care") if ctx.rows((k,))), None)
    if key is None:
        s.unavailable.append("not available: the results hold no rates by level of care")
        return s
    shown = ctx.rows((key,))
    s.paragraphs.append("Every common definition of success, computed on the same discharges. The rate moves "
                        "with the definition: read a program's 'success rate' only with its definition.")
    groups = sorted({x.get("group") for x in shown if x.get("group") is not None}, key=tables.level_order)
    s.charts.append(charts.rates_by_definition(shown, ctx.labels, groups))
    s.tables.append(tables.rates_table(shown, ctx.labels, id="table-rates",
                                       title=f"Success rates by {key.replace('_', ' ')} (95% intervals)"))
    if ctx.not_applicable:
        s.paragraphs.append("Not applicable to these data (left out of every table and chart): "
                            + "; ".join(f"{k} ({v})" for k, v in ctx.not_applicable.items()) + ".")
    return s


def _comparison(ctx: _Context) -> Section:
    s = Section("comparison", "IOP compared with residential")
    rows = ctx.comparisons
    ni = [x for x in ctx.noninferiority if x.get("arm") == ctx.arm]
    if not rows:
        why = ctx.results["diagnostics"].get("not_estimable") or "the results hold no comparisons"
        s.unavailable.append(f"comparison: not available: {why}")
    else:
        margins = {str(x["definition_id"]): float(x["margin_rd"]) for x in ni if x.get("margin_rd") is not None}
        relative = [str(x["definition_id"]) for x in ni if x.get("margin_basis") == "relative"]
        rows = sorted(rows, key=lambda x: str(x.get("method")) != "crude")
        s.charts.append(charts.forest(rows, ctx.labels, margins, relative=relative))
        s.tables.append(tables.comparisons_table(rows, ctx.labels))
    if ni:
        s.tables.append(tables.simple_table(
            "table-noninferiority", "Non-inferiority of IOP to residential",
            [{**x, "definition": ctx.labels.get(str(x.get("definition_id"))), "estimate": x.get("value"),
              "basis": _BASIS.get(str(x.get("margin_basis")))} for x in ni],
            ["definition", "method", "basis", "margin", "estimate", "ci_low", "ci_high", "conclusion"],
            {"margin": "num2", "estimate": "num2", "ci_low": "num2", "ci_high": "num2"},
            note="Each row on its margin basis: a risk difference in percentage points against an absolute margin, "
                 "or a risk ratio (IOP over residential) against a ratio margin; results.json holds both verdicts.",
            headers={"basis": "margin basis", "margin": "margin (pp or ratio)",
                     "estimate": "estimate (pp or ratio)", "ci_low": "95% CI low", "ci_high": "95% CI high"}))
        why = [f"{ctx.labels.get(str(x.get('definition_id')), x.get('definition_id'))}: "
               + str(x.get("margin_basis_reason")).removeprefix("relative: ")
               for x in ni if x.get("margin_basis") == "relative" and x.get("margin_basis_reason")]
        if why:
            s.paragraphs.append("Non-inferiority on a relative margin (risk ratio) where the residential rate is low: "
                                + "; ".join(dict.fromkeys(why)) + ".")
    _balance(ctx, s)
    diag = ctx.results["diagnostics"]
    prop = diag.get("propensity") or {}
    if prop.get("bin_edges") and prop.get("counts"):
        s.charts.append(_overlap_chart(prop, ctx))
    else:
        s.unavailable.append("propensity overlap: not available: no propensity diagnostics in the results")
    adjusted = [dict(x) for x in diag.get("adjusted") or []]
    if adjusted:
        cols = ["population", "definitions", "method", "c_statistic", "equipoise", "ess_arm", "ess_reference",
                "share_truncated", "max_abs_smd_after", "passed", "note"]
        s.tables.append(tables.simple_table("table-diagnostics", "Diagnostics of the adjusted comparison",
                                            adjusted, cols, {c: "num3" for c in cols[3:9]}))
        low = [x["equipoise"] for x in adjusted if x.get("equipoise") is not None and x["equipoise"] < EQUIPOISE_MIN]
        if low:
            ctx.flags.append(f"equipoise {min(low):.2f} is below {EQUIPOISE_MIN}: IOP and residential "
                             "patients overlap too little for a trustworthy adjusted comparison.")
    mod = list(ctx.results.get("modification") or [])
    if mod:
        s.tables.append(tables.simple_table(
            "table-modification", "Effect modification (adjusted risk difference within subgroups)",
            [{**x, "definition": ctx.labels.get(str(x.get("definition_id")), x.get("definition_id"))} for x in mod],
            ["definition", "modifier", "level", "estimate", "ci_low", "ci_high", "interaction_p_value"],
            {"estimate": "num3", "ci_low": "num3", "ci_high": "num3", "interaction_p_value": "num3"},
            note="Rychtarik 2000: heavier involvement may do better in residential care; a small interaction "
                 "p-value says the IOP-residential difference varies across the subgroups."))
    return s


def _balance(ctx: _Context, s: Section) -> None:
    """A table and Love plot per weighting method the analysis used, for the population of the
    headline definition; a flag for every method whose estimates are shown and that leaves any
    |SMD| above 0.1 in any population."""
    rows = ctx.results.get("balance") or []
    if not rows:
        s.unavailable.append("balance: not available: the results hold no balance rows")
        return
    shown_methods = {WEIGHTING_OF[m] for m in
                     (str(x.get("method")) for x in ctx.results.get("comparisons") or [] if x.get("estimate") is not None)
                     if m in WEIGHTING_OF}
    pop_of = {str(x["definition_id"]): x.get("population") for x in ctx.results.get("comparisons") or []
              if x.get("method") != "crude"}
    populations = list(dict.fromkeys(x["population"] for x in rows))
    head = next((pop_of[d] for d in HEADLINE if pop_of.get(d) in populations), populations[0])
    members = sorted(d for d, p in pop_of.items() if p == head)
    methods = list(dict.fromkeys(x["method"] for x in rows))
    panels = {}
    for method in methods:
        mine = [x for x in rows if x["population"] == head and x["method"] == method]
        if not mine:
            continue
        title = WEIGHTING_TITLES.get(method, method)
        recs = [{"covariate": x["covariate"], "smd_unadjusted": x["smd_before"], "smd_adjusted": x["smd_after"],
                 "variance_ratio_after": x["variance_ratio_after"]} for x in mine]
        panels[method] = recs
        s.tables.append(tables.simple_table(
            f"table-balance-{method}", f"Covariate balance after {title}", recs,
            ["covariate", "smd_unadjusted", "smd_adjusted", "variance_ratio_after"],
            {"smd_unadjusted": "num3", "smd_adjusted": "num3", "variance_ratio_after": "num2"},
            headers={"smd_adjusted": f"SMD after ({method})"},
            note=f"Population {head} ({', '.join(members) or 'definitions sharing it'}). Overlap weights balance "
                 "every covariate's mean exactly by construction; IPTW weights need not."))
    if panels:
        s.charts.append(charts.love_plot(panels, {m: WEIGHTING_TITLES.get(m, m) for m in panels}))
    for method in methods:
        if method not in shown_methods:
            continue
        worst = max((x for x in rows if x["method"] == method and x.get("smd_after") is not None),
                    key=lambda x: abs(x["smd_after"]), default=None)
        if worst is not None and abs(worst["smd_after"]) > SMD_THRESHOLD:
            n_pop = len({x["population"] for x in rows if x["method"] == method and x.get("smd_after") is not None
                         and abs(x["smd_after"]) > SMD_THRESHOLD})
            ctx.flags.append(f"after {WEIGHTING_TITLES.get(method, method)} a covariate's |SMD| is "
                             f"{abs(worst['smd_after']):.2f} (> {SMD_THRESHOLD}; {worst['covariate']}, in {n_pop} "
                             "population(s)): the adjusted comparison may be biased.")


def _overlap_chart(prop: Mapping[str, Any], ctx: _Context):
    counts = {n: list(v) for n, v in prop["counts"].items()}
    disclosure.check_artifact([dict(zip(counts, vals)) for vals in zip(*counts.values())], list(counts),
                              rule=ctx.rule, name="propensity overlap")
    names = list(counts)
    arm = ctx.arm if ctx.arm in counts else names[0]
    ref = ctx.reference if ctx.reference in counts else names[-1]
    return charts.overlap(list(prop["bin_edges"]), counts, arm, ref)


def _survival(ctx: _Context) -> Section:
    s = Section("survival", "Time to readmission")
    surv = ctx.results.get("survival") or {}
    km = surv.get("readmission") or {}
    groups = km.get("groups") or {}
    if not groups:
        why = surv.get("not_available") or km.get("not_estimable") or "the results hold no readmission curves"
        s.unavailable.append(f"not available: {why}")
        return s
    curves = {g: [{"time": c["time"][i], "survival": c["survival"][i], "ci_low": c["ci_low"][i],
                   "ci_high": c["ci_high"][i]} for i in range(len(c["time"]))] for g, c in groups.items()}
    risk = km.get("risk_table") or {}
    times = list(risk.get("times") or [])
    at_risk = dict(risk.get("at_risk") or {})
    s.charts.append(charts.kaplan_meier(curves, times, at_risk, ctx.marker))
    recs = [{"group": g, **{f"at_risk_day_{int(t)}": n for t, n in zip(times, v)}} for g, v in at_risk.items()]
    cols = ["group"] + [f"at_risk_day_{int(t)}" for t in times]
    import pandas as pd

    t = tables.simple_table("table-at-risk", "Numbers at risk", recs, cols, {c: "int" for c in cols[1:]},
                            headers={c: f"day {c.rsplit('_', 1)[1]}" for c in cols[1:]})
    t.count_cols = tuple(cols[1:])
    t.hidden = pd.DataFrame({c: ["small" if x.get(c) is None else None for x in recs] for c in cols[1:]},
                            dtype=object)
    s.tables.append(t)
    cox = km.get("cox") or {}
    if cox.get("hazard_ratio") is not None:
        s.paragraphs.append(
            f"Hazard ratio of readmission, IOP vs residential ({cox.get('method', 'Cox')}): "
            f"{cox['hazard_ratio']:.2f} (95% CI {cox.get('ci_low', float('nan')):.2f}–{cox.get('ci_high', float('nan')):.2f}); "
            f"proportional-hazards check p = {cox.get('ph_test_p_value', float('nan')):.3f}.")
    return s


def _trend_series(ctx: _Context) -> tuple[str | None, dict[str, dict[str, Any]]]:
    window = list(ctx.results["period"].get("trend_quarters") or [])
    multi = ctx.rows(("level_group,quarter",), "trends")
    single = ctx.rows(("quarter",), "trends")
    candidates = [d for d in (*HEADLINE, *ctx.labels) if d not in ctx.not_applicable]
    for rows, multi_dim in ((multi, True), (single, False)):
        for d in candidates:
            mine = [x for x in rows if str(x.get("definition_id")) == d]
            if not mine:
                continue
            series: dict[str, dict[str, Any]] = {}
            for x in mine:
                parts = str(x.get("group")).split("|")
                g, qq = (parts[0], parts[-1]) if multi_dim else ("all levels", parts[-1])
                if g not in (ctx.arm, ctx.reference) and multi_dim:
                    continue
                series.setdefault(g, {})[qq] = x
            if not series:
                continue
            out = {}
            for g in sorted(series, key=tables.level_order):
                rows_q = [series[g].get(qq, {}) for qq in window]
                pbar, limits = tables.p_chart_limits(rows_q)
                out[g] = {"quarters": window, "rate": [x.get("rate") for x in rows_q],
                          "ci_low": [x.get("ci_low") for x in rows_q], "ci_high": [x.get("ci_high") for x in rows_q],
                          "numerator": [x.get("numerator") for x in rows_q],
                          "denominator": [x.get("denominator") for x in rows_q], "pbar": pbar, "limits": limits,
                          "present": [bool(x) for x in rows_q],
                          "suppression": [tables.row_reason(x) for x in rows_q]}
            return d, out
    return None, {}


def _trends(ctx: _Context) -> Section:
    window = list(ctx.results["period"].get("trend_quarters") or [])
    title = f"Trends: {window[0]} to {window[-1]}" if window else "Trends by quarter"
    s = Section("trends", title)
    d, series = _trend_series(ctx)
    if d is None:
        s.unavailable.append("not available: no discharges with a discharge quarter in the trend window")
        return s
    label = ctx.labels.get(d, d)
    s.charts.append(charts.trends(series, f"{label} [{d}]"))
    recs, hid = [], []
    for g, x in series.items():
        for i, qq in enumerate(x["quarters"]):
            lim = x["limits"][i]
            signal = None
            if lim and x["rate"][i] is not None:
                signal = "above" if x["rate"][i] > lim[1] else "below" if x["rate"][i] < lim[0] else ""
            recs.append({"group": g, "quarter": qq, "numerator": x["numerator"][i],
                         "denominator": x["denominator"][i], "rate": x["rate"][i], "ci_low": x["ci_low"][i],
                         "ci_high": x["ci_high"][i], "lcl": lim[0] if lim else None,
                         "ucl": lim[1] if lim else None, "signal": signal})
            # a quarter with a row but no value was suppressed; a quarter without a row has no data
            why = x["suppression"][i] if x["present"][i] else None
            hid.append({c: why if recs[-1][c] is None else None
                        for c in ("numerator", "denominator", "rate", "ci_low", "ci_high")})
    import pandas as pd

    t = tables.simple_table("table-trend", f"{label} by quarter, with p-chart limits", recs,
                            ["group", "quarter", "numerator", "denominator", "rate", "ci_low", "ci_high", "lcl",
                             "ucl", "signal"],
                            {"numerator": "int", "denominator": "int", "rate": "pct", "ci_low": "pct",
                             "ci_high": "pct", "lcl": "pct", "ucl": "pct"},
                            note=f"Definition {d}. The trend shows the quarters named in its title, which may "
                                 "reach before the period; centre line and limits use shown quarters only.")
    t.count_cols = ("numerator", "denominator")
    t.hidden = pd.DataFrame(hid, dtype=object)
    s.tables.append(t)
    return s


def _sites(ctx: _Context) -> Section:
    s = Section("sites", "Sites compared")
    shown_all = ctx.rows(("site",))
    candidates = list(HEADLINE) + list(ctx.labels)
    d = next((d for d in candidates if any(str(x.get("definition_id")) == d for x in shown_all)), None)
    if d is None:
        s.unavailable.append("not available: the results hold no rates by site")
        return s
    shown = [x for x in shown_all if str(x.get("definition_id")) == d]
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
        small = sum(1 for x in shown if x.get("suppression") == "small")
        other = sum(1 for x in shown if x.get("suppression") == "complementary")
        s.paragraphs.append(f"{len(points)} sites shown for {label} [{d}]; {small} not shown (small numbers), "
                            f"{other} withheld to protect another site's small count. Outside the 99.8% limits: "
                            f"{', '.join(map(str, out)) or 'none'}.")
    s.tables.append(tables.rates_table(shown, ctx.labels, id="table-sites", title=f"{label} by site",
                                       group_title="site"))
    return s


STEPDOWN = "stepdown_iop_14d"


def _stepdown(ctx: _Context) -> Section:
    s = Section("stepdown", "Step-down from residential to IOP")
    if STEPDOWN in ctx.not_applicable:
        s.unavailable.append(ctx.not_applicable[STEPDOWN])
        return s
    by_level = [x for x in ctx.rows(("level_of_care",)) if x["definition_id"] == STEPDOWN
                and x.get("denominator") != 0]
    window = list(ctx.results["period"].get("trend_quarters") or [])
    by_q = {x["group"]: x for x in ctx.rows(("quarter",), "trends") if x["definition_id"] == STEPDOWN}
    if not by_level and not by_q:
        s.unavailable.append(f"not available: {STEPDOWN} was not analysed, or no residential discharges")
        return s
    s.paragraphs.append(f"Share of residential discharges followed by an IOP admission within 14 days "
                        f"[{STEPDOWN}] (continuity of care after high-intensity treatment, as in HEDIS FUI).")
    quarters = [by_q.get(q) or {"group": q, "definition_id": STEPDOWN} for q in window]
    if any(x.get("rate") is not None for x in quarters):
        s.charts.append(charts.stepdown(quarters))
    if by_q:
        s.tables.append(tables.rates_table([x for x in quarters if "group_by" in x], ctx.labels,
                                           id="table-stepdown-quarter", title="Step-down by quarter",
                                           group_title="quarter"))
    if by_level:
        s.tables.append(tables.rates_table(by_level, ctx.labels, id="table-stepdown-care",
                                           title="Step-down by residential setting", group_title="level of care"))
    return s


def _variance_rule(diagnostics: Mapping[str, Any]) -> str:
    """The variance rule of the adjusted intervals, and how it applied to these results."""
    g = diagnostics.get("min_clusters", 30)
    applied = diagnostics.get("variance")
    return (
        "Variance of the adjusted estimates: the person-level (HC0) sandwich from the stacked estimating "
        "equations, the propensity and outcome models' estimation included, with site as a fixed effect in "
        f"every model; a cluster-robust variance (CR2 small-sample correction, Student t quantiles on G-1 "
        f"degrees of freedom) only with at least {g} sites, because with fewer a cluster-robust standard "
        "error is itself estimated from a handful of site totals and was found between 0.3 and 2.1 times a "
        "bootstrap's on programme-shaped data. Each row of comparisons.csv names its variance."
        + (f" Here: {applied}." if applied else "")
    )


def _appendix(ctx: _Context) -> Section:
    s = Section("appendix", "Appendix: definitions and methods")
    definitions = ctx.definitions
    if definitions:
        recs = [{"id": d.get("id"), "version": d.get("version"), "label": d.get("label"),
                 "description": d.get("description"), "population": d.get("population") or "every episode",
                 "success": d.get("success"), "missing": d.get("missing"),
                 "applicable": "yes" if d.get("applicable") else f"no: {d.get('not_applicable_reason')}",
                 "references": "; ".join(d.get("references") or [])} for d in definitions]
        s.tables.append(tables.simple_table("table-definitions", "Success definitions (from the registry)", recs,
                                            list(recs[0])))
    else:
        s.unavailable.append("definitions: not available: the results list no definitions")
    period = ctx.results["period"]
    methods = sorted({str(x.get("ci_method")) for x in ctx.results.get("rates") or [] if x.get("ci_method")})
    adj = sorted({str(x.get("method")) for x in ctx.results.get("comparisons") or []
                  if x.get("method") not in (None, "crude")})
    s.bullets += [
        f"Period: {period['label']}. A discharge counts when its discharge quarter is in the period; a TEDS-D "
        "discharge year counts only when the period holds all four of its quarters. Trends show the 8 quarters "
        "ending at the period's last quarter.",
        "Rates: successes / episodes in the definition's population; 95% intervals by "
        f"{', '.join(methods) or 'the method named in each row'}.",
        "Comparison: crude risk difference beside adjusted estimates "
        f"({', '.join(adj) or 'none in these results'}); balance is acceptable when every |SMD| <= 0.1 "
        "(OHDSI CohortMethod), shown for each weighting method used; non-inferiority is a claim about the "
        "lower interval bound against a stated margin, never 'p > 0.05'.",
        _margin_rule(ctx.results["diagnostics"]),
        "Adjusted estimators: g-computation and AIPW fit one outcome model per level of care (regression "
        "adjustment as statsmodels TreatmentEffect.ra and Stata teffects), so an effect may differ with "
        "severity or any other covariate; with three or more levels and --multiarm-outcome-models each is also "
        "standardized over all of them (gcomp_multiarm, aipw_multinomial). Follow-up sensitivity rows (ITT, complete case, inverse probability "
        "of follow-up) are given only for definitions read from the follow-up interview.",
        _variance_rule(ctx.results["diagnostics"]),
        "Trends: p-chart, centre line = pooled rate of the shown quarters, limits = centre ± 3·sqrt(p(1-p)/n).",
        "Sites: funnel plot, limits = overall rate ± z·sqrt(p(1-p)/n) with z = 1.96 (95%) and 3.09 (99.8%).",
        "Time to readmission: Kaplan–Meier, read every 15 days; each drop stands for 0 or more than "
        f"{ctx.rule.high} readmissions and the curve stops when few remain at risk.",
        f"Disclosure control ({ctx.rule.name}), applied once when the analysis wrote its results: {ctx.rule.note}",
        f"Results run {ctx.results.get('run_id', '–')}, created {ctx.results.get('created_at', '–')}, "
        f"levelcare {ctx.results.get('levelcare_version', '–')}.",
    ]
    if ctx.results.get("inputs"):
        s.tables.append(tables.simple_table("table-inputs", "Input files", ctx.results["inputs"],
                                            ["file_name", "kind", "file_sha256"]))
    return s
