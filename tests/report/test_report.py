"""The quarterly report written from a hand-built results.json and warehouse (see conftest)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from report_fixtures import COUNTS, LABELS, make_results, make_warehouse

from pipelines.cli import main
from pipelines.disclosure import DisclosureError
from pipelines.settings import Settings

CHART_IDS = ("chart-rates", "chart-forest", "chart-love", "chart-overlap", "chart-km", "chart-trend",
             "chart-funnel", "chart-stepdown")
SECTION_ORDER = ("summary", "data-quality", "cohort", "rates", "comparison", "survival", "trends", "sites",
                 "stepdown", "appendix")


def test_writes_the_three_formats(written):
    assert sorted(written) == [".html", ".pdf", ".xlsx"]
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
        m = re.search(rf'<figure id="{cid}" class="chart">\s*<svg', html)
        assert m, cid
    assert len(re.findall(r'<figure id="chart-', html)) == len(CHART_IDS)
    # ids stay unique when several SVGs share one page
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))


def test_summary_in_plain_words(html):
    summary = html[html.index('<section id="summary">'):html.index('<section id="data-quality">')]
    # the warehouse fixture: 400 discharges at sites s0, s1, s2
    assert "Who was served: 400 discharges (2024Q4 to 2026Q3) from 3 programs" in summary
    # completion, iop 120/200 = 60.0%, residential 150/300 = 50.0%
    assert "Treatment completed: IOP 60.0%" in summary and "residential 50.0%" in summary
    # one verdict per definition, the preferred adjusted method (iptw over crude)
    assert summary.count("Was IOP non-inferior") == 1
    assert ("Non-inferior (iptw) with a margin of 10.0 percentage points: difference +5.0 points "
            "(95% CI -4.0 to +14.0; iptw)") in summary
    # flags: a refused file; 46 of 450 rows quarantined = 10.2%; a failed validation check
    assert "1 file(s) refused whole" in summary
    assert "10.2% of rows read were quarantined" in summary
    assert "1 validation check(s) failed" in summary
    # follow-up: simulated reach of 75% per window is below the 80% target
    assert "follow-up response is below the 80% target" in summary


def test_forest_plot_and_table_hold_risk_differences_only(html):
    table = html[html.index('<table id="table-comparisons">'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 1 + 2 * len(COUNTS)  # header + crude and iptw per definition
    assert ">1.300<" not in table  # the risk ratio row stays out


def test_small_cells_are_marked_never_zero(html):
    rates = html[html.index('<table id="table-rates">'):]
    rates = rates[:rates.index("</table>")]
    detox = [row for row in rates.split("<tr>") if ">detox<" in row]
    assert len(detox) == len(COUNTS)
    for row in detox:  # 3/9, 0/9, 2/9, 6/9: denominator 9 is small, so the row goes
        assert '<td class="hidden">*</td>' in row
        assert ">9<" not in row
    # php retention 76/80: 4 failures would be given back by the complement
    php = next(r for r in rates.split("<tr>") if ">php<" in r and "retention_90d" in r)
    assert ">76<" not in php


def test_no_count_from_1_to_10_in_any_html_count_cell(written):
    from pipelines.report import build, inputs

    results = make_results()
    agg = inputs.read_warehouse(make_warehouse(written[".html"].parent.parent / "again.duckdb"))
    report = build.build_report(results, agg)
    for t in report.tables():
        for c in t.count_cols:
            for i, v in enumerate(t.frame[c]):
                if v is not None and not t.is_hidden(i, c):
                    assert not 1 <= int(v) <= 10, (t.id, c, v)


def test_xlsx_reads_back_one_sheet_per_section_and_neutralizes_formulas(written):
    import openpyxl

    wb = openpyxl.load_workbook(written[".xlsx"])
    assert len(wb.sheetnames) == len(SECTION_ORDER)
    assert wb.sheetnames[0] == "Summary"
    values = [c.value for ws in wb for row in ws.iter_rows() for c in row if c.value is not None]
    texts = [v for v in values if isinstance(v, str)]
    assert not any(t.startswith(("=", "+", "-", "@", "\t", "\r")) for t in texts)
    assert "'" + LABELS["no_readmission_30d"] in texts
    rates = wb["Success rates by definition"]
    header = next(r for r in rates.iter_rows(values_only=True) if r[0] == "definition")
    k = header.index("numerator")
    nums = [r[k] for r in rates.iter_rows(values_only=True) if r[0] and r[0] != "definition" and len(r) > k]
    assert 120 in nums and "*" in nums
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


def test_missing_inputs_say_not_available(tmp_path):
    """TEDS-D only, and an analysis without comparisons or survival: plain 'not available'."""
    from pipelines.report.command import write_report

    wh = make_warehouse(tmp_path / "teds.duckdb", source="teds-d", n=200)
    results = make_results()
    for key in ("comparisons", "balance", "noninferiority"):
        results[key] = []
    results["survival"] = {}
    results["diagnostics"] = {}
    results["rates"] = [r for r in results["rates"] if r["group_by"] in ("all", "level_group")]
    (tmp_path / "results.json").write_text(json.dumps(results), encoding="utf-8")
    (tmp_path / "data_docs").mkdir()
    (tmp_path / "data_docs" / "index.html").write_text("<html></html>", encoding="utf-8")
    paths = write_report(Settings(warehouse=wh), tmp_path / "rep", results_dir=tmp_path, formats=("html",))
    html = paths[0].read_text(encoding="utf-8")
    assert '<a href="../data_docs/index.html">Data Docs (validation detail)</a>' in html
    for reason in ("comparison: not available: results.json holds no comparisons yet",
                   "not available: results.json holds no readmission survival curves",
                   "follow-up response: not available: only TEDS-D data, which has no follow-ups",
                   "not available: results.json holds no rates by quarter",
                   "not available: results.json holds no rates by site"):
        assert reason in html, reason
    assert '<figure id="chart-rates"' in html and '<figure id="chart-forest"' not in html


def test_writer_refuses_a_small_count(tmp_path):
    import pandas as pd

    from pipelines.report.html import write_html
    from pipelines.report.model import Report, Section, Table

    bad = Table(id="t", title="t", frame=pd.DataFrame({"group": ["iop"], "n": [4]}), count_cols=("n",))
    report = Report(title="x", quarter=None, run_id="", created_at="", rule_name="cms", marker="*",
                    disclosure_note="", sections=[Section("s", "S", tables=[bad])])
    with pytest.raises(DisclosureError):
        write_html(report, tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_cli_report_and_user_errors(tmp_path, capsys):
    wh = make_warehouse(tmp_path / "w.duckdb", n=120)
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "results.json").write_text(json.dumps(make_results()), encoding="utf-8")
    code = main(["report", "--warehouse", str(wh), "--out", str(tmp_path / "rep"), "--results",
                 str(tmp_path / "res"), "--format", "xlsx", "--quarter", "2026Q3"])
    assert code == 0 and (tmp_path / "rep" / "report.xlsx").exists()
    assert main(["report", "--warehouse", str(wh), "--out", str(tmp_path / "rep"), "--results",
                 str(tmp_path / "res"), "--quarter", "2026-07"]) == 2
    assert main(["report", "--warehouse", str(wh), "--out", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "not a quarter like 2026Q3" in err and "no results.json found" in err
    assert "Traceback" not in err


def test_opensafely_rule_rounds_every_count(tmp_path):
    from pipelines.report import build, inputs

    agg = inputs.read_warehouse(make_warehouse(tmp_path / "w.duckdb"))
    report = build.build_report(make_results(), agg, rule="opensafely")
    seen = 0
    for t in report.tables():
        for c in t.count_cols:
            for i, v in enumerate(t.frame[c]):
                if v is not None and not t.is_hidden(i, c):
                    seen += 1
                    assert int(v) % 5 == 0 and not 1 <= int(v) <= 7, (t.id, c, v)
    assert seen > 50
    rates = next(t for t in report.tables() if t.id == "table-rates").frame
    iop = rates[(rates.definition_id == "completion") & (rates.group == "iop")].iloc[0]
    assert (iop.numerator, iop.denominator) == (120, 200) and iop.rate == 120 / 200
    assert report.marker == "[REDACTED]"
