"""The report written from a real analysis (tests/support/plugin_analysis.py): every number it shows is the
results model's, and the expectations below are counted again from the raw extracts."""

from __future__ import annotations

import csv
import html as html_mod
import itertools
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_fixtures import shown_group

from pipelines.cli import main
from pipelines.disclosure import DisclosureError

CHART_IDS = ("chart-brief-rates", "chart-brief-forest", "chart-brief-trend", "chart-rates", "chart-forest",
             "chart-love", "chart-overlap", "chart-km", "chart-trend", "chart-funnel", "chart-stepdown", "chart-dose",
             "chart-ceac")
SECTION_ORDER = ("summary", "data-quality", "cohort", "rates", "comparison", "survival", "trends", "sites",
                 "stepdown", "services", "appendix")
# records-v1: level_of_care from asam_level when only that is given
ASAM = {"1": "outpatient", "2.1": "iop", "2.5": "php", "3.1": "residential_short", "3.3": "residential_short",
        "3.5": "residential_short", "3.7": "residential_hospital", "4": "inpatient"}
GROUP = {"residential_short": "residential", "residential_long": "residential",
         "residential_hospital": "residential"}


def _discharges(data: Path) -> list[dict[str, str]]:
    with open(data / "discharges.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        loc = r["level_of_care"] or ASAM.get(r["asam_level"]) or "detox"
        r["group"] = GROUP.get(loc, loc)
    return rows


def _wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return c - h, c + h


def _results(analysis) -> dict:
    return json.loads((analysis[0] / "results.json").read_text(encoding="utf-8"))


def _section(html: str, sid: str) -> str:
    start = html.index(f'<section id="{sid}">')
    return html[start:html.index("</section>", start)]


def _table(html: str, tid: str) -> list[list[str]]:
    start = html.index(f'<table id="{tid}">')
    body = html[start:html.index("</table>", start)].replace("<wbr>", "")  # break opportunities are not text
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in body.split("<tr>")[1:]]


def test_writes_the_three_formats_and_the_brief(written):
    assert sorted(written) == [".html", ".pdf", ".xlsx", "brief", "success-sheet"]
    assert written["brief"].name == "brief.pdf" and written["brief"].parent == written[".pdf"].parent
    assert written["success-sheet"].name == "success-sheet.pdf" and written["success-sheet"].parent == written[".pdf"].parent
    for p in written.values():
        assert p.stat().st_size > 1000


def test_html_is_self_contained(html):
    # nothing fetched at view time: no external src/href, no CDN, no @import
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
    assert "@import" not in html and "<link" not in html
    assert len(html.encode()) < 5_000_000


def test_sections_in_order_and_every_chart_present(html):
    positions = [html.index(f'<section id="{s}">') for s in SECTION_ORDER]
    assert positions == sorted(positions)
    for cid in CHART_IDS:
        assert re.search(rf'<figure id="{cid}" class="chart">\s*<svg', html), cid
    assert len(re.findall(r'<figure id="chart-', html)) == len(CHART_IDS)
    ids = re.findall(r'\bid="([^"]+)"', html)  # ids stay unique when several SVGs share one page
    assert len(ids) == len(set(ids))


def test_summary_counts_come_from_the_extracts(html, analysis):
    rows = _discharges(analysis[1])
    summary = _section(html, "summary")
    quarters = sorted({f"{r['discharge_date'][:4]}Q{(int(r['discharge_date'][5:7]) - 1) // 3 + 1}" for r in rows})
    sites = len({r["site_id"] for r in rows})
    assert (f"Who was served: {len(rows):,} discharges ({quarters[0]} to {quarters[-1]}) from {sites} programs"
            in summary)
    for group, word in (("iop", "IOP"), ("residential", "Residential")):
        mine = [r for r in rows if r["group"] == group]
        k, n = sum(r["discharge_reason"] == "completed" for r in mine), len(mine)
        lo, hi = _wilson(k, n)
        phrase = f"{word} {100 * k / n:.1f}% (95% CI {100 * lo:.1f}% to {100 * hi:.1f}%; {k:,} of {n:,})"
        assert phrase in summary, phrase
    assert "[completion]" in summary  # every number carries its definition id


def test_the_period_is_stated_in_the_title_and_every_section_reads_it(html, analysis):
    label = _results(analysis)["period"]["label"]
    assert f"<title>Outcomes after intensive outpatient and residential treatment — {label}</title>" in html
    assert f"Period: {label}" in html
    assert "Quarter 2026Q3" not in html  # the old title over cumulative numbers


def test_every_rate_shown_is_the_results_models(html, analysis):
    results = _results(analysis)
    model = {(r["definition_id"], r["group"]): r for r in results["rates"] if r["group_by"] == "level_group"}
    rows = _table(html, "table-rates")[1:]
    assert len(rows) == len(model)
    labels = {shown_group(g): g for _, g in model}
    for cells in rows:
        r = model[(cells[1], labels[html_mod.unescape(cells[3])])]
        for i, key in ((4, "numerator"), (5, "denominator")):
            assert cells[i] == (f"{r[key]:,}" if r[key] is not None else cells[i]), (cells, r)
        if r["rate"] is not None:
            assert cells[6] == f"{100 * r['rate']:.1f}%"
        else:
            assert cells[6] in ("*", "†", "–")


def test_noninferiority_on_both_margins_reaches_the_results_and_the_report(html, analysis):
    """Where the residential rate is below 20% the headline verdict is on the risk-ratio
    margin, and says why; results.json holds both verdicts with their conclusions."""
    results = _results(analysis)
    assert results["diagnostics"]["margin_basis"] == "auto" and results["diagnostics"]["margin_ratio"] == 0.8
    shown = [x for x in results["noninferiority"] if x["suppression"] is None]
    relative = [x for x in shown if x["margin_basis"] == "relative"]
    assert relative and [x for x in shown if x["margin_basis"] == "absolute"]  # the fixture has both
    for x in shown:
        assert x["conclusion"] == x[f"conclusion_{x['margin_basis']}"]
        assert x["conclusion_absolute"] and x["conclusion_relative"]
        if x["rr"] is not None:
            assert x["noninferior_relative"] == (x["rr_ci95_low"] > x["margin_ratio"])
            assert x["equivalent_relative"] == (x["rr_ci90_low"] > 0.8 and x["rr_ci90_high"] < 1 / 0.8)
        # the rule: the primary estimate's (standardized) residential risk against 20%
        risks = {c["risk_reference"] for c in results["comparisons"]
                 if c["definition_id"] == x["definition_id"] and c["method"] == x["method"]
                 and c["estimand"] == "rd" and c["risk_reference"] is not None}
        if len(risks) == 1:
            assert (x["margin_basis"] == "relative") == (risks.pop() < 0.2), x["margin_basis_reason"]
    rows = {html_mod.unescape(c[0]): [html_mod.unescape(v) for v in c] for c in _table(html, "table-noninferiority")[1:]}
    labels = {d["id"]: d["label"] for d in results["definitions"]}
    comparison = html_mod.unescape(_section(html, "comparison"))
    for x in relative:
        cells = rows[labels[x["definition_id"]]]
        assert cells[2] == "relative (risk ratio)" and cells[3] == "0.80", cells
        assert cells[-1] == x["conclusion_relative"], cells
        if x["rr"] is not None:
            assert cells[4] == f"{x['rr']:.2f}" and cells[5] == f"{x['rr_ci95_low']:.2f}", cells
        assert x["margin_basis_reason"].removeprefix("relative: ") in comparison
    assert "Non-inferiority on a relative margin (risk ratio) where the residential rate is low" in comparison
    assert "unless the residential rate is below 20%, then relative" in html_mod.unescape(html)


def test_followup_response_is_the_registry_definition(html, analysis):
    """The report's follow-up response table counts what rates.csv counts for the registry's
    followup_reached_* definitions, not a count of its own."""
    with open(analysis[0] / "rates.csv", newline="", encoding="utf-8") as fh:
        csv_rows = {(r["definition_id"], r["group"]): r for r in csv.DictReader(fh) if r["group_by"] == "level_group"}
    rows = _table(html, "table-followup")[1:]
    assert {c[1] for c in rows} >= {"followup_reached_30d", "followup_reached_90d"}
    labels = {shown_group(g): g for _, g in csv_rows}
    for cells in rows:
        r = csv_rows[(cells[1], labels[html_mod.unescape(cells[3])])]
        assert cells[5] == (f"{int(r['denominator']):,}" if r["denominator"] else cells[5])
        assert cells[4] == (f"{int(r['numerator']):,}" if r["numerator"] else cells[4])


def test_validation_results_and_data_docs_reach_the_report(html, written):
    dq = _section(html, "data-quality")
    assert "results.json holds no validation section" not in html
    assert "All " in dq and "validation checks passed" in dq
    links = re.findall(r'<a href="([^"]+)">Data Docs', dq)
    assert len(links) == 2  # discharges and follow-ups
    for href in links:
        assert (written[".html"].parent / href).resolve().is_file(), href


def test_balance_for_every_weighting_method_and_the_warning_follows_it(html, analysis):
    with open(analysis[0] / "balance.csv", newline="", encoding="utf-8") as fh:
        balance = list(csv.DictReader(fh))
    methods = sorted({r["method"] for r in balance})
    assert methods == ["iptw_ate", "iptw_att", "overlap"]
    comparison = _section(html, "comparison")
    for m in methods:
        assert f'<table id="table-balance-{m}">' in comparison
    assert "Covariate balance before and after each weighting method (Love plot)" in comparison
    # overlap weights balance means exactly; IPTW need not: the table must not show 0.000 for all
    ate = _table(html, "table-balance-iptw_ate")[1:]
    assert any(c[2] != "0.000" and c[2] != "-0.000" for c in ate)
    summary = _section(html, "summary")
    for m, title in (("iptw_ate", "IPTW weighting (ATE"), ("iptw_att", "IPTW weighting (ATT)")):
        worst = max(abs(float(r["smd_after"])) for r in balance if r["method"] == m and r["smd_after"])
        assert (f"after {title}" in summary) == (worst > 0.1), (m, worst)


def test_small_cells_are_marked_with_their_reason_never_zero(html, analysis):
    results = _results(analysis)
    kinds = {r["suppression"] for r in results["rates"] if r["suppressed"]}
    assert kinds >= {"small", "complementary"}  # the fixture has both kinds
    sites = _table(html, "table-sites")[1:]
    for cells in sites:
        row = next(r for r in results["rates"] if r["group_by"] == "site" and r["group"] == cells[3]
                   and r["definition_id"] == cells[1])
        if row["suppressed"]:
            assert cells[6] == {"small": "*", "complementary": "†"}[row["suppression"]]
    assert 'title="withheld to protect another cell"' in html and 'title="small number"' in html


def test_no_count_from_1_to_10_in_any_count_cell(analysis):
    from pipelines.report import build

    report = build.build_report(_results(analysis))
    checked = 0
    for t in report.tables():
        for c in t.count_cols:
            for i, v in enumerate(t.frame[c]):
                if v is not None and not t.is_hidden(i, c):
                    checked += 1
                    assert not 1 <= int(v) <= 10, (t.id, c, v)
    assert checked > 100


def test_the_report_and_export_are_pure_functions_of_the_results(analysis, tmp_path, monkeypatch):
    """No warehouse is opened (any DuckDB connection fails here), and the same results give the
    same report twice."""
    import duckdb
    from report_fixtures import copy_results

    from pipelines.export.command import write_accreditation_export
    from pipelines.report.command import write_report

    def refuse(*args, **kwargs):
        raise AssertionError("a document opened a DuckDB database")

    monkeypatch.setattr(duckdb, "connect", refuse)
    a = copy_results(analysis[0], tmp_path / "a")
    first = write_report(a, formats=("html",))[0].read_text(encoding="utf-8")
    write_accreditation_export(a)
    b = copy_results(analysis[0], tmp_path / "b")
    second = write_report(b, formats=("html",))[0].read_text(encoding="utf-8")
    assert first == second


def test_xlsx_reads_back_one_sheet_per_section_and_neutralizes_formulas(written):
    import openpyxl

    wb = openpyxl.load_workbook(written[".xlsx"])
    # the contents first, then the board brief; every section has at least one sheet, in reading order
    assert wb.sheetnames[:2] == ["Contents", "Board brief"]
    sections = [r[1] for r in itertools.takewhile(any, wb["Contents"].iter_rows(min_row=3, values_only=True))]
    assert len(dict.fromkeys(sections)) == len(SECTION_ORDER)
    assert len(wb.sheetnames) == 1 + len(sections)
    values = [c.value for ws in wb for row in ws.iter_rows() for c in row if c.value is not None]
    texts = [v for v in values if isinstance(v, str)]
    assert not any(t.startswith(("=", "+", "-", "@", "\t", "\r")) for t in texts)
    rates = wb["Success rates by level group"]  # the rates table's sheet (the section is "Success rates by definition")
    header = next(r for r in rates.iter_rows(values_only=True) if r[0] == "definition")
    k = header.index("numerator")
    nums = [r[k] for r in rates.iter_rows(values_only=True) if r[0] and r[0] != "definition" and len(r) > k]
    assert any(isinstance(v, int) and v > 10 for v in nums)
    assert not any(isinstance(v, int) and 1 <= v <= 10 for v in nums)


def test_pdf_pages_are_not_blank(written, tmp_path):
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    import matplotlib.image as mpimg
    import numpy as np

    subprocess.run(["pdftoppm", "-r", "40", "-png", str(written[".pdf"]), str(tmp_path / "page")], check=True,
                   timeout=120)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) >= len(SECTION_ORDER)  # each section starts a page
    for p in pages:
        img = np.asarray(mpimg.imread(p))[..., :3]
        ink = (img < 0.9).any(axis=-1).mean()
        assert ink > 0.005, f"{p.name} looks blank ({ink:.4f} of pixels inked)"


def test_writer_refuses_a_small_count(tmp_path):
    import pandas as pd

    from pipelines.report.html import write_html
    from pipelines.report.model import Report, Section, Table

    bad = Table(id="t", title="t", frame=pd.DataFrame({"group": ["iop"], "n": [4]}), count_cols=("n",))
    report = Report(title="x", period="2026Q3", run_id="", created_at="", rule_name="cms", marker="*",
                    disclosure_note="", sections=[Section("s", "S", tables=[bad])])
    with pytest.raises(DisclosureError):
        write_html(report, tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_cli_report_and_user_errors(analysis, tmp_path, capsys):
    res = analysis[0]
    assert main(["report", "--out", str(tmp_path / "rep"), "--results", str(res), "--format", "xlsx"]) == 0
    assert (tmp_path / "rep" / "report.xlsx").exists()
    assert main(["report", "--out", str(tmp_path / "rep"), "--results", str(res), "--quarter", "2026-07"]) == 2
    assert main(["report", "--out", str(tmp_path / "nothing")]) == 2
    # a period the results do not hold: which command to run
    assert main(["report", "--out", str(tmp_path / "rep"), "--results", str(res), "--quarter", "2026Q2"]) == 2
    assert main(["report", "--out", str(tmp_path / "rep"), "--results", str(res), "--disclosure",
                 "opensafely"]) == 2
    err = capsys.readouterr().err
    assert "not a quarter like 2026Q3" in err and "no results.json found" in err
    assert f"not 2026Q2; run `levelcare analyze --out {res} --quarter 2026Q2` first" in err
    assert "disclosed under the cms rule, not opensafely" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("schema_version"), "written by an older levelcare (results schema 1"),
    (lambda d: d.pop("data_quality"), "missing section(s) data_quality"),
    (lambda d: d["rates"][0].update(numerator="many"), "does not match the results schema at rates.0.numerator"),
])
def test_old_or_partial_results_are_one_line_errors_and_nothing_is_written(analysis, tmp_path, capsys, change,
                                                                         message):
    data = json.loads((analysis[0] / "results.json").read_text(encoding="utf-8"))
    change(data)
    (tmp_path / "results.json").write_text(json.dumps(data), encoding="utf-8")
    assert main(["report", "--out", str(tmp_path)]) == 2
    assert main(["export", "accreditation", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_balance_moments_of_levels_the_rates_are_grouped_by_are_withheld(analysis):
    # the analysis publishes rates by site: a site_id level's mean times its arm's size would
    # count people of a cell those rates show or withhold
    results = json.loads((analysis[0] / "results.json").read_text(encoding="utf-8"))
    assert {"site"} <= {x["group_by"] for x in results["rates"]}
    rows = results["balance"]
    sites = [x for x in rows if x["covariate"].startswith("site_id=")]
    assert sites and all(x["mean_arm_before"] is None and x["sd_reference_after"] is None for x in sites)
    assert all(x["suppression"] in ("complementary", "small") for x in sites)
    assert any(x["suppression"] == "complementary" for x in sites)
    # other levels show their moments, unless a head count behind them is small
    shown = [x for x in rows if not x["covariate"].startswith("site_id=") and x["suppression"] is None]
    assert shown and all(x["mean_arm_before"] is not None for x in shown)
    for x in shown:
        if x["binary"] and x["n_arm"] is not None:
            k = round(x["n_arm"] * x["mean_arm_before"])
            assert k == 0 or (k > 10 and x["n_arm"] - k > 10 or x["n_arm"] - k == 0), x


def test_diagnostics_head_counts_are_shown_rate_denominators_or_hidden(analysis):
    # a population's size is its definition's rate denominator for the arm: shown beside the
    # rates only where the rates show it, or it would undo a withheld cell there
    results = json.loads((analysis[0] / "results.json").read_text(encoding="utf-8"))
    dens: dict[str, set[int]] = {}
    for x in results["rates"]:
        if x["group_by"] == "level_group" and x["denominator"] is not None:
            dens.setdefault(x["definition_id"], set()).add(x["denominator"])
    rows = results["diagnostics"]["adjusted"]
    shown = 0
    for x in rows:
        allowed = set().union(*(dens.get(d, set()) for d in x["definitions"].split(",")))
        for k in ("n_arm", "n_reference"):
            if x[k] is not None:
                shown += 1
                assert x[k] in allowed, (x["population"], k, x[k])
    assert shown, "no head count shown at all"
