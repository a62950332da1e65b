"""The HTML report opened in headless Chromium (Debian's /usr/bin/chromium; never downloaded).

Console messages are read from Chromium's own log (``--enable-logging=stderr``: every
``console.*`` call and uncaught error is logged as a ``CONSOLE`` line); the page writes none, so
any such line is a failure. A deliberately broken page proves the check catches errors.
"""

from __future__ import annotations

import re
import subprocess
from itertools import pairwise
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                       "(apt-get install chromium); browser tests skipped"),
]


def _chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", *extra, page.resolve().as_uri()],
        check=False, capture_output=True, text=True, timeout=180,
    )


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


def test_a_broken_page_is_caught(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<html><body><p>x</p><script>notDefined();</script>"
                    '<img src="https://cdn.example.invalid/x.png"></body></html>', encoding="utf-8")
    run = _chromium(page, tmp_path / "profile", "--dump-dom")
    lines = console_lines(run.stderr)
    assert any("notDefined is not defined" in line for line in lines), run.stderr[-2000:]


def test_report_renders_with_no_console_errors_and_every_chart(written, tmp_path):
    run = _chromium(written[".html"], tmp_path / "profile", "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    assert console_lines(run.stderr) == []
    dom = run.stdout
    for cid in ("chart-rates", "chart-forest", "chart-love", "chart-overlap", "chart-km", "chart-trend",
                "chart-funnel", "chart-stepdown"):
        assert re.search(rf'<figure id="{cid}" class="chart">\s*<svg', dom), cid
    # the script ran: captions are clickable only after it did
    assert "Outcomes after intensive outpatient" in dom


def test_screenshot_is_taken_and_not_blank(written, tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    shot = tmp_path / "report.png"
    run = _chromium(written[".html"], tmp_path / "profile", "--window-size=1200,3000", "--hide-scrollbars",
                    f"--screenshot={shot}")
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    assert console_lines(run.stderr) == []
    img = np.asarray(mpimg.imread(shot))[..., :3]
    assert img.shape[:2] == (3000, 1200)
    assert (img < 0.9).any(axis=-1).mean() > 0.02  # text and charts, not a white page


# --- accessibility and layout, measured in the browser after layout ------------------------------
# PROBE_JS, put before </body>, records what the page looks like to a reader after layout and
# writes it as JSON into <pre id="probe">, read back from --dump-dom. It first notes which
# <details> were open, then opens them all, so that folded tables are laid out and checked too.
PROBE_JS = r"""
(function () {
  var all = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var tables = all("table");
  var idOf = function (t) { return t.id || ("table #" + tables.indexOf(t)); };
  var out = {headings: [], tables: [], overflowing: [], wide: [], badges: [], details: [], broken_links: [],
             unnamed_charts: []};
  all("details").forEach(function (d) {
    out.details.push({open: d.open, summary: (d.querySelector("summary") || {}).textContent || "",
                      tables: all("table", d).map(idOf)});
    d.open = true;
  });
  void document.body.offsetHeight;  // lay the opened details out before anything is measured
  all("h1, h2, h3, h4, h5, h6").forEach(function (h) { out.headings.push(Number(h.tagName.charAt(1))); });
  tables.forEach(function (t) {
    var own = function (sel) { return all(sel, t).filter(function (c) { return c.closest("table") === t; }); };
    var ths = own("th"), head = t.tHead, headCells = head ? own("thead td, thead th") : [];
    out.tables.push({
      id: idOf(t),
      caption: !!(t.caption && t.caption.textContent.trim()),
      scoped: ths.length > 0 && headCells.length === ths.length && ths.every(function (c) {
        return c.getAttribute("scope") === "col" && c.closest("thead") === head;
      }),
      tds: own("td").length
    });
    own("td, th").forEach(function (c) {
      if (c.scrollWidth > c.clientWidth + 1) {
        out.overflowing.push({table: idOf(t), text: c.textContent.slice(0, 80),
                              scrollWidth: c.scrollWidth, clientWidth: c.clientWidth});
      }
    });
    var wrap = t.closest(".table-wrap"), width = t.getBoundingClientRect().width;
    if (wrap && width > wrap.clientWidth + 1) {
      out.wide.push({table: idOf(t), width: Math.round(width), wrap: wrap.clientWidth});
    }
  });
  // WCAG relative luminance and contrast of each badge's text on its fill
  var rgb = function (css) { return (css.match(/[\d.]+/g) || [0, 0, 0]).slice(0, 3).map(Number); };
  var lum = function (c) {
    var l = c.map(function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2];
  };
  all(".badge").forEach(function (b) {
    var st = getComputedStyle(b), fg = lum(rgb(st.color)), bg = lum(rgb(st.backgroundColor));
    out.badges.push({text: b.textContent.trim(), cls: b.className, fill: bg,
                     contrast: (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05)});
  });
  all("figure svg").forEach(function (svg) {  // a chart is an image named by its caption
    var ref = (svg.getAttribute("aria-labelledby") || "").split(/\s+/).map(function (id) {
      var el = id && document.getElementById(id); return el ? el.textContent : "";
    }).join(" ").trim();
    if (svg.getAttribute("role") !== "img" || !(ref || (svg.getAttribute("aria-label") || "").trim())) {
      out.unnamed_charts.push(svg.closest("figure").id || "a figure");
    }
  });
  all('a[href^="#"]').forEach(function (a) {
    var id = decodeURIComponent(a.getAttribute("href").slice(1));
    if (!document.getElementById(id)) { out.broken_links.push(a.getAttribute("href")); }
  });
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
"""


def probe(page_html: str, tmp_path: Path, name: str = "probe") -> dict:
    """Run PROBE_JS in Chromium, 1100 px wide, over a copy of ``page_html``: what it found."""
    import html as html_mod
    import json

    at = page_html.rfind("</body>")
    assert at >= 0, "no </body> to put the probe before"
    page = tmp_path / f"{name}.html"
    page.write_text(f"{page_html[:at]}<script>{PROBE_JS}</script>{page_html[at:]}", encoding="utf-8")
    run = _chromium(page, tmp_path / f"{name}-profile", "--window-size=1100,2000", "--hide-scrollbars",
                    "--virtual-time-budget=5000", "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    assert console_lines(run.stderr) == [], console_lines(run.stderr)
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.DOTALL)
    assert found, "the probe wrote nothing: " + run.stdout[-2000:]
    return json.loads(html_mod.unescape(found.group(1)))


def problems(found: dict) -> list[str]:
    """What the probe found wrong, in words; [] for a page whose headings, tables, badges and
    in-page links are accessible and whose tables fit."""
    out = []
    levels = found["headings"]
    if levels[:1] != [1] or levels.count(1) != 1:
        out.append(f"headings must start with the one h1: {levels}")
    out += [f"heading jumps from h{a} to h{b}" for a, b in pairwise(levels) if b > a + 1]
    for t in found["tables"]:
        if not t["caption"]:
            out.append(f"{t['id']}: no caption")
        if not t["scoped"]:
            out.append(f"{t['id']}: column headers are not all <th scope=\"col\"> in a <thead>")
    out += [f"{c['table']}: cell overflows ({c['scrollWidth']} > {c['clientWidth']} px): {c['text']!r}"
            for c in found["overflowing"]]
    out += [f"{w['table']}: table {w['width']} px wider than its wrap ({w['wrap']} px)" for w in found["wide"]]
    out += [f"badge {b['text']!r}: contrast {b['contrast']:.2f} < 4.5" for b in found["badges"] if b["contrast"] < 4.5]
    out += [f"in-page link to nothing: {href}" for href in found["broken_links"]]
    out += [f"{f}: chart without role=img and a name" for f in found["unnamed_charts"]]
    return out


def test_the_probe_reports_a_page_that_fails_each_check(tmp_path):
    """An h1 then an h4, a 300-character word in 200 px wrappers (one table also folded, one
    fixed-layout without caption or scoped headers), a faint badge, an unnamed chart and a dead
    link: each must be reported."""
    word = "x" * 300
    page = ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"></head><body>'
            '<h1>Title</h1><h4>Jumped two levels</h4><a href="#nowhere">link</a>'
            '<span class="badge" style="color:#999;background:#fff">Pass</span>'
            '<figure id="f-bare"><svg width="10" height="10"></svg></figure>'
            f'<div class="table-wrap" style="width:200px"><table id="t-wide"><caption>c</caption>'
            f'<thead><tr><th scope="col">a</th></tr></thead><tbody><tr><td>{word}</td></tr></tbody></table></div>'
            f'<div class="table-wrap" style="width:200px"><table id="t-fixed" style="table-layout:fixed;width:100%">'
            f'<tr><th>a</th></tr><tr><td>{word}</td></tr></table></div>'
            f'<details><summary>more</summary><div class="table-wrap" style="width:200px"><table id="t-folded">'
            f'<caption>f</caption><thead><tr><th scope="col">a</th></tr></thead><tbody><tr><td>{word}</td></tr>'
            '</tbody></table></div></details></body></html>')
    found = probe(page, tmp_path)
    said = problems(found)
    assert found["headings"] == [1, 4] and "heading jumps from h1 to h4" in said
    assert [w["table"] for w in found["wide"]] == ["t-wide", "t-folded"]  # the folded table was opened and measured
    assert [c["table"] for c in found["overflowing"]] == ["t-fixed"]
    assert any(s.startswith("t-fixed: no caption") for s in said)
    assert any(s.startswith("t-fixed: column headers") for s in said)
    assert {t["id"]: t["tds"] for t in found["tables"]} == {"t-wide": 1, "t-fixed": 1, "t-folded": 1}
    assert found["details"] == [{"open": False, "summary": "more", "tables": ["t-folded"]}]
    assert any(s.startswith("badge 'Pass': contrast") for s in said)
    assert "in-page link to nothing: #nowhere" in said
    assert "f-bare: chart without role=img and a name" in said


def test_report_headings_tables_and_layout_in_the_browser(written, tmp_path):
    found = probe(written[".html"].read_text(encoding="utf-8"), tmp_path)
    assert found["headings"][:2] == [1, 2]
    assert found["tables"] and all(t["tds"] > 0 for t in found["tables"]), found["tables"]
    assert all(not d["open"] for d in found["details"])  # the full tables start folded
    assert problems(found) == []


def _sample_report():
    """A small report with every status of badge, a compact table and two full ones, one of
    which holds an identifier far wider than the page unless it breaks at its underscores."""
    import pandas as pd

    from pipelines.report.model import Badge, Chart, Report, Section, Table

    long_id = "_".join(["covariate"] * 40)
    compact = Table(id="table-compact", title="Completion by level of care",
                    frame=pd.DataFrame({"level of care": ["IOP", "Residential"], "rate": [0.431, 0.502],
                                        "n": [5767, 5425]}),
                    formats={"rate": "pct", "n": "int"})
    full = Table(id="table-full", title="Every estimator", detail=True,
                 frame=pd.DataFrame({"definition_id": ["completion_or_transfer", long_id],
                                     "estimator": ["iptw_ate", "overlap"], "estimate": [2.1, -1.3]}),
                 formats={"estimate": "num2"})
    also = Table(id="table-full-2", title="Every site", detail=True,
                 frame=pd.DataFrame({"site": ["site-a"], "n": [7152]}), formats={"n": "int"})
    badges = [Badge("Covariate balance", "pass", "largest |SMD| after weighting 0.03"),
              Badge("Positivity", "warn", "2.1% of weights above 10"),
              Badge("Equipoise", "fail", "preference-score overlap 41%"),
              Badge("Negative controls", "n/a", "none defined")]
    chart = Chart(id="chart-x", title="Rates by level of care", png=b"", caption="Bars are 95% intervals.",
                  svg='<svg role="img" aria-label="chart-x" xmlns="http://www.w3.org/2000/svg" width="300" '
                      'height="60" viewBox="0 0 300 60"><rect width="120" height="60" fill="#444"/></svg>')
    section = Section(id="comparison", title="IOP compared with residential",
                      paragraphs=["The estimates below are read beside their diagnostics."],
                      tables=[full, compact, also], badges=badges, charts=[chart],
                      parts=[Section(id="comparison-terms", title="Terms", paragraphs=["pp: percentage points."])])
    return Report(title="Outcomes", period="2025Q3", run_id="r1", created_at="2025-10-01",
                  rule_name="small cells", marker="*", disclosure_note="Counts of 1-10 are not shown.",
                  sections=[section, Section(id="methods", title="Methods", paragraphs=["p"])])


def test_badges_words_and_fills_and_full_tables_folded_in_the_browser(tmp_path):
    from pipelines.report.html import render_html

    page = render_html(_sample_report())
    section = page[page.index('<section id="comparison">'):page.index("</section>")]
    # the text, then the verdicts as words, the compact table, and the full ones folded at the end
    words = re.findall(r'<span class="badge (badge-[a-z]+)">([^<]+)</span> <strong>([^<]+)</strong>', section)
    assert words == [("badge-pass", "Pass", "Covariate balance"), ("badge-warn", "Warn", "Positivity"),
                     ("badge-fail", "Fail", "Equipoise"), ("badge-na", "N/A", "Negative controls")]
    assert '<figure id="chart-x" class="chart">\n    <svg role="img" aria-labelledby="chart-x-caption" xmlns' in section
    at = {k: section.index(k) for k in ("<p>The estimates below", '<ul class="badges"', '<figure id="chart-x"',
                                        '<table id="table-compact">',
                                        '<details class="full-tables">', '<table id="table-full">',
                                        '<table id="table-full-2">')}
    assert list(at.values()) == sorted(at.values()), at
    assert "<summary>Full tables (all rows and estimators)</summary>" in section
    assert "completion_<wbr>or_<wbr>transfer" in section  # identifiers may break at their underscores only
    assert '<div class="part" id="comparison-terms">\n  <h3>Terms</h3>' in section  # a part: one level down

    found = probe(page, tmp_path)
    assert found["details"] == [{"open": False, "summary": "Full tables (all rows and estimators)",
                                 "tables": ["table-full", "table-full-2"]}]
    assert found["headings"] == [1, 2, 3, 2]
    assert problems(found) == []
    fills = {b["text"]: b["fill"] for b in found["badges"]}
    assert fills["Pass"] - fills["Warn"] > 0.2 and fills["Warn"] - fills["Fail"] > 0.2  # apart in grayscale
    assert min(b["contrast"] for b in found["badges"]) >= 4.5

    # the same page without the break opportunities: the identifier no longer fits
    unbroken = probe(page.replace("<wbr>", ""), tmp_path, name="unbroken")
    assert [w["table"] for w in unbroken["wide"]] == ["table-full"]
