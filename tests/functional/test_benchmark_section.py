"""The report's benchmark section ("How the program compares with the nation") and the brief's
part on it, from a real analysis of a native set beside a TEDS-D set: one sentence per site in
the results' numbers, a funnel plot whose points and control limits are checked by hand from
the SVG, the brief still at most two pages, the workbook's benchmark sheets; and nothing of it
in a report whose results hold no benchmark."""

from __future__ import annotations

import math
import re
import subprocess

import numpy as np
import pytest

PDFINFO = "/usr/bin/pdfinfo"
Z95, Z998 = 1.959963984540054, 3.090232306167813  # the normal quantiles of 97.5% and 99.9%
NOUNS = {"completion": "completions", "completion_or_transfer": "completions or transfers",
         "retention_90d": "stays of 90 days or more"}


def _bench(results):
    b = results["benchmark"]
    assert b is not None and b["rows"], "the fixture should hold a benchmark with rows"
    return b


def _definitions(b):
    return list(dict.fromkeys(x["definition_id"] for x in b["rows"]))


def _section(report, sid="benchmark"):
    return next((s for s in report.sections if s.id == sid), None)


def _part(section, pid):
    return next(p for p in section.parts if p.id == pid)


def _said(x, name, whom, results):
    """A row's sentence, written here from the results row alone."""
    d = results["disclosure"]
    if x["suppression"] == "complementary":
        return f"{name}: not shown ({d['complementary_marker']}: withheld to protect a small count elsewhere)."
    if x["suppression"]:
        return f"{name}: not shown ({d['marker']}: small numbers)."
    return (f"{name}: {x['observed']:,} {NOUNS[x['definition_id']]} where {x['expected']:,.0f} were expected for the "
            f"people {whom} served (O/E {x['oe_ratio']:.2f}, 95% CI {x['oe_ci_low']:.2f} to {x['oe_ci_high']:.2f}): "
            f"{x['verdict']}.")


def _shown_sites(b, d):
    return [x for x in b["rows"] if x["definition_id"] == d and x["group_by"] == "site" and not x["suppression"]
            and x["oe_ratio"] is not None]


# --------------------------------------------------------------------------- the section
def test_one_sentence_per_site_in_the_results_numbers(benchmark_model):
    results, report = benchmark_model
    b = _bench(results)
    s = _section(report)
    assert s is not None and s.title == "How the program compares with the nation"
    assert [x.id for x in report.sections][-2:] == ["benchmark", "appendix"]
    assert b["reference"] in s.paragraphs[0]
    for d in _definitions(b):
        part = _part(s, f"benchmark-{d}")
        total = next(x for x in b["rows"] if x["definition_id"] == d and x["group_by"] == "all")
        assert part.paragraphs[0] == _said(total, "All your sites", "you", results)
        sites = sorted((x for x in b["rows"] if x["definition_id"] == d and x["group_by"] == "site"),
                       key=lambda x: x["group"])
        assert part.bullets == [_said(x, x["group"], "it", results) for x in sites]
        overlap = next(o for o in b["overlap"] if o["definition_id"] == d)
        assert (f"Warning: {overlap['warning']}." in part.paragraphs) == bool(overlap["warning"])
    hidden = [x for x in b["rows"] if x["group_by"] == "site" and x["suppression"]]
    assert hidden, "the fixture should hide a small site"


def test_the_compact_table_shows_program_levels_and_sites(benchmark_model):
    results, report = benchmark_model
    b = _bench(results)
    s = _section(report)
    marker = results["disclosure"]["marker"]
    for d in _definitions(b):
        rows = [x for x in b["rows"] if x["definition_id"] == d and x["group_by"] in ("all", "level_of_care", "site")]
        t = next(t for t in s.all_tables() if t.id == f"table-benchmark-{d}")
        assert t.compact and len(t.frame) == len(rows)
        assert list(t.frame["by"]).count("program") == 1
        for i in range(len(t.frame)):
            by, group = t.frame["by"][i], t.frame["group"][i]
            if by != "site":
                continue
            x = next(x for x in rows if x["group_by"] == "site" and x["group"] == group)
            if x["suppression"] == "small":
                assert t.text(i, "oe", marker) == marker and t.text(i, "observed", marker) == marker
                assert t.text(i, "verdict", marker) == "not shown (small numbers)"
            elif not x["suppression"]:
                assert t.text(i, "oe", marker) == f"{x['oe_ratio']:.2f} ({x['oe_ci_low']:.2f} to {x['oe_ci_high']:.2f})"
                assert t.text(i, "observed", marker) == f"{x['observed']:,}"
                assert t.text(i, "verdict", marker) == x["verdict"]
    models = next(t for t in s.all_tables() if t.id == "table-benchmark-models")
    assert len(models.frame) == len(b["models"]) and not models.detail
    full = next(t for t in s.all_tables() if t.id == "table-benchmark-rows")
    assert full.detail and len(full.frame) == len(b["rows"])
    calibration = next(t for t in s.all_tables() if t.id == "table-benchmark-calibration")
    assert calibration.detail and len(calibration.frame) == len(b["calibration"])
    method = _part(s, "benchmark-method")
    text = " ".join(method.paragraphs)
    assert b["method"] in text
    for level, n in b["unmatched_levels"].items():
        assert f"({n:,} episodes)" in text, level
    for x in b["covariates"]:
        assert x["covariate"] in text


def _uses(svg, gid):
    """The (x, y) of each marker of the SVG group ``gid``."""
    start = svg.index(f'id="{gid}"')
    end = svg.find('<g id="', start)  # the next named group
    return [(float(x), float(y)) for x, y in re.findall(r'<use [^>]*x="([-\d.]+)" y="([-\d.]+)"', svg[start:end if end > 0 else None])]


def _path(svg, gid):
    """The vertices of the first path of the SVG group ``gid``."""
    start = svg.index(f'id="{gid}"')
    d = re.search(r'<path d="([^"]+)"', svg[start:]).group(1)
    return [(float(x), float(y)) for x, y in re.findall(r"([-\d.]+) ([-\d.]+)", d)]


def test_the_funnel_plots_each_shown_site_inside_limits_computed_by_hand(benchmark_model):
    results, report = benchmark_model
    b = _bench(results)
    s = _section(report)
    charts = {c.id: c for c in s.all_charts()}
    checked = 0
    for d in _definitions(b):
        sites = _shown_sites(b, d)
        cid = f"chart-benchmark-funnel-{d}"
        if not sites:
            assert cid not in charts
            continue
        svg = charts[cid].svg
        points = _uses(svg, f"{cid}-sites")
        assert len(points) == len(sites), (d, len(points), [x["group"] for x in sites])  # hidden sites not drawn
        if len({x["expected"] for x in sites}) < 2 or len({x["oe_ratio"] for x in sites}) < 2:
            continue
        # the axes' scale, read from the points themselves: SVG x, y -> expected, O/E (both linear)
        ax_e = np.polyfit([p[0] for p in points], [x["expected"] for x in sites], 1)
        ax_oe = np.polyfit([p[1] for p in points], [x["oe_ratio"] for x in sites], 1)
        resid = np.polyval(ax_oe, [p[1] for p in points]) - [x["oe_ratio"] for x in sites]
        assert np.abs(resid).max() < 1e-3, "each marker sits at its site's O/E"
        total = next(x for x in b["rows"] if x["definition_id"] == d and x["group_by"] == "all")
        p = total["expected"] / total["n"]
        for z, key in ((Z95, "95"), (Z998, "998")):
            for side, sign in (("low", -1), ("high", 1)):
                vertices = _path(svg, f"{cid}-limit-{key}-{side}")
                assert len(vertices) >= 10
                for vx, vy in vertices:
                    e = float(np.polyval(ax_e, vx))
                    want = max(0.0, 1 + sign * z * math.sqrt(e * (1 - p)) / e)
                    assert float(np.polyval(ax_oe, vy)) == pytest.approx(want, abs=2e-3), (d, key, side, e)
        labels = set(re.findall(r"<text[^>]*>([^<]*)</text>", svg))
        for x in sites:  # named exactly when outside the 95% limits
            half = Z95 * math.sqrt(x["expected"] * (1 - p)) / x["expected"]
            outside = abs(x["oe_ratio"] - 1) > half
            if abs(abs(x["oe_ratio"] - 1) - half) > 1e-9:
                assert (x["group"] in labels) == outside, (d, x["group"], x["oe_ratio"], half)
        checked += 1
    assert checked, "at least one funnel plot with two sites or more"
    assert "chart-benchmark-funnel-completion" in charts


def test_the_html_carries_the_section_and_its_funnels(benchmark_model, tmp_path):
    from pipelines.report.html import write_html

    _, report = benchmark_model
    html = write_html(report, tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<section id="benchmark">' in html and "How the program compares with the nation" in html
    assert '<figure id="chart-benchmark-funnel-completion"' in html
    assert 'id="table-benchmark-rows"' in html  # among the full tables


# --------------------------------------------------------------------------- brief and workbook
def test_the_brief_gains_the_benchmark_and_stays_two_pages(benchmark_model, tmp_path):
    from pipelines.report.pdf import write_brief_pdf

    results, report = benchmark_model
    b = _bench(results)
    summary = _section(report, "summary")
    part = _part(summary, "summary-benchmark")
    total = next(x for x in b["rows"] if x["definition_id"] == "completion" and x["group_by"] == "all")
    assert _said(total, "Treatment completed [completion]", "you", results) in part.paragraphs
    assert any(p.startswith("By site, Treatment completed [completion]: ") for p in part.paragraphs)
    assert [p.id for p in summary.parts].index("summary-benchmark") < [p.id for p in summary.parts].index(
        "summary-flags")
    path = write_brief_pdf(report, tmp_path / "brief.pdf")
    info = subprocess.run([PDFINFO, str(path)], capture_output=True, text=True, check=True).stdout
    assert 1 <= int(re.search(r"Pages:\s+(\d+)", info).group(1)) <= 2
    text = " ".join(subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                                   check=True).stdout.split())
    assert "Against the nation" in text and f"O/E {total['oe_ratio']:.2f}" in text


def test_the_workbook_has_the_benchmark_sheets(benchmark_model, tmp_path):
    from openpyxl import load_workbook

    from pipelines.report.xlsx import write_report_xlsx

    results, report = benchmark_model
    b = _bench(results)
    wb = load_workbook(write_report_xlsx(report, tmp_path / "report.xlsx", definitions=results["definitions"]))
    for name, n in (("Benchmark rows", len(b["rows"])), ("Benchmark models", len(b["models"])),
                    ("Benchmark calibration", len(b["calibration"]))):
        assert name in wb.sheetnames, wb.sheetnames
        ws = wb[name]
        assert ws.max_row >= 2 + n and ws.cell(row=2 + n, column=1).value is not None
    ws = wb["Benchmark rows"]
    head = [c.value for c in ws[2]]
    marker = results["disclosure"]["marker"]
    for i, x in enumerate(b["rows"]):
        row = {h: ws.cell(row=3 + i, column=j + 1).value for j, h in enumerate(head)}
        assert row["definition"] == x["definition_id"]
        if x["suppression"] == "small":
            assert row["O/E"] == marker
        elif x["oe_ratio"] is not None:
            assert row["O/E"] == pytest.approx(x["oe_ratio"]) and row["observed"] == x["observed"]
    titles = [wb[name].cell(row=1, column=1).value for name in wb.sheetnames]
    assert not [t for t in titles if "observed against expected" in str(t)]  # the compact tables stay out


# --------------------------------------------------------------------------- without TEDS-D
def test_no_benchmark_no_section(report_model):
    results, report = report_model
    assert results.get("benchmark") is None
    assert _section(report) is None
    summary = _section(report, "summary")
    assert "summary-benchmark" not in [p.id for p in summary.parts]
    assert not [c.id for c in report.charts() if "benchmark" in c.id]
    assert not [t.id for t in report.tables() if "benchmark" in t.id]
