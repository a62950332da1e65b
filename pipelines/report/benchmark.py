"""The report's section on how the program compares with the nation: case-mix-adjusted observed
against expected successes (indirect standardization against TEDS-D), from
``results["benchmark"]`` (:mod:`pipelines.analysis.benchmark` computes it; this module only
arranges, words and draws it). The section, and the brief's part, exist only when the results
hold a benchmark.

Per definition benchmarked: the program's and each site's O/E in one sentence each (a site
hidden by disclosure control named as hidden, with the rule's marker), a funnel plot of the
sites' O/E against their expected counts with 95% and 99.8% control limits, and a compact
table of the program, level-of-care and site rows. Then how the expected counts were made:
the national models' discrimination and calibration on held-out TEDS-D rows, the covariates
used and left out, what could not be scored, and the method. The full rows (quarters too), the
models and the calibration deciles are full tables (workbook, HTML).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipelines.report import charts, numbers, tables
from pipelines.report.model import Section, Table

SECTION_ID = "benchmark"
TITLE = "How the program compares with the nation"
# how a sentence counts the successes of the default definitions (any other: "successes")
NOUNS = {"completion": "completions", "completion_or_transfer": "completions or transfers",
         "retention_90d": "stays of 90 days or more"}
GROUP_BY_WORDS = {"all": "program", "level_of_care": "level of care", "site": "site", "quarter": "quarter"}
GROUP_ORDER = ("all", "level_of_care", "site", "quarter")
WHY = {"small": "small numbers", "complementary": "withheld to protect a small count elsewhere"}
WEAK_DISCRIMINATION = 0.7  # a c-statistic below this: the covariates tell successes apart only modestly
FUNNEL_NOTE = ("Funnel plots: the limits allow for chance in the observed count only (1 ± z·sqrt(E(1-p))/E, p = the "
               "program's expected rate); the O/E interval in the table also carries the national model's "
               "uncertainty, so a site near a limit may be read differently by the two.")
READING = ("Read O/E as: above 1, more successes than people with the same characteristics in the same setting had "
           "nationally; below 1, fewer. The verdict is 'better' or 'worse than expected' when the 95% interval of O/E "
           "lies wholly above or below 1, else 'as expected'. Risk-standardized rate = O/E x the national rate of the "
           "same settings: a rate comparable across sites and with the nation.")


def _label(ctx: Any, d: str) -> str:
    return f"{ctx.labels.get(d, d)} [{d}]"


def _noun(d: str) -> str:
    return NOUNS.get(d, "successes")


def expected_text(v: Any) -> str:
    """An expected count in words: whole, with thousands separators (1084.05 -> '1,084')."""
    return numbers.NOT_APPLICABLE if numbers.missing(v) else f"{float(v):,.0f}"


def oe_phrase(x: Mapping[str, Any]) -> str:
    """'O/E 1.02, 95% CI 0.98 to 1.07'."""
    ci = ""
    if not numbers.missing(x.get("oe_ci_low")) and not numbers.missing(x.get("oe_ci_high")):
        ci = f", 95% CI {numbers.ratio(x['oe_ci_low'])} to {numbers.ratio(x['oe_ci_high'])}"
    return f"O/E {numbers.ratio(x['oe_ratio'])}{ci}"


def hidden_phrase(x: Mapping[str, Any], marker_of) -> str:
    """'not shown (*: small numbers)'."""
    reason = "complementary" if x.get("suppression") == "complementary" else "small"
    return f"not shown ({marker_of(x)}: {WHY[reason]})"


def row_sentence(x: Mapping[str, Any], name: str, whom: str, marker_of) -> str:
    """'site-a: 1,109 completions where 1,084 were expected for the people it served (O/E 1.02,
    95% CI 0.98 to 1.07): as expected.' ``whom``: 'it' (a site) or 'you' (the program)."""
    if x.get("suppression"):
        return f"{name}: {hidden_phrase(x, marker_of)}."
    if numbers.missing(x.get("oe_ratio")) or numbers.missing(x.get("observed")):
        return f"{name}: not estimable ({x.get('note') or 'no episode scored'})."
    d = str(x["definition_id"])
    verdict = f": {x['verdict']}" if x.get("verdict") else ""
    return (f"{name}: {numbers.count(x['observed'])} {_noun(d)} where {expected_text(x['expected'])} were expected "
            f"for the people {whom} served ({oe_phrase(x)}){verdict}.")


def _definitions(ctx: Any, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    present = list(dict.fromkeys(str(x["definition_id"]) for x in rows))
    order = {d: i for i, d in enumerate(ctx.labels)}
    return sorted(present, key=lambda d: (order.get(d, 999), present.index(d)))


def _group_name(x: Mapping[str, Any]) -> str:
    return "All sites and levels" if x["group_by"] == "all" else str(tables.level_label(x["group"]))


def _sorted(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    def key(x):
        g = str(x.get("group_by"))
        within = tables.level_order(x["group"]) if g == "level_of_care" else (0, str(x["group"]))
        return (GROUP_ORDER.index(g) if g in GROUP_ORDER else len(GROUP_ORDER), *within)

    return sorted(rows, key=key)


def funnel_points(rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], float | None]:
    """The shown sites as funnel points ({group, expected, oe}) and the program's expected rate
    p = E / n of its "all" row (None without one)."""
    total = next((x for x in rows if x["group_by"] == "all"), None)
    rate = None
    if total is not None and total.get("expected") is not None and total.get("n"):
        rate = float(total["expected"]) / float(total["n"])
    points = [{"group": str(x["group"]), "expected": float(x["expected"]), "oe": float(x["oe_ratio"])}
              for x in rows if x["group_by"] == "site" and not x.get("suppression")
              and x.get("oe_ratio") is not None and x.get("expected")]
    return points, rate


# --------------------------------------------------------------------------- tables
def _compact_table(ctx: Any, d: str, rows: Sequence[Mapping[str, Any]]) -> Table:
    """The rows of one definition a reader compares: program, levels of care, sites."""
    recs, hidden = [], []
    for x in _sorted([x for x in rows if x["group_by"] in ("all", "level_of_care", "site")]):
        reason = "complementary" if x.get("suppression") == "complementary" else \
            "small" if x.get("suppression") else None
        shown = reason is None and x.get("oe_ratio") is not None
        rsr = (f"{numbers.pct(x['risk_standardized_rate'])} ({numbers.pct_range(x['rsr_ci_low'], x['rsr_ci_high'])})"
               if shown else None)
        oe = (f"{numbers.ratio(x['oe_ratio'])} ({numbers.ratio(x['oe_ci_low'])} to {numbers.ratio(x['oe_ci_high'])})"
              if shown else None)
        recs.append({"by": GROUP_BY_WORDS.get(x["group_by"], x["group_by"]), "group": _group_name(x), "n": x.get("n"),
                     "observed": x.get("observed") if reason is None else None,
                     "expected": (f"{float(x['expected']):,.1f}" if shown and x.get("expected") is not None
                                  else None),
                     "oe": oe, "rsr": rsr, "national_rate": x.get("national_rate") if shown else None,
                     "verdict": x.get("verdict") if shown else f"not shown ({WHY[reason]})" if reason
                     else x.get("note")})
        hidden.append({c: (reason if recs[-1][c] is None and reason else None)
                       for c in ("n", "observed", "expected", "oe", "rsr", "national_rate")})
    cols = ["by", "group", "n", "observed", "expected", "oe", "rsr", "national_rate", "verdict"]
    frame = pd.DataFrame(recs, columns=cols).astype(object)
    frame = frame.where(frame.notna(), None)
    t = Table(id=f"table-benchmark-{d}", title=f"{_label(ctx, d)}: observed against expected, by level of care and "
                                                 "site", frame=frame, count_cols=("n", "observed"),
              hidden=pd.DataFrame(hidden, columns=cols[2:-1], dtype=object),
              # the interval columns are text ("1.02 (0.98 to 1.07)") given a number format so that they
              # align and stay on one line like numbers (a text cell is shown as it is)
              formats={"n": "int", "observed": "int", "expected": "num1", "oe": "ratio", "rsr": "pct",
                       "national_rate": "pct"},
              headers={"n": "episodes scored", "observed": "observed", "expected": "expected",
                       "oe": "O/E (95% CI)", "rsr": "risk-standardized rate (95% CI)",
                       "national_rate": "national rate"},
              note="n: the episodes scored (levels with a TEDS-D setting). O/E = observed / expected successes; "
                   "the national rate is that of TEDS-D over the same settings.")
    t.compact = True
    return t


def _full_rows_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    cols = ["definition_id", "group_by", "group", "n", "observed", "expected", "oe_ratio", "oe_ci_low", "oe_ci_high",
            "risk_standardized_rate", "rsr_ci_low", "rsr_ci_high", "national_rate", "verdict", "shrunk", "note"]
    ordered = list(rows)  # the results' order: by definition, then group_by
    frame = pd.DataFrame([{c: (tables.level_label(x[c]) if c == "group" and x["group_by"] == "level_of_care"
                               else ("yes" if x.get(c) else "no") if c == "shrunk" else x.get(c)) for c in cols}
                          for x in ordered], columns=cols).astype(object)
    frame = frame.where(frame.notna(), None)
    stats = cols[4:14]
    reasons = []
    for x in ordered:
        reason = "complementary" if x.get("suppression") == "complementary" else \
            "small" if x.get("suppression") else None
        reasons.append({c: reason if reason and x.get(c) is None else None for c in ["n", *stats]})
    return Table(
        id="table-benchmark-rows", title="Benchmark rows: observed / expected against TEDS-D (benchmark.csv)",
        frame=frame, count_cols=("n", "observed"), hidden=pd.DataFrame(reasons, columns=["n", *stats], dtype=object),
        formats={"n": "int", "observed": "int", "expected": "num1", "oe_ratio": "ratio", "oe_ci_low": "ratio",
                 "oe_ci_high": "ratio", "risk_standardized_rate": "pct", "rsr_ci_low": "pct", "rsr_ci_high": "pct",
                 "national_rate": "pct"},
        headers={"definition_id": "definition", "group_by": "by", "oe_ratio": "O/E", "oe_ci_low": "O/E 95% CI low",
                 "oe_ci_high": "O/E 95% CI high", "risk_standardized_rate": "risk-standardized rate",
                 "rsr_ci_low": "RSR 95% CI low", "rsr_ci_high": "RSR 95% CI high", "national_rate": "national rate"},
        note="Every group the analysis benchmarked (program, level of care, site, and quarter when asked for); "
             "n: episodes scored.", detail=True)


def _models_table(models: Sequence[Mapping[str, Any]]) -> Table:
    recs = [{**x, "level_of_care": tables.level_label(x["level_of_care"]),
             "converged": "yes" if x.get("converged") else "no"} for x in models]
    cols = ["definition_id", "level_of_care", "n_fit", "n_holdout", "national_rate", "c_statistic",
            "calibration_in_the_large", "calibration_intercept", "calibration_slope", "terms", "converged", "note"]
    t = tables.simple_table(
        "table-benchmark-models", "Benchmark models: national case-mix model of each definition and setting "
        "(benchmark_models.csv)", recs, cols,
        {"n_fit": "int", "n_holdout": "int", "national_rate": "pct", "c_statistic": "num2",
         "calibration_in_the_large": "rd", "calibration_intercept": "num2", "calibration_slope": "num2", "terms": "int"},
        headers={"definition_id": "definition", "level_of_care": "TEDS-D setting", "n_fit": "TEDS-D rows fitted",
                 "n_holdout": "rows held out", "c_statistic": "c-statistic",
                 "calibration_in_the_large": "observed - predicted", "calibration_intercept": "calibration intercept",
                 "calibration_slope": "calibration slope", "terms": "coefficients"},
        note="Measured on the held-out fifth of the TEDS-D rows. c-statistic: 0.5 is chance, 1 perfect. Calibration: "
             "observed minus predicted rate (0 = calibrated), recalibration intercept (0) and slope (1; below 1, the "
             "model's spread of risks is too wide).")
    t.count_cols = ()  # national TEDS-D rows, not the program's people
    # a count of rows the analysis left out is a small one (disclosure control): the rule's marker
    t.hidden = pd.DataFrame([{c: "small" if x.get(c) is None else None for c in ("n_fit", "n_holdout")}
                             for x in models], columns=["n_fit", "n_holdout"], dtype=object)
    return t


def _calibration_table(calibration: Sequence[Mapping[str, Any]]) -> Table:
    recs = [{**x, "level_of_care": tables.level_label(x["level_of_care"])} for x in calibration]
    t = tables.simple_table(
        "table-benchmark-calibration", "Benchmark calibration: held-out TEDS-D rows by decile of predicted risk "
        "(benchmark_calibration.csv)", recs,
        ["definition_id", "level_of_care", "decile", "n", "predicted", "observed"],
        {"decile": "int", "n": "int", "predicted": "pct", "observed": "pct"},
        headers={"definition_id": "definition", "level_of_care": "TEDS-D setting", "n": "rows",
                 "predicted": "mean predicted", "observed": "observed rate"},
        note="A calibrated model has observed close to predicted in every decile.")
    t.detail = True
    return t


# --------------------------------------------------------------------------- the section
def benchmark_section(ctx: Any) -> Section | None:
    """The section, or None when the results hold no benchmark (no TEDS-D rows were loaded)."""
    b = ctx.results.get("benchmark")
    if not b:
        return None
    s = Section(SECTION_ID, TITLE)
    rows = list(b.get("rows") or [])
    s.paragraphs.append(
        f"Your discharges in the period ({numbers.count(b.get('n_program'))}) against {b.get('reference') or 'TEDS-D'}: "
        "for each definition, the successes observed beside those expected had each person done as people with "
        "the same characteristics, in the same setting, did nationally (indirect standardization). "
        + READING)
    if b.get("shrink"):
        s.paragraphs.append("Each group's O/E is shrunk toward 1 (empirical Bayes), as CMS's hierarchical measures do: "
                            "a small site's O/E moves further than a large one's.")
    for d in _definitions(ctx, rows):
        s.parts.append(_definition_part(ctx, d, [x for x in rows if str(x["definition_id"]) == d], b))
    if not rows:
        s.unavailable.append("not available: no definition could be benchmarked")
    s.parts.append(_model_part(ctx, b, rows))
    return s


def _definition_part(ctx: Any, d: str, rows: Sequence[Mapping[str, Any]], b: Mapping[str, Any]) -> Section:
    p = Section(f"benchmark-{d}", _label(ctx, d))
    total = next((x for x in rows if x["group_by"] == "all"), None)
    if total is not None:
        p.paragraphs.append(row_sentence(total, "All your sites", "you", ctx.marker_of))
    overlap = next((o for o in b.get("overlap") or [] if str(o.get("definition_id")) == d), None)
    if overlap is not None and overlap.get("warning"):
        p.paragraphs.append(f"Warning: {overlap['warning']}.")
    sites = _sorted([x for x in rows if x["group_by"] == "site"])
    p.bullets += [row_sentence(x, str(x["group"]), "it", ctx.marker_of) for x in sites]  # a sentence a site
    points, rate = funnel_points(rows)
    if points and rate is not None:
        p.charts.append(charts.oe_funnel(points, rate, _label(ctx, d), chart_id=f"chart-benchmark-funnel-{d}",
                                         shrunk=bool(b.get("shrink"))))
    elif sites:
        p.unavailable.append("funnel plot: not available: no site's O/E is shown")
    p.tables.append(_compact_table(ctx, d, rows))
    return p


def _join(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _range(values: Sequence[float], fmt=numbers.ratio) -> str:
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)} to {fmt(hi)}"


def model_sentences(ctx: Any, models: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per definition: the held-out c-statistic and calibration slope and intercept across the
    settings, and the settings whose model did not converge."""
    out = []
    for d in dict.fromkeys(str(x["definition_id"]) for x in models):
        mine = [x for x in models if str(x["definition_id"]) == d]
        fitted = [x for x in mine if x.get("c_statistic") is not None]
        parts = []
        if fitted:
            parts.append(f"c-statistic {_range([x['c_statistic'] for x in fitted])}")
            slopes = [x["calibration_slope"] for x in fitted if x.get("calibration_slope") is not None]
            if slopes:
                parts.append(f"calibration slope {_range(slopes)}")
            icpt = [x["calibration_intercept"] for x in fitted if x.get("calibration_intercept") is not None]
            if icpt:
                parts.append(f"intercept {_range(icpt)}")
        text = f"{_label(ctx, d)}: " + ("; ".join(parts) + f" across {len(fitted)} setting{'s' if len(fitted) != 1 else ''}" if parts
                                         else "no model could be checked")
        failed = [x for x in mine if not x.get("converged")]
        if failed:
            text += (f"; no converged model for {_join([str(tables.level_label(x['level_of_care'])) for x in failed])}"
                     " (its episodes are not scored)")
        out.append(text + ".")
    return out


def _model_part(ctx: Any, b: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> Section:
    p = Section("benchmark-method", "How the expected counts were made")
    models = list(b.get("models") or [])
    cstats = [x["c_statistic"] for x in models if x.get("c_statistic") is not None]
    if models:
        lead = ("National models, checked on the held-out fifth of the TEDS-D rows (c-statistic: 0.5 is chance, 1 "
                "perfect; calibration slope 1 and intercept 0 when calibrated).")
        if cstats and max(cstats) < WEAK_DISCRIMINATION:
            lead += (" The covariates both sources carry tell successes from failures only modestly: the expected "
                     "counts adjust for the case mix they describe, not for everything that differs between your "
                     "patients and the nation's.")
        p.paragraphs.append(lead)
        p.paragraphs += model_sentences(ctx, models)
    used = [str(x["covariate"]) for x in b.get("covariates") or [] if x.get("used")]
    unused = [x for x in b.get("covariates") or [] if not x.get("used")]
    if used:
        p.paragraphs.append(f"Adjusted for {len(used)} covariates both sources carry: {', '.join(used)}.")
    for x in unused:
        p.paragraphs.append(f"Not adjusted for {x['covariate']}: {x.get('reason') or 'not used'}.")
    shares = [o for o in b.get("overlap") or [] if o.get("share") is not None]
    if shares:
        p.paragraphs.append(
            "Overlap with the nation (episodes with a covariate value rare or absent among the national rows of "
            "their setting, or a risk outside the national range; their expected counts rest on extrapolation): "
            + "; ".join(f"{_label(ctx, str(o['definition_id']))} {numbers.pct(o['share'])} of "
                        f"{numbers.count(o['n'])}" + (" (warned about above)" if o.get("warning") else "")
                        for o in shares) + ".")
    for x in b.get("not_applicable") or []:
        p.paragraphs.append(f"Not benchmarked: {x['id']}: {x['note']}.")
    unmatched = dict(b.get("unmatched_levels") or {})
    if unmatched:
        p.paragraphs.append("Not scored (no TEDS-D setting to compare with): " + "; ".join(
            f"{tables.level_label(k)} ({numbers.count(v)} episodes)" if v is not None else
            f"{tables.level_label(k)} ({ctx.marker} episodes)" for k, v in unmatched.items()) + ".")
    for note in b.get("notes") or []:
        p.paragraphs.append(f"Note: {note}.")
    p.paragraphs.append(f"Method: {b.get('method') or ''}".strip())
    if any(x.get("group_by") == "site" and x.get("oe_ratio") is not None for x in rows):
        p.paragraphs.append(FUNNEL_NOTE)
    if rows:
        p.tables.append(_full_rows_table(rows))
    if models:
        p.tables.append(_models_table(models))
    if b.get("calibration"):
        p.tables.append(_calibration_table(b["calibration"]))
    return p


# --------------------------------------------------------------------------- the brief
BRIEF_DEFINITION = "completion"


def brief_part(ctx: Any) -> Section | None:
    """The brief's few lines on the benchmark: each definition's overall O/E in one sentence,
    and the sites of the first (completion when benchmarked) grouped by verdict. None when the
    results hold no benchmark."""
    b = ctx.results.get("benchmark")
    if not b or not b.get("rows"):
        return None
    rows = list(b["rows"])
    p = Section("summary-benchmark", f"Against the nation: {b.get('reference') or 'TEDS-D'}, adjusted for case mix")
    defs = _definitions(ctx, rows)
    for d in defs:
        total = next((x for x in rows if str(x["definition_id"]) == d and x["group_by"] == "all"), None)
        if total is not None:
            p.paragraphs.append(row_sentence(total, _label(ctx, d), "you", ctx.marker_of))
    head = BRIEF_DEFINITION if BRIEF_DEFINITION in defs else defs[0]
    sites = _sorted([x for x in rows if str(x["definition_id"]) == head and x["group_by"] == "site"])
    if sites:
        said: dict[str, list[str]] = {}
        for x in sites:
            if x.get("suppression"):
                key = f"not shown ({hidden_phrase(x, ctx.marker_of).removeprefix('not shown (')}"
            else:
                key = str(x.get("verdict") or "not estimable")
            said.setdefault(key, []).append(str(x["group"]))
        order = ["better than expected", "worse than expected", "as expected"]
        keys = sorted(said, key=lambda k: order.index(k) if k in order else len(order))
        p.paragraphs.append(f"By site, {ctx.labels.get(head, head)} [{head}]: "
                            + "; ".join(f"{_join(said[k])} {k}" for k in keys)
                            + f". Each site's O/E and the funnel plot: '{TITLE}'.")
    warned = [o for o in b.get("overlap") or [] if o.get("warning") and str(o.get("definition_id")) == head]
    if warned:
        p.paragraphs.append(f"Caution: {warned[0]['warning']}.")
    return p
