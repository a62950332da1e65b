"""The board brief: one style of numbers, verdicts in words that agree with the
statistics' own conclusions, trust badges on their thresholds, every number with its definition
id and denominator, and at most two pages."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from report_fixtures import shown_group

from pipelines.report import brief, numbers

PDFINFO = "/usr/bin/pdfinfo"


# --------------------------------------------------------------------------- numbers
@pytest.mark.parametrize(("fn", "value", "text"), [
    (numbers.pct, 0.4312, "43.1%"),
    (numbers.pct, 3.47e-18, "0.0%"),
    (numbers.pct, -1e-12, "0.0%"),  # floating noise is never "-0.0%"
    (numbers.pp, -0.106, "-10.6 pp"),
    (numbers.pp, 0.0249, "+2.5 pp"),
    (numbers.pp, -0.0004, "0.0 pp"),
    (numbers.pp_points, 5.0, "+5.0 pp"),
    (numbers.p_value, 0.0004, "< 0.001"),
    (numbers.p_value, 0.001, "0.001"),
    (numbers.p_value, 0.0234, "0.023"),
    (numbers.count, 1234567, "1,234,567"),
    (numbers.ratio, 0.2712, "0.27"),
    (numbers.pct, None, "–"),
])
def test_one_style_of_numbers(fn, value, text):
    assert fn(value) == text


def test_cells_by_format_and_ranges():
    assert numbers.cell(0.5417771883289124, "pct") == "54.2%"
    assert numbers.cell(-0.0001, "num3") == "0.000"
    assert numbers.cell(144.0, "int") == "144"
    assert numbers.cell(0.02, "rd") == "+2.0 pp"
    assert numbers.cell(2e-7, "p") == "< 0.001"
    assert numbers.pp_range(-0.128, -0.085) == "-12.8 to -8.5 pp"
    assert numbers.pct_range(0.418, 0.443) == "41.8% to 44.3%"


# --------------------------------------------------------------------------- verdicts
def _row(lo, hi, *, eq=False, ni=False, margin=5.0, est=None):
    return {"margin_basis": "absolute", "ci95_low": lo, "ci95_high": hi, "equivalent": eq, "noninferior": ni,
            "margin_pp": margin, "estimate": est if est is not None or lo is None else (lo + hi) / 2}


@pytest.mark.parametrize(("row", "word"), [
    (_row(-0.03, 0.03, eq=True, ni=True), "no different"),
    (_row(0.01, 0.09, ni=True), "better"),
    (_row(-0.04, 0.09, ni=True), "no different"),  # not worse by the margin, may be better
    (_row(-0.12, -0.06), "worse"),  # wholly beyond the 5-point margin
    (_row(-0.09, -0.03), "inconclusive"),  # below zero, but a loss within the margin is not ruled out
    (_row(-0.09, 0.02), "inconclusive"),
    (_row(None, None), None),
])
def test_verdict_of_absolute_rows(row, word):
    assert brief.verdict(row) == word


def test_verdict_of_relative_rows():
    rel = {"margin_basis": "relative", "margin_ratio": 0.8, "equivalent_relative": False,
           "noninferior_relative": False, "rr_ci95_low": 0.21, "rr_ci95_high": 0.36}
    assert brief.verdict(rel) == "worse"  # wholly below 0.8 times the reference
    assert brief.verdict({**rel, "rr_ci95_low": 0.7, "rr_ci95_high": 0.95}) == "inconclusive"
    assert brief.verdict({**rel, "noninferior_relative": True, "rr_ci95_low": 1.05, "rr_ci95_high": 1.4}) == "better"
    assert brief.verdict({**rel, "equivalent_relative": True, "noninferior_relative": True, "rr_ci95_low": 0.9,
                          "rr_ci95_high": 1.1}) == "no different"


CONCLUSION_WORDS = (("is equivalent", "no different"), ("is better", "better"), ("is non-inferior", "no different"),
                    ("is worse", "worse"), ("inconclusive", "inconclusive"), ("not estimable", None))


def test_verdicts_agree_with_the_statistics_own_conclusions(analysis):
    """pipelines.stats.noninferiority writes each row's conclusion from its own intervals; the
    brief's word must be the same category on every row of a real analysis."""
    results = json.loads((analysis[0] / "results.json").read_text(encoding="utf-8"))
    rows = [x for x in results["noninferiority"] if x.get("conclusion") and x.get("suppression") is None]
    assert len({brief.verdict(x) for x in rows}) >= 2, "the fixture should give more than one verdict"
    for x in rows:
        want = next(word for phrase, word in CONCLUSION_WORDS if phrase in x["conclusion"])
        assert brief.verdict(x) == want, (x["definition_id"], x["method"], x["conclusion"])


# --------------------------------------------------------------------------- badges
def _results(smd_after=0.05, equipoise=0.5, followup=0.85, refused=0, failed_checks=0, quarantined=0):
    return {
        "balance": [{"method": "iptw_ate", "population": "p1", "covariate": "age_band=18-20", "smd_after": smd_after}],
        "diagnostics": {"adjusted": [{"method": "iptw_ate", "population": "p1", "equipoise": equipoise}]},
        "rates": [{"group_by": "level_group", "definition_id": "followup_reached_90d", "group": g, "rate": followup,
                   "denominator": 400} for g in ("iop", "residential")],
        "data_quality": {"ledger": [{"status": "refused" if refused else "loaded", "rows_read": 1000,
                                     "rows_quarantined": quarantined}],
                         "validation": {"checks": [{"status": "failed" if k < failed_checks else "passed",
                                                    "severity": "warn"} for k in range(4)]}},
    }


@pytest.mark.parametrize(("kw", "statuses"), [
    ({}, ("pass", "pass", "pass", "pass")),
    ({"smd_after": 0.15}, ("warn", "pass", "pass", "pass")),
    ({"smd_after": -0.25}, ("fail", "pass", "pass", "pass")),
    ({"equipoise": 0.19}, ("pass", "fail", "pass", "pass")),
    ({"followup": 0.79}, ("pass", "pass", "warn", "pass")),
    ({"followup": 0.49}, ("pass", "pass", "fail", "pass")),
    ({"failed_checks": 1}, ("pass", "pass", "pass", "warn")),
    ({"quarantined": 51}, ("pass", "pass", "pass", "warn")),  # 5.1% of 1,000 rows
    ({"refused": 1}, ("pass", "pass", "pass", "fail")),
])
def test_badges_on_their_thresholds(kw, statuses):
    got = brief.badges(_results(**kw), "iop", "residential", "p1")
    assert tuple(b.status for b in got) == statuses, [(b.name, b.status, b.detail) for b in got]
    assert all(b.detail for b in got)


def test_a_balance_failure_outside_the_headline_population_warns():
    r = _results(smd_after=0.5)
    r["balance"][0]["population"] = "p7"
    assert brief.badges(r, "iop", "residential", "p1")[0].status == "warn"


def test_badges_without_the_data_say_not_applicable():
    got = brief.badges({"balance": [], "diagnostics": {}, "rates": [], "data_quality": {}}, "iop", "residential", None)
    assert [b.status for b in got] == ["n/a"] * 4


# --------------------------------------------------------------------------- the brief of a real analysis
def test_every_headline_number_carries_its_definition_and_denominator(report_model):
    results, report = report_model
    s = next(s for s in report.sections if s.id == "summary")
    outcomes = next(p for p in s.parts if p.id == "summary-outcomes")
    lines = [x for x in outcomes.paragraphs if re.match(r".+ \[\w+\]: ", x)]
    assert 4 <= len(lines) <= brief.BRIEF_HEADLINES, outcomes.paragraphs
    rates = {(x["definition_id"], shown_group(x["group"])): x for x in results["rates"]
             if x["group_by"] == "level_group"}
    for line in lines:
        d = re.match(r".+ \[(\w+)\]: ", line).group(1)
        for level, pct, lo, hi, k, n in re.findall(
                r"(IOP|Residential) (\d+\.\d)% \(95% CI (\d+\.\d)% to (\d+\.\d)%; ([\d,]+) of ([\d,]+)\)", line):
            x = rates[(d, level)]  # the numbers are the results model's row, recomputed here from its counts
            assert int(k.replace(",", "")) == x["numerator"] and int(n.replace(",", "")) == x["denominator"]
            assert float(pct) == pytest.approx(100 * x["numerator"] / x["denominator"], abs=0.051)
            assert float(lo) == pytest.approx(100 * x["ci_low"], abs=0.051)
            assert float(hi) == pytest.approx(100 * x["ci_high"], abs=0.051)
        assert "% (95% CI" in line or "not shown" in line or "no one" in line, line
    comparison = next(p for p in s.parts if p.id == "summary-comparison")
    said = [x for x in comparison.paragraphs if re.match(r".+ \[\w+\]: ", x)]
    assert said and all(re.search(r"\]: (better|no different|worse|inconclusive|not estimable)", x) for x in said)
    for x in said:
        if "not estimable" not in x:
            assert re.search(r"[\d,]+ IOP and [\d,]+ Residential discharges", x), x
    trust = next(p for p in s.parts if p.id == "summary-trust")
    assert [b.name for b in trust.badges] == ["Covariate balance after weighting", "Overlap of the people compared",
                                              "Follow-up response", "Data checks"]
    assert {c.id for c in s.all_charts()} == {"chart-brief-rates", "chart-brief-forest", "chart-brief-trend"}


def test_trends_by_level_of_care_for_the_headline_definitions(report_model):
    results, report = report_model
    by_level = [x for x in results["trends"] if x["group_by"] == "level_group,quarter"]
    headline = ("completion", "retention_90d", "abstinent_90d_itt", "abstinent_90d_cc", "no_readmission_30d",
                "phq9_response")
    assert by_level and {x["definition_id"] for x in by_level} <= set(headline)
    levels = {x["group"].split("|")[0] for x in by_level if x["definition_id"] == "completion"}
    assert {"iop", "residential"} <= levels, levels
    section = next(s for s in report.sections if s.id == "trends")
    trend = next(t for t in section.tables if t.id == "table-trend")
    assert {"IOP", "Residential"} <= set(trend.frame["group"])  # drawn and tabled by level, as labelled


def test_the_brief_pdf_is_at_most_two_pages(written):
    info = subprocess.run([PDFINFO, str(written["brief"])], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert 1 <= pages <= 2, pages


def test_series_differ_by_marker_not_colour_alone():
    """Grayscale and colour-blind readers tell the levels apart by marker shape: each level of
    the dot-and-interval chart is drawn with its own marker (distinct paths in the SVG)."""
    from pipelines.report import charts

    groups = ["Outpatient", "IOP", "PHP", "Residential", "Inpatient", "Withdrawal management (detox)"]
    rows = [{"definition_id": d, "group": g, "rate": 0.1 + 0.1 * i + 0.01 * k, "ci_low": 0.05, "ci_high": 0.95}
            for i, d in enumerate(("completion", "retention_90d")) for k, g in enumerate(groups)]
    chart = charts.rates_by_definition(rows, {"completion": "Completed", "retention_90d": "Retained"}, groups,
                                       chart_id="chart-test", compact=True)
    shapes = set(re.findall(r'<path id="chart-test-m[0-9a-f]+" d="([^"]+)"', chart.svg))  # marker definitions
    assert len(shapes) >= len(groups), len(shapes)
