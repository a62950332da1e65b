"""Assemble the report (sections in reading order) from the results model alone.

The results model (:mod:`pipelines.results`) holds every number already disclosed; this
module only arranges, labels and draws them. It opens no warehouse and recomputes no
number: a report written after ``rerun`` shows that run's numbers only. The summary's
sentences are written from the same rows as the tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipelines import definitions as definitions_pkg
from pipelines import disclosure
from pipelines.report import benchmark as benchmark_report
from pipelines.report import brief, charts, numbers, tables
from pipelines.report import services as services_report
from pipelines.report.model import Report, Section

HEADLINE = definitions_pkg.HEADLINE
FOLLOWUP_TARGET = 0.80  # GPRA: grantees are held to an 80% follow-up rate
FOLLOWUP_PREFIX = "followup_reached_"
SMD_THRESHOLD, EQUIPOISE_MIN = 0.1, 0.2  # OHDSI CohortMethod diagnostics
ADJUSTED_PREFERENCE = brief.ADJUSTED_PREFERENCE
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
        _sites(ctx), _stepdown(ctx), services_report.services_section(ctx, HEADLINE),
    ]
    bench = benchmark_report.benchmark_section(ctx)  # only when the results hold a benchmark (TEDS-D loaded)
    if bench is not None:
        sections.append(bench)
    sections.append(_appendix(ctx))
    # last: the brief reads the facts and flags the other sections found
    sections.insert(0, brief.brief_section(ctx, _headlines(ctx), _trend_series(ctx), _headline_population(ctx)))
    note = disclosure_note(d)
    return Report(
        title="Outcomes after intensive outpatient and residential treatment",
        period=results["period"]["label"], run_id=str(results.get("run_id", "")),
        created_at=str(results.get("created_at", "")), rule_name=d["rule"], marker=d["marker"],
        disclosure_note=note, sections=sections, complementary_marker=d["complementary_marker"],
    )


def disclosure_note(d: Mapping[str, Any]) -> str:
    """The disclosure rule's note as documents print it (``d``: results["disclosure"]), with the
    complementary marker explained when it differs from the marker."""
    note = str(d.get("note") or "")
    if d.get("complementary_marker") and d["complementary_marker"] != d.get("marker"):
        note += (f" {d['complementary_marker']} not shown: withheld only so that a small count elsewhere cannot "
                 "be worked out from totals.")
    return note


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
def _headlines(ctx: _Context) -> list[str]:
    """The brief's headline definitions: those of HEADLINE whose IOP or residential rate is shown,
    in its order, topped up to four with the next definitions that have one (a quarter's latest
    discharges have no 90-day outcome yet); the headline ones left out are named in
    ``ctx.facts["headlines_not_shown"]``. At most BRIEF_HEADLINES."""
    shown = ctx.rows(("level_group",)) or ctx.rows(("level_of_care",))
    present = list(dict.fromkeys(str(x.get("definition_id")) for x in shown))
    rated = {str(x.get("definition_id")) for x in shown
             if x.get("rate") is not None and x.get("group") in (ctx.arm, ctx.reference)}
    heads = [d for d in HEADLINE if d in rated]
    more = [d for d in present if d in rated and d not in heads and not d.startswith(FOLLOWUP_PREFIX)]
    heads += more[:max(0, 4 - len(heads))]
    ctx.facts["headlines_not_shown"] = [d for d in HEADLINE if d in present and d not in rated]
    return heads[:brief.BRIEF_HEADLINES] or [d for d in HEADLINE if d in present] or present[:4]


def _headline_population(ctx: _Context) -> str | None:
    """The analysis population of the first headline definition with an adjusted comparison."""
    pop_of = {str(x["definition_id"]): x.get("population") for x in ctx.results.get("comparisons") or []
              if x.get("method") != "crude" and x.get("population")}
    return next((pop_of[d] for d in HEADLINE if d in pop_of), next(iter(pop_of.values()), None))


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
            ctx.flags.append(f"{numbers.pct(quarantined / read)} of rows read were quarantined (above 5%).")
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
        note = ("Reached / native discharges whose window had ended by the data end date (deaths excluded), as "
                "in the followup_reached_* definitions.")
        s.tables.append(tables.rate_grid(
            rows, lambda x: (tables.level_order(x["group"]), {"level": tables.level_label(x["group"])}),
            lambda x: f"{_window(x['definition_id'])} days", id="table-followup-grid",
            title="Follow-up response rate by window (target 80%)", row_columns={"level": "level of care"},
            col_order=lambda c: int(c.split()[0]), note=note + " Definition ids: " + ", ".join(by_window) + "."))
        full = tables.rates_table(rows, {d: ctx.labels.get(d, d) for d in by_window}, id="table-followup",
                                  title="Follow-up response rate (target 80%)", note=note)
        full.detail = True
        s.tables.append(full)
        rated = [x for x in rows if x.get("rate") is not None]
        low = [x for x in rated if x["rate"] < FOLLOWUP_TARGET]
        if low:
            worst = min(low, key=lambda x: x["rate"])
            ctx.flags.append(f"follow-up response is below the 80% target in {len(low)} of {len(rated)} "
                             f"window/level cells shown (lowest {numbers.pct(worst['rate'])}: "
                             f"{tables.level_label(worst['group'])} at {_window(worst['definition_id'])} days).")
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
        s.tables += [tables.table_one(ctx.results["table_one"], compared_only=True), one]
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
    s.charts.append(charts.rates_by_definition([{**x, "group": tables.level_label(x.get("group"))} for x in shown],
                                               ctx.labels, [tables.level_label(g) for g in groups]))
    order = {d: i for i, d in enumerate(ctx.labels)}
    rated = {str(x.get("definition_id")) for x in shown if x.get("rate") is not None}
    empty = [d for d in dict.fromkeys(str(x.get("definition_id")) for x in shown) if d not in rated]
    if empty:
        s.paragraphs.append("Not shown at any level of care (too few people, or a follow-up window not yet over): "
                            + "; ".join(f"{ctx.labels.get(d, d)} [{d}]" for d in empty) + ".")
    s.tables.append(tables.rate_grid(
        [x for x in shown if str(x.get("definition_id")) in rated], lambda x: ((order.get(str(x["definition_id"]), 999), str(x["definition_id"])),
                          {"definition": ctx.labels.get(str(x["definition_id"]), x["definition_id"]),
                           "definition_id": x["definition_id"]}),
        lambda x: tables.level_label(x["group"]), id="table-rates-grid",
        title="Success rates by definition and level of care (95% intervals)",
        row_columns={"definition": "definition", "definition_id": "id"},
        col_order=lambda c: tables.level_order(next((g for g in groups if tables.level_label(g) == c), c)),
        note="n: the discharges counted (the definition's population). Counts of successes: the full table."))
    full = tables.rates_table(shown, ctx.labels, id="table-rates",
                              title=f"Success rates by {key.replace('_', ' ')} (95% intervals)")
    full.detail = True
    s.tables.append(full)
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
        s.charts.append(charts.forest(rows, ctx.labels, margins, relative=relative,
                                      arm=tables.level_label(ctx.arm), reference=tables.level_label(ctx.reference)))
        compact, not_estimable = _comparison_summary(ctx, rows, ni)
        if compact is not None:
            s.tables.append(compact)
        if not_estimable:
            s.paragraphs.append("Not estimable: " + "; ".join(not_estimable) + ".")
        full = tables.comparisons_table(rows, ctx.labels)
        full.detail = True
        s.tables.append(full)
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
        s.tables[-1].detail = True
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
        diag_table = tables.simple_table("table-diagnostics", "Diagnostics of the adjusted comparison",
                                         adjusted, cols, {**{c: "num3" for c in cols[3:9]}, "ess_arm": "int",
                                                          "ess_reference": "int", "share_truncated": "pct"},
                                         headers={"c_statistic": "c-statistic", "ess_arm": "ESS IOP",
                                                  "ess_reference": "ESS residential",
                                                  "max_abs_smd_after": "largest |SMD| after"},
                                         note="ESS: effective sample size of the weighted group; c-statistic: how "
                                              "well the propensity model tells the groups apart; equipoise: share "
                                              "of people with a preference score between 0.3 and 0.7.")
        diag_table.detail = True
        s.paragraphs.append(_diagnostics_sentence(adjusted, ctx.labels))
        s.tables.append(diag_table)
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
            {"estimate": "rd", "ci_low": "rd", "ci_high": "rd", "interaction_p_value": "p"},
            note="Rychtarik 2000: heavier involvement may do better in residential care; a small interaction "
                 "p-value says the IOP-residential difference varies across the subgroups. Differences in "
                 "percentage points (pp)."))
        s.tables[-1].detail = True
    return s


def _comparison_summary(ctx: _Context, rows: Sequence[Mapping[str, Any]], ni: Sequence[Mapping[str, Any]]
                        ) -> tuple[Any, list[str]]:
    """The table a reader compares: per definition, the crude and the headline adjusted risk
    difference (pp, 95% CI) and the verdict in words; and the definitions with no estimate at
    all, each named once with its reason (never a row of markers)."""
    import pandas as pd

    verdicts = {(str(x.get("definition_id")), str(x.get("method"))): brief.verdict(x) for x in ni}
    by_def: dict[str, dict[str, Mapping[str, Any]]] = {}
    for x in rows:
        by_def.setdefault(str(x.get("definition_id")), {})[str(x.get("method"))] = x
    order = {d: i for i, d in enumerate(ctx.labels)}
    recs, hidden, missing = [], [], []
    for d in sorted(by_def, key=lambda d: (order.get(d, 999), d)):
        methods = by_def[d]
        crude = methods.get("crude")
        adj_method = next((m for m in ADJUSTED_PREFERENCE if m in methods), None)
        adj = methods.get(adj_method) if adj_method else None
        label = ctx.labels.get(d, d)
        if all(x.get("estimate") is None for x in (crude, adj) if x is not None):
            reasons = {("small numbers" if x.get("suppressed") else str(x.get("note") or "no estimate"))
                       for x in (crude, adj) if x is not None}
            missing.append(f"{label} [{d}] ({', '.join(sorted(reasons))})")
            continue

        def text(x):
            if x is None or x.get("estimate") is None:
                return None
            return f"{numbers.pp(x['estimate'])} ({numbers.pp_range(x.get('ci_low'), x.get('ci_high'))})"

        recs.append({"definition": label, "definition_id": d, "crude": text(crude), "adjusted": text(adj),
                     "method": (adj_method or "").upper() if adj_method in ("aipw", "gcomp") else adj_method,
                     "verdict": verdicts.get((d, str(adj_method)))})
        hidden.append({"crude": tables.row_reason(crude) if crude is not None and crude.get("estimate") is None else None,
                       "adjusted": tables.row_reason(adj) if adj is not None and adj.get("estimate") is None else None})
    if not recs:
        return None, missing
    arm, ref = tables.level_label(ctx.arm), tables.level_label(ctx.reference)
    t = tables.simple_table(
        "table-comparison-summary", f"{arm} vs {ref}: crude and adjusted difference in success rate", recs,
        ["definition", "definition_id", "crude", "adjusted", "method", "verdict"],
        headers={"definition_id": "id", "crude": "crude difference (95% CI)",
                 "adjusted": "adjusted difference (95% CI)", "method": "adjusted by"},
        note=f"Differences are {arm} minus {ref} in percentage points (pp). Verdict, on the definition's margin: "
             "better, no different (within the margin or not worse), worse (beyond the margin) or inconclusive. "
             "The other estimators (IPTW, overlap weights, g-computation) are in the workbook and the HTML report's "
             "full tables.")
    t.hidden = pd.DataFrame(hidden, columns=["crude", "adjusted"], dtype=object)
    t.compact = True
    return t, missing


def _diagnostics_sentence(adjusted: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> str:
    """The diagnostics in one sentence: how many population x weighting rows passed, and the
    ranges a reader checks (OHDSI CohortMethod: equipoise, balance)."""
    passed = sum(1 for x in adjusted if x.get("passed"))
    eq = [x["equipoise"] for x in adjusted if x.get("equipoise") is not None]
    smd = [x["max_abs_smd_after"] for x in adjusted if x.get("max_abs_smd_after") is not None]
    cstat = [x["c_statistic"] for x in adjusted if x.get("c_statistic") is not None]
    parts = [(f"Diagnostics of the adjusted comparison: {passed} of {len(adjusted)} population and weighting "
              "combinations passed")]
    if cstat:
        parts.append(f"c-statistic {min(cstat):.2f} to {max(cstat):.2f}")
    if eq:
        parts.append(f"equipoise {numbers.pct(min(eq))} to {numbers.pct(max(eq))} (at least {EQUIPOISE_MIN:.0%} "
                     "needed)")
    if smd:
        parts.append(f"largest |SMD| after weighting {max(smd):.2f} (at most {SMD_THRESHOLD} wanted)")
    failed = [x for x in adjusted if not x.get("passed")]
    text = "; ".join(parts) + "."
    if failed:  # a population named by its definitions (its id, p1..., means nothing to a reader)
        by_pop: dict[str, list[str]] = {}
        for x in failed:
            defs = [d.strip() for d in str(x.get("definitions") or "").split(",") if d.strip()]
            name = labels.get(defs[0], defs[0]) + (f" and {len(defs) - 1} more" if len(defs) > 1 else "") \
                if defs else str(x.get("population"))
            by_pop.setdefault(name, []).append(WEIGHTING_TITLES.get(str(x.get("method")), str(x.get("method"))))
        names = [f"{k} ({'; '.join(v)})" for k, v in by_pop.items()]
        text += (f" Not passed, by outcome: {'; '.join(names[:8])}{' and more' if len(names) > 8 else ''}; "
                 "the full table names each.")
    return text


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
        s.tables[-1].detail = True
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
    curves = {tables.level_label(g): [{"time": c["time"][i], "survival": c["survival"][i], "ci_low": c["ci_low"][i],
                                       "ci_high": c["ci_high"][i]} for i in range(len(c["time"]))]
              for g, c in groups.items()}
    risk = km.get("risk_table") or {}
    times = list(risk.get("times") or [])
    at_risk = {tables.level_label(g): v for g, v in (risk.get("at_risk") or {}).items()}
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
        ph = numbers.p_value(cox.get("ph_test_p_value"))
        s.paragraphs.append(
            f"Hazard ratio of readmission, {tables.level_label(ctx.arm)} vs {tables.level_label(ctx.reference)} "
            f"({cox.get('method', 'Cox')}): {numbers.ratio(cox['hazard_ratio'])} (95% CI "
            f"{numbers.ratio(cox.get('ci_low'))} to {numbers.ratio(cox.get('ci_high'))}; p "
            f"{ph if ph.startswith('<') else '= ' + ph} for the proportional-hazards check; a hazard ratio "
            "above 1 means readmission comes sooner after IOP).")
    return s


def _trend_series(ctx: _Context) -> tuple[str | None, dict[str, dict[str, Any]]]:
    window = list(ctx.results["period"].get("trend_quarters") or [])
    multi = ctx.rows(("level_group,quarter",), "trends")
    single = ctx.rows(("quarter",), "trends")
    candidates = [d for d in (*HEADLINE, *ctx.labels) if d not in ctx.not_applicable]
    for d in candidates:  # the first definition with a trend, by level of care where the results have one
        for rows, multi_dim in ((multi, True), (single, False)):
            mine = [x for x in rows if str(x.get("definition_id")) == d]
            if not mine:
                continue
            series: dict[str, dict[str, Any]] = {}
            for x in mine:
                parts = str(x.get("group")).split("|")
                g, qq = (parts[0], parts[-1]) if multi_dim else ("all levels", parts[-1])
                series.setdefault(g, {})[qq] = x
            if not series:
                continue
            out = {}
            for g in sorted(series, key=tables.level_order):
                rows_q = [series[g].get(qq, {}) for qq in window]
                pbar, limits = tables.p_chart_limits(rows_q)
                out[tables.level_label(g)] = {"quarters": window, "rate": [x.get("rate") for x in rows_q],
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


SHORT_DESCRIPTION = 110  # characters of a description in the PDF's reading table


def _appendix(ctx: _Context) -> Section:
    s = Section("appendix", "Appendix: definitions and methods")
    definitions = ctx.definitions
    if definitions:
        recs = [{"id": d.get("id"), "version": d.get("version"), "label": d.get("label"),
                 "description": d.get("description"), "population": d.get("population") or "every episode",
                 "success": d.get("success"), "missing": d.get("missing"),
                 "applicable": "yes" if d.get("applicable") else f"no: {d.get('not_applicable_reason')}",
                 "references": "; ".join(d.get("references") or [])} for d in definitions]
        # the reading table gives each description's first sentence; the full table all of it
        short = tables.simple_table("table-definitions-short", "Success definitions",
                                    [{**x, "description": tables.first_sentence(x["description"], SHORT_DESCRIPTION)}
                                     for x in recs],
                                    ["id", "label", "description", "missing", "applicable"],
                                    headers={"missing": "missing-data policy"},
                                    note="The populations and success conditions as SQL, and the references: "
                                         "the workbook's Definitions sheet and the HTML report's full tables.")
        short.compact = True
        full = tables.simple_table("table-definitions", "Success definitions (from the registry)", recs, list(recs[0]))
        full.detail = True
        s.tables += [short, full]
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
        *services_report.METHODS,
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
