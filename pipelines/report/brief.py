"""The board brief: the report's first section, and ``brief.pdf`` on its own (at most 2 pages).

Written for a board, a payer or a surveyor, in the order they ask (SAMHSA TEDS tables, CMS Care
Compare, OHDSI CohortMethod diagnostics): who was served; a few headline outcomes by level of
care, each with its interval, definition id and denominator, drawn as one dot-and-interval
chart; IOP against residential after adjustment, in words ("better", "no different", "worse",
"inconclusive") with the interval, and one forest plot; whether that comparison can be trusted,
as pass/warn/fail badges shown before it is read; the main outcome's trend by level of care;
the program against the nation (observed / expected beside TEDS-D), only when the results hold
that benchmark; and the data-quality flags. Every number comes from the results model, as in the rest of the
report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.report import charts, numbers, tables
from pipelines.report.model import Badge, Section

BRIEF_HEADLINES = 6  # at most this many outcomes in the brief: four to six fit a board's two pages
SMD_PASS, SMD_FAIL = 0.1, 0.2  # |SMD| after weighting: OHDSI's 0.1; twice that is a failure
EQUIPOISE_MIN = 0.2  # OHDSI CohortMethod: at least 20% of people in equipoise
FOLLOWUP_PASS, FOLLOWUP_FAIL = 0.80, 0.50  # GPRA's 80% follow-up target; below half, a failure
QUARANTINE_WARN = 0.05
TERMS = ("How to read this: a rate is successes out of the discharges counted (n); 95% CI is the 95% "
         "confidence interval; pp = percentage points (a difference between two rates); adjusted = "
         "compared after weighting for who is sent where (AIPW: augmented inverse probability weighting, "
         "which also models the outcome); the margin is the largest loss against residential still judged "
         "acceptable. [id] names the definition of success, listed in the appendix.")
ADJUSTED_PREFERENCE = ("aipw", "gcomp", "iptw_ate", "overlap")  # the headline adjusted method, in order


def verdict(x: Mapping[str, Any]) -> str | None:
    """A non-inferiority row's verdict ("better", "no different", "worse" or "inconclusive"),
    on its own margin basis, in the same order of tests as its written conclusion
    (:mod:`pipelines.stats.noninferiority`): equivalent or non-inferior with an interval
    touching no difference -> "no different"; non-inferior and wholly above no difference ->
    "better"; wholly beyond the margin -> "worse"; else "inconclusive". None when the row has no
    interval (not estimable or not shown)."""
    if x.get("margin_basis") == "relative":
        eq, ni = x.get("equivalent_relative"), x.get("noninferior_relative")
        lo, hi, null, bound = x.get("rr_ci95_low"), x.get("rr_ci95_high"), 1.0, x.get("margin_ratio")
    else:
        eq, ni = x.get("equivalent"), x.get("noninferior")
        lo, hi, null = x.get("ci95_low"), x.get("ci95_high"), 0.0
        bound = None if x.get("margin_pp") is None else -float(x["margin_pp"]) / 100
    if lo is None or hi is None or bound is None:
        return None
    if eq:
        return "no different"
    if ni:
        return "better" if lo > null else "no different"
    return "worse" if hi < bound else "inconclusive"


def rate_phrase(r: Mapping[str, Any] | None, marker_of) -> str:
    """A rate as read aloud: '43.1% (95% CI 41.8% to 44.3%; 2,483 of 5,767)'."""
    if r is None:
        return "no data"
    if r.get("rate") is None:
        if r.get("denominator") == 0:
            return "no one in the population"
        why = "withheld to protect a small count" if r.get("suppression") == "complementary" else "small numbers"
        return f"not shown ({marker_of(r)}: {why})"
    n = (f"; {numbers.count(r['numerator'])} of {numbers.count(r['denominator'])}"
         if r.get("numerator") is not None else "")
    if r.get("ci_low") is None:
        return f"{numbers.pct(r['rate'])}{n}"
    return f"{numbers.pct(r['rate'])} (95% CI {numbers.pct_range(r['ci_low'], r['ci_high'])}{n})"


def verdict_sentence(x: Mapping[str, Any], label: str, arm: str, reference: str,
                     n: tuple[Any, Any] | None = None) -> str:
    """'Treatment completed [completion]: inconclusive. After adjustment IOP's rate is 10.6 pp
    lower than Residential's (difference -10.6 pp, 95% CI -12.8 to -8.5 pp; AIPW; margin 5 pp;
    5,767 IOP and 5,425 Residential discharges).'"""
    d = x.get("definition_id")
    word = verdict(x)
    method = str(x.get("method") or "").upper() if x.get("method") in ("aipw", "gcomp") else str(x.get("method"))
    counts = ""
    if n and n[0] is not None and n[1] is not None:
        counts = f"; {numbers.count(n[0])} {arm} and {numbers.count(n[1])} {reference} discharges"
    if word is None:
        why = str(x.get("conclusion") or "small numbers").removeprefix("not estimable: ")
        return f"{label} [{d}]: not estimable ({why})."
    if x.get("margin_basis") == "relative":
        rr = float(x["rr"])
        return (f"{label} [{d}]: {word}. After adjustment {arm}'s rate is {numbers.ratio(rr)} times "
                f"{reference}'s (95% CI {numbers.ratio(x['rr_ci95_low'])} to {numbers.ratio(x['rr_ci95_high'])}; "
                f"{method}; margin: a ratio of {x['margin_ratio']:g}, used because {reference}'s rate is "
                f"below 20%{counts}).")
    est = float(x["estimate"])
    size = numbers.pp(abs(est)).removeprefix("+")
    direction = "higher than" if est > 0 and size != "0.0 pp" else "lower than" if size != "0.0 pp" else "the same as"
    gap = f"{size} {direction}" if direction != "the same as" else direction
    return (f"{label} [{d}]: {word}. After adjustment {arm}'s rate is {gap} {reference}'s "
            f"(difference {numbers.pp(est)}, 95% CI {numbers.pp_range(x['ci95_low'], x['ci95_high'])}; {method}; "
            f"margin {x['margin_pp']:g} pp{counts}).")


# --------------------------------------------------------------------------- badges
def badges(results: Mapping[str, Any], arm: str, reference: str, headline_population: str | None) -> list[Badge]:
    """Can the adjusted comparison be trusted? Balance, overlap and follow-up response, and the
    data checks, each pass / warn / fail with the figures behind it."""
    return [_balance_badge(results, headline_population), _overlap_badge(results, headline_population),
            _followup_badge(results, arm, reference), _data_badge(results)]


def _balance_badge(results: Mapping[str, Any], head: str | None) -> Badge:
    name = "Covariate balance after weighting"
    rows = [x for x in results.get("balance") or [] if x.get("method") == "iptw_ate" and x.get("smd_after") is not None]
    if not rows:
        return Badge(name, "n/a", "no adjusted comparison in these results")
    worst = max(rows, key=lambda x: abs(x["smd_after"]))
    w = abs(worst["smd_after"])
    headline = [abs(x["smd_after"]) for x in rows if x.get("population") == head] if head is not None else [w]
    # a population other than the headline outcome's warns at most: its own rows say so
    status = "pass" if w <= SMD_PASS else "fail" if max(headline, default=0.0) > SMD_FAIL else "warn"
    where = "" if head is None or worst.get("population") == head else " (not in the headline outcome's population)"
    return Badge(name, status, f"largest |SMD| (standardized mean difference) after the AIPW weights: "
                               f"{numbers.cell(w, 'num2')} for {worst['covariate']}{where}; pass at most "
                               f"{SMD_PASS}, fail above {SMD_FAIL} in the headline outcome's population")


def _overlap_badge(results: Mapping[str, Any], head: str | None) -> Badge:
    name = "Overlap of the people compared"
    rows = [x for x in results["diagnostics"].get("adjusted") or []
            if x.get("method") == "iptw_ate" and x.get("equipoise") is not None]
    if not rows:
        return Badge(name, "n/a", "no adjusted comparison in these results")
    low = min(rows, key=lambda x: x["equipoise"])
    headline = [x for x in rows if x.get("population") == head] or rows
    status = "pass" if low["equipoise"] >= EQUIPOISE_MIN else \
        "fail" if min(x["equipoise"] for x in headline) < EQUIPOISE_MIN else "warn"
    return Badge(name, status, f"equipoise (share of people whose preference score lies between 0.3 and 0.7): "
                               f"lowest {numbers.pct(low['equipoise'])} across {len(rows)} populations; "
                               f"pass at least {EQUIPOISE_MIN:.0%}")


def _followup_badge(results: Mapping[str, Any], arm: str, reference: str) -> Badge:
    name = "Follow-up response"
    rows = [x for x in results.get("rates") or [] if x.get("group_by") == "level_group"
            and str(x.get("definition_id")).startswith("followup_reached_") and x.get("group") in (arm, reference)
            and x.get("rate") is not None]
    if not rows:
        return Badge(name, "n/a", "no follow-up response in these results (no follow-up interviews, or "
                                  "too few to show)")
    preferred = next((d for d in ("followup_reached_90d", "followup_reached_30d", "followup_reached_180d",
                                  "followup_reached_365d") if any(x["definition_id"] == d for x in rows)), None)
    mine = [x for x in rows if x["definition_id"] == preferred]
    low = min(mine, key=lambda x: x["rate"])
    status = "pass" if low["rate"] >= FOLLOWUP_PASS else "warn" if low["rate"] >= FOLLOWUP_FAIL else "fail"
    parts = "; ".join(f"{tables.level_label(x['group'])} {numbers.pct(x['rate'])} of "
                      f"{numbers.count(x['denominator'])}" for x in sorted(mine, key=lambda x: x["group"] != arm))
    return Badge(name, status, f"reached at follow-up [{preferred}]: {parts}; target 80% (GPRA), fail below 50%")


def _data_badge(results: Mapping[str, Any]) -> Badge:
    name = "Data checks"
    dq = results.get("data_quality") or {}
    ledger = dq.get("ledger") or []
    checks = (dq.get("validation") or {}).get("checks") or []
    if not ledger:
        return Badge(name, "n/a", "no ingest ledger in these results")
    refused = sum(1 for x in ledger if x.get("status") == "refused")
    failed = [c for c in checks if c.get("status") != "passed"]
    errors = [c for c in failed if c.get("severity") == "error"]
    read = sum(x.get("rows_read") or 0 for x in ledger)
    quarantined = sum(x.get("rows_quarantined") or 0 for x in ledger)
    share = quarantined / read if read else 0.0
    status = "fail" if refused or errors else "warn" if failed or share > QUARANTINE_WARN else "pass"
    return Badge(name, status, f"{len(ledger)} files, {refused} refused; {numbers.count(read)} rows read, "
                               f"{numbers.pct(share)} quarantined; {len(checks) - len(failed)} of {len(checks)} "
                               "validation checks passed")


# --------------------------------------------------------------------------- the section
def brief_section(ctx: Any, headlines: Sequence[str], trend: tuple[str | None, Mapping[str, Any]],
                  headline_population: str | None) -> Section:
    """The summary section of the report, which is also ``brief.pdf``. ``ctx`` is the report's
    build context (results, labels, arm/reference, facts and flags gathered by the other
    sections); ``headlines`` the headline definitions in order; ``trend`` the (definition,
    series by level) of the trends section. Its parts, in reading order: headline outcomes, can
    the comparison be trusted (badges), the comparison in words, the trend, the benchmark against
    the nation (when the results hold one), data-quality flags."""
    s = Section("summary", "Board brief")
    results = ctx.results
    f = ctx.facts
    period = results["period"]["label"]
    arm, ref = str(tables.level_label(ctx.arm)), str(tables.level_label(ctx.reference))
    if f.get("episodes") is not None:
        s.paragraphs.append(f"Who was served: {f['episodes']} discharges ({period}) from {f.get('sites', '–')} "
                            f"programs were analysed: {f.get('by_level', '')}.")
    else:
        s.paragraphs.append(f"Who was served: not available: no discharges in the period ({period}).")
    if "teds-d" in (results["cohort"].get("sources") or []):
        s.paragraphs.append("Includes SAMHSA TEDS-D discharges, which carry no follow-up interviews.")
    s.paragraphs.append(TERMS)
    from pipelines.report.sheet import sheet_summary

    s.parts += [_headline_part(ctx, headlines, arm, ref),
                Section("summary-trust", "Can the adjusted comparison be trusted?",
                        badges=badges(results, ctx.arm, ctx.reference, headline_population)),
                _comparison_part(ctx, headlines, arm, ref)]
    d, series = trend
    if d is not None and series:
        label = ctx.labels.get(d, d)
        keep = {g: v for g, v in series.items() if g in (arm, ref)} or series
        s.parts.append(Section("summary-trend", f"Trend: {label} [{d}]", charts=[
            charts.trend_lines(keep, f"{label} [{d}]", chart_id="chart-brief-trend")]))
    from pipelines.report.benchmark import brief_part

    bench = brief_part(ctx)  # only when the results hold a benchmark against TEDS-D
    if bench is not None:
        s.parts.append(bench)
    flags = Section("summary-flags", "Data-quality flags")
    if ctx.flags:
        flags.bullets += list(ctx.flags)
    else:
        flags.paragraphs.append("None raised by the checks in this report.")
    # last: how success is measured (success-sheet.pdf in full), after the charts it would push on
    s.parts += [flags, sheet_summary(ctx, headlines)]
    return s


def _headline_part(ctx: Any, headlines: Sequence[str], arm: str, ref: str) -> Section:
    p = Section("summary-outcomes", "Headline outcomes by level of care")
    shown = ctx.rows(("level_group",)) or ctx.rows(("level_of_care",))
    heads = list(headlines)[:BRIEF_HEADLINES]
    if not heads:
        p.unavailable.append("not available: the results hold no rates by level of care for the period")
        return p
    p.paragraphs.append(f"{len(heads)} of the {len(ctx.labels)} definitions of success; every definition is in "
                        "'Success rates by definition'.")
    for d in heads:
        by = {x.get("group"): x for x in shown if str(x.get("definition_id")) == d}
        p.paragraphs.append(f"{ctx.labels.get(d, d)} [{d}]: {arm} {rate_phrase(by.get(ctx.arm), ctx.marker_of)}; "
                            f"{ref} {rate_phrase(by.get(ctx.reference), ctx.marker_of)}.")
    gone = [d for d in ctx.facts.get("headlines_not_shown") or [] if d not in heads]
    if gone:
        def why(d: str) -> str:
            """Per level compared: no one in the population (a follow-up window not over for the
            period's discharges), or too few people to show."""
            said = {}
            for g, name in ((ctx.arm, arm), (ctx.reference, ref)):
                x = next((x for x in shown if str(x.get("definition_id")) == d and x.get("group") == g), None)
                said[name] = "no one in the population" if x is not None and x.get("denominator") == 0 \
                    else "too few people to show"
            if len(set(said.values())) == 1:
                return next(iter(said.values()))
            return ", ".join(f"{k}: {v}" for k, v in said.items())
        p.paragraphs.append(f"Not shown for {arm} or {ref} in this period: "
                            + "; ".join(f"{ctx.labels.get(d, d)} [{d}] ({why(d)})" for d in gone) + ".")
    mine = [x for x in shown if str(x.get("definition_id")) in heads]
    groups = sorted({x.get("group") for x in mine if x.get("group") is not None}, key=tables.level_order)
    p.charts.append(charts.rates_by_definition(
        [{**x, "group": tables.level_label(x.get("group"))} for x in mine],
        {d: f"{ctx.labels.get(d, d)} [{d}]" for d in heads}, [tables.level_label(g) for g in groups],
        chart_id="chart-brief-rates", title="Headline outcomes by level of care", compact=True))
    return p


def _comparison_part(ctx: Any, headlines: Sequence[str], arm: str, ref: str) -> Section:
    p = Section("summary-comparison", f"{arm} compared with {ref}, adjusted for who is sent where")
    results = ctx.results
    preferred = _preferred_ni([x for x in ctx.noninferiority if x.get("arm") == ctx.arm])
    heads = list(headlines)[:BRIEF_HEADLINES]
    mine = [x for x in preferred if str(x.get("definition_id")) in heads] or preferred[:BRIEF_HEADLINES]
    if not mine:
        why = results["diagnostics"].get("not_estimable") or "no non-inferiority analysis in these results"
        p.paragraphs.append(f"Non-inferiority of IOP to residential: not available: {why}.")
        return p
    n_of = {(str(c.get("definition_id")), str(c.get("method"))): (c.get("n_arm"), c.get("n_reference"))
            for c in results.get("comparisons") or [] if c.get("estimand") == "rd"}
    for x in mine:
        d = str(x.get("definition_id"))
        p.paragraphs.append(verdict_sentence(x, ctx.labels.get(d, d), arm, ref, n_of.get((d, str(x.get("method"))))))
    if len(preferred) > len(mine):
        p.paragraphs.append(f"Non-inferiority for all {len(preferred)} applicable definitions: see '{arm} compared "
                            f"with {ref}'.")
    estimable = {str(x["definition_id"]) for x in mine if verdict(x) is not None}
    rows = [x for x in ctx.comparisons if str(x.get("definition_id")) in estimable
            and str(x.get("method")) in ("crude", str(mine[0].get("method")))]
    if rows:
        margins = {str(x["definition_id"]): float(x["margin_rd"]) for x in mine if x.get("margin_rd") is not None}
        relative = [str(x["definition_id"]) for x in mine if x.get("margin_basis") == "relative"]
        labels = {d: f"{ctx.labels.get(d, d)} [{d}]" for d in (str(x["definition_id"]) for x in mine)
                  if d in estimable}
        p.charts.append(charts.forest(rows, labels, margins, relative=relative, chart_id="chart-brief-forest",
                                      compact=True, arm=arm, reference=ref))
    return p


def _preferred_ni(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One non-inferiority row per definition: the first method of ADJUSTED_PREFERENCE present."""
    def rank(x: Mapping[str, Any]) -> int:
        m = x.get("method")
        return ADJUSTED_PREFERENCE.index(m) if m in ADJUSTED_PREFERENCE else len(ADJUSTED_PREFERENCE)

    best: dict[str, Mapping[str, Any]] = {}
    for x in rows:
        d = str(x.get("definition_id"))
        if d not in best or rank(x) < rank(best[d]):
            best[d] = x
    return list(best.values())
