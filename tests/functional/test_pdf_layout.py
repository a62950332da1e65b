"""The PDF's layout: few pages, no word broken inside, tables within the frame, full tables left
to the workbook and the HTML, no blank page, and a board brief of at most two pages.

The report is built from the shared real analysis (tests/support/plugin_analysis.py) the way ``write_report``
builds it; the PDFs are read back with poppler's pdfinfo, pdftotext and pdftoppm, and every
expectation is worked out here from the report model, not from the writer.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from reportlab.pdfbase.pdfmetrics import stringWidth

from pipelines.disclosure import DisclosureError
from pipelines.report import pdf
from pipelines.report.model import Badge, Report, Section, Table

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("pdfinfo", "pdftotext", "pdftoppm")), reason="poppler-utils is not installed")

POINTER = "Full tables (all estimators, every row): report.xlsx and the HTML report (under 'Full tables')."
# the words the writer adds around the model's texts: the line under the title, the footer
# ("<title> · <period> · page N"), the brief's title ("<title> — board brief"), the bullets,
# the detail pointer and the words of the badges' status
BOILERPLATE = {"Period:", "·", "results", "run", "created", "disclosure", "rule", "–", "—", "board", "brief", "page",
               "•", "PASS", "WARN", "FAIL", "N/A", *POINTER.split()}
LANDSCAPE_A4, PORTRAIT_A4 = (841.89, 595.276), (595.276, 841.89)


# --- reading PDFs back ----------------------------------------------------------------------

def pdf_info(path: Path) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True, timeout=60).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def page_count(path: Path) -> int:
    return int(pdf_info(path)["Pages"])


def page_size(path: Path) -> tuple[float, float]:
    w, h = re.match(r"([\d.]+) x ([\d.]+)", pdf_info(path)["Page size"]).groups()
    return float(w), float(h)


def pdf_text(path: Path, *args: str) -> str:
    return subprocess.run(["pdftotext", *args, str(path), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def flat(text: str) -> str:
    return " ".join(text.split())


# --- what the report says -------------------------------------------------------------------

def sections_in(sections) -> list[Section]:
    """Sections and their sub-sections (``Section.parts`` in newer models), depth first."""
    return [x for s in sections for x in (s, *sections_in(getattr(s, "parts", [])))]


def printed_texts(report: Report, section_ids: set[str] | None = None) -> list[str]:
    """Every text of the model a PDF may show (full tables excluded: they are not printed)."""
    texts = [report.title, report.period, report.run_id, report.created_at, report.rule_name, report.disclosure_note]
    chosen = [s for s in report.sections if section_ids is None or s.id in section_ids]
    for s in sections_in(chosen):
        texts += [s.title, *s.paragraphs, *s.bullets, *s.unavailable]
        texts += [x for link in s.links for x in link]
        texts += [x for b in s.badges for x in (b.name, b.detail)]
        texts += [x for c in s.charts for x in (c.title, c.caption)]
        for t in s.tables:
            if t.detail:
                continue
            texts += [t.title, t.note, *(t.heading(c) for c in t.frame.columns)]
            texts += [t.text(i, c, report.marker) for c in t.frame.columns for i in range(t.frame.shape[0])]
    return texts


def _norm(word: str) -> str:
    return word.rstrip(".:")  # "<chart title>. <caption>", "<link text>: <href>"


def pieces(word: str) -> list[str]:
    """A word cut after each underscore ("followup_reached_180d" -> "followup_", "reached_", "180d")."""
    return [p for p in re.split(r"(?<=_)", word) if p]


def allowed_words(texts: list[str], pages: int) -> set[str]:
    """The words a PDF of these texts may show: each whole word, and each run of whole pieces
    of a word cut after its underscores (the writer's last resort for a long identifier). A word
    broken anywhere else ("followup_reached_18" + "0d") gives a fragment that is neither."""
    words = {_norm(w) for t in [*texts, *BOILERPLATE] for w in str(t).split()} | {str(n) for n in range(1, pages + 1)}
    runs = set()
    for w in words:
        ps = pieces(w)
        if len(ps) > 1:
            runs |= {"".join(ps[i:j]) for i in range(len(ps)) for j in range(i + 1, len(ps) + 1)}
    return words | runs


def broken_words(path: Path, texts: list[str]) -> list[str]:
    """Words pdftotext reads in the PDF that are no word of the texts: words broken inside."""
    ok = allowed_words(texts, page_count(path))
    return sorted({w for w in pdf_text(path, "-raw").split() if _norm(w) not in ok})


def flowables_in(story) -> list:
    """The flowables of a story, those inside KeepTogether groups too."""
    out = []
    for f in story:
        inner = getattr(f, "_content", None)
        out += flowables_in(inner) if inner is not None else [f]
    return out


def tables_in(story) -> list:
    """The reportlab tables of a story (those of a table set in two columns too)."""
    from reportlab.platypus import Table as RLTable

    out = []
    for f in flowables_in(story):
        out += [f] if isinstance(f, RLTable) else [f.table] if isinstance(f, pdf.TwoUp) else []
    return out


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report(report_model) -> Report:
    """The report model, built as pipelines.report.command.write_report builds it (shared)."""
    return report_model[1]


@pytest.fixture(scope="module")
def report_pdf(report, tmp_path_factory) -> Path:
    return pdf.write_pdf(report, tmp_path_factory.mktemp("pdf") / "report.pdf")


@pytest.fixture(scope="module")
def brief_pdf(report, tmp_path_factory) -> Path:
    return pdf.write_brief_pdf(report, tmp_path_factory.mktemp("brief") / "brief.pdf")


def full_summary(report: Report) -> Report:
    """The report with a summary as full as a board brief gets: many paragraphs, bullets, the
    four badges, three charts from other sections, a compact and a full table."""
    import copy

    r = copy.copy(report)
    summary = next(s for s in r.sections if s.id == "summary")
    charts = [c for s in r.sections for c in s.charts]
    compact = [t for t in r.tables() if not t.detail and 2 <= t.frame.shape[0] <= 8]
    detail = [t for t in r.tables() if t.detail]
    full = Section(summary.id, summary.title,
                   paragraphs=summary.paragraphs + [s.paragraphs[0] for s in r.sections if s.paragraphs][:8]
                   + ["IOP compared with residential: " + "no different after adjustment; " * 12] * 6,
                   bullets=["follow-up response is below the 80% target in 24 of 24 window/level cells shown"] * 3,
                   badges=[Badge("Covariate balance after weighting", "warn", "largest |SMD| 0.11 for prior_episodes"),
                           Badge("Overlap of the people compared", "pass", "equipoise 42.7%, pass at least 20%"),
                           Badge("Follow-up response", "fail", "reached at follow-up [followup_reached_90d]: 35.7%"),
                           Badge("Sites compared", "n/a", "one site only")],
                   charts=charts[:3], tables=compact[:1] + detail[:1])
    r.sections = [full if s is summary else s for s in r.sections]
    return r


def tiny_report(tables: list[Table], badges: list[Badge] | None = None) -> Report:
    return Report(title="Layout check", period="2026Q3", run_id="run-x", created_at="2026-12-01", rule_name="cms",
                  marker="*", disclosure_note="* not shown: a count from 1 to 10.",
                  sections=[Section("summary", "Summary", paragraphs=["A tiny report."], badges=badges or [],
                                    tables=tables),
                            Section("appendix", "Appendix", paragraphs=["Definitions."])])


LONG_IDS = [f"followup_reached_{d}d_within_window_{k}" for k, d in enumerate((30, 90, 180, 365))]


def long_id_table(n_cols: int) -> Table:
    frame = pd.DataFrame({f"id_{j}": LONG_IDS for j in range(n_cols)})
    return Table(id="t-ids", title="Identifiers", frame=frame)


# --- page counts ------------------------------------------------------------------------------

def test_report_pdf_has_at_most_20_landscape_pages(report_pdf):
    assert page_count(report_pdf) <= 20
    assert page_size(report_pdf) == pytest.approx(LANDSCAPE_A4, abs=0.5)


def test_brief_has_at_most_two_portrait_pages(brief_pdf, report):
    assert page_count(brief_pdf) <= 2
    assert page_size(brief_pdf) == pytest.approx(PORTRAIT_A4, abs=0.5)
    text = flat(pdf_text(brief_pdf))
    assert f"{report.title} — board brief" in text
    assert report.period in text and report.run_id in text
    others = [flat(s.paragraphs[0]) for s in report.sections if s.id != "summary" and s.paragraphs]
    assert others and not any(p in text for p in others)  # that one section only


def test_a_full_summary_still_fits_two_pages(report, tmp_path):
    full = full_summary(report)
    path = pdf.write_brief_pdf(full, tmp_path / "brief.pdf")
    assert page_count(path) <= 2
    text = flat(pdf_text(path, "-raw"))
    for word in ("WARN", "PASS", "FAIL", "N/A"):
        assert word in text.split()
    summary = full.sections[0]
    assert all(c.title in text for c in summary.charts)
    assert POINTER in text
    assert broken_words(path, printed_texts(full, {"summary"})) == []


def test_metadata(report_pdf, brief_pdf, report):
    info = pdf_info(report_pdf)
    assert info["Title"] == report.title and info["Author"] == "levelcare" and report.period in info["Subject"]
    assert info["Tagged"] == "no"  # reportlab (open source) writes no tagged PDF: see pipelines/report/pdf.py
    brief = pdf_info(brief_pdf)
    assert brief["Title"] == f"{report.title} — board brief" and brief["Author"] == "levelcare"


# --- words ------------------------------------------------------------------------------------

def test_no_word_is_broken_inside(report_pdf, brief_pdf, report):
    assert broken_words(report_pdf, printed_texts(report)) == []
    assert broken_words(brief_pdf, printed_texts(report, {"summary"})) == []


def test_the_word_check_finds_a_word_broken_inside(tmp_path, monkeypatch):
    """Equal columns (the old layout) break the identifiers inside: the check sees it. (Fitted,
    the six columns take the identifiers whole at 6 pt.)"""
    r = tiny_report([long_id_table(6)])
    texts = printed_texts(r)
    fitted = pdf.write_pdf(r, tmp_path / "fitted.pdf")
    assert broken_words(fitted, texts) == []

    def equal_columns(headers, columns, frame_width, sizes):
        return pdf.TablePlan(sizes[0], [frame_width / len(headers)] * len(headers))

    monkeypatch.setattr(pdf, "plan_table", equal_columns)
    narrow = pdf.write_pdf(r, tmp_path / "narrow.pdf")
    fragments = broken_words(narrow, texts)
    assert fragments
    assert all(any(f in w and f != w for w in LONG_IDS) for f in fragments), fragments


def test_long_identifiers_break_only_after_an_underscore(tmp_path):
    """So many columns of long identifiers that even 5.5 pt cannot hold their words: they are
    cut after underscores, nowhere else, and the table stays within the frame."""
    n = 16
    frame = pdf.REPORT_LAYOUT.frame_width
    # each identifier is wider than a 16th of the frame even at 5.5 pt; its pieces are not
    assert min(stringWidth(w, "Helvetica", 5.5) for w in LONG_IDS) > frame / n
    assert max(stringWidth(p, "Helvetica", 5.5) for w in LONG_IDS for p in pieces(w)) + pdf.CELL_EXTRA < frame / n
    r = tiny_report([long_id_table(n)])
    path = pdf.write_pdf(r, tmp_path / "ids.pdf")
    assert broken_words(path, printed_texts(r)) == []
    words = set(pdf_text(path, "-raw").split())
    assert not words & set(LONG_IDS)
    assert words & {"followup_", "followup_reached_"}  # cut, after an underscore
    (tbl,) = [t for t in tables_in(pdf.section_story(r, r.sections[0], pdf.Styles(9), pdf.REPORT_LAYOUT))
              if len(t._colWidths) == n]
    assert sum(tbl._colWidths) <= frame + 1e-6


# --- column widths ----------------------------------------------------------------------------

def test_column_widths_by_hand():
    font, size, pad = "Helvetica", 7.0, 7.0  # pdf.CELL_EXTRA: two paddings of 3 pt and 1 pt of slack
    a = ["level", "Withdrawal management (detox)"]
    b = ["rate", "41.8% to 44.3%"]
    nat_a, nat_b = stringWidth("Withdrawal management (detox)", font, size), stringWidth("41.8% to 44.3%", font, size)
    min_a, min_b = stringWidth("management", font, size), stringWidth("41.8%", font, size)
    assert pdf.CELL_EXTRA == pad

    # room for both on one line: the natural widths
    assert pdf.column_widths([a, b], font, size, 500) == pytest.approx([nat_a + pad, nat_b + pad])
    # too narrow for that: each its longest word plus a share of what is left, in proportion to
    # what it lacks
    frame = min_a + min_b + 2 * pad + 30
    lack_a, lack_b = nat_a - min_a, nat_b - min_b
    want = [min_a + pad + 30 * lack_a / (lack_a + lack_b), min_b + pad + 30 * lack_b / (lack_a + lack_b)]
    got = pdf.column_widths([a, b], font, size, frame)
    assert got == pytest.approx(want)
    assert sum(got) == pytest.approx(frame)
    # not even the longest words fit: no widths (the writer steps the font down)
    assert pdf.column_widths([a, b], font, size, min_a + min_b + 2 * pad - 1) is None


def test_a_heading_wraps_before_a_cell(tmp_path):
    """Cells fit on one line but headings do not: the headings wrap (between words)."""
    heads = ["the share of the people who answered", "n"]
    cells = [["43.1%", "7.2%"], ["5,767", "12"]]
    frame = 200.0
    plan = pdf.plan_table(heads, cells, frame, (7.0,))
    cell_nat = [stringWidth(max(c, key=lambda x: stringWidth(x, "Helvetica", 7)), "Helvetica", 7) for c in cells]
    assert plan.size == 7.0 and not plan.underscore_breaks
    assert all(w >= n + pdf.CELL_EXTRA - 1e-9 for w, n in zip(plan.widths, cell_nat, strict=True))
    assert sum(plan.widths) <= frame + 1e-9


def test_tables_and_charts_fit_the_frame(report):
    """Every table (its columns' widths), table in two columns, chart and paragraph is at most
    as wide as the frame: the page less its margins and the frame's padding of 6 pt a side."""
    from reportlab.lib.pagesizes import A4, landscape, portrait

    for lay, page in ((pdf.REPORT_LAYOUT, landscape(A4)), (pdf.BRIEF_LAYOUT, portrait(A4))):
        frame = page[0] - 2 * lay.margin_x - 2 * 6
        assert lay.frame_width == pytest.approx(frame)
        for s in report.sections:
            story = pdf.section_story(report, s, pdf.Styles(lay.body_size), lay)
            for tbl in tables_in(story):
                assert sum(tbl._colWidths) <= frame + 1e-6, (s.id, tbl._colWidths)
            for f in flowables_in(story):
                assert f.wrap(frame, 1e6)[0] <= frame + 1e-6, (s.id, type(f).__name__)


def test_a_long_narrow_table_runs_in_two_columns(tmp_path):
    """150 short rows: two columns side by side, each under the header row, across pages; every
    row printed once, in order down the left column then the right."""
    ids = [f"row{k:03d}" for k in range(150)]
    t = Table(id="t-long", title="Long and narrow", frame=pd.DataFrame({"key": ids, "n": range(1000, 1150)}),
              count_cols=("n",), formats={"n": "int"})
    r = tiny_report([t])
    story = pdf.section_story(r, r.sections[0], pdf.Styles(9.5), pdf.REPORT_LAYOUT)
    assert any(isinstance(f, pdf.TwoUp) for f in flowables_in(story))
    path = pdf.write_pdf(r, tmp_path / "long.pdf")
    words = pdf_text(path, "-raw").split()
    assert [w for w in words if w.startswith("row")] == ids  # once each, in order
    pages = [p.split() for p in pdf_text(path, "-raw").split("\f") if p.strip()]
    with_rows = [p for p in pages if any(w.startswith("row") for w in p)]
    assert len(with_rows) <= 2  # 150 rows, two columns of about 50 a page
    assert all(p.count("key") == 2 for p in with_rows)  # a header over each column


# --- what is printed --------------------------------------------------------------------------

def test_full_and_empty_tables_are_left_out(tmp_path):
    compact = Table(id="t-compact", title="Compact table", frame=pd.DataFrame({"group": ["iop"], "n": [120]}),
                    count_cols=("n",), formats={"n": "int"})
    full = Table(id="t-full", title="Every estimator", frame=pd.DataFrame({"group": ["qqdetailcell"], "n": [120]}),
                 count_cols=("n",), detail=True)
    empty = Table(id="t-empty", title="Nothing here", frame=pd.DataFrame({"group": [], "n": []}))
    r = tiny_report([compact, full, empty])
    for path in (pdf.write_pdf(r, tmp_path / "r.pdf"), pdf.write_brief_pdf(r, tmp_path / "b.pdf")):
        text = flat(pdf_text(path))
        assert "Compact table" in text and "120" in text
        assert "Every estimator" not in text and "qqdetailcell" not in text
        assert "Nothing here" not in text
        assert text.count(POINTER) == 1


def test_report_points_to_the_full_tables(report_pdf, report):
    text = flat(pdf_text(report_pdf))
    with_detail = [s for s in sections_in(report.sections) if any(t.detail for t in s.tables)]
    assert text.count(POINTER) == len(with_detail)
    shown = " ".join(printed_texts(report))
    for t in report.tables():
        if t.detail and t.title not in shown:
            assert t.title not in text, t.id


def test_badges_read_without_colour(tmp_path):
    badges = [Badge("Balance", "pass", "largest |SMD| 0.04"), Badge("Overlap", "warn", "equipoise 31%"),
              Badge("Follow-up", "fail", "reached 35.7%"), Badge("Sites", "n/a", "one site only")]
    r = tiny_report([], badges)
    text = pdf_text(pdf.write_pdf(r, tmp_path / "r.pdf"), "-raw")
    for b, word in zip(badges, ("PASS", "WARN", "FAIL", "N/A"), strict=True):
        assert re.search(rf"{re.escape(word)}\s+{re.escape(b.name)}\s+{re.escape(b.detail)}", text), word

    def grey(hex_colour: str) -> float:  # the luminance a grey print shows (Rec. 601)
        r_, g, b_ = (int(hex_colour[k:k + 2], 16) / 255 for k in (1, 3, 5))
        return 0.299 * r_ + 0.587 * g + 0.114 * b_

    fills = {k: grey(v[1]) for k, v in pdf.BADGE_STYLE.items()}
    assert fills["pass"] - fills["warn"] > 0.2 and fills["warn"] - fills["fail"] > 0.2
    assert grey(pdf.BADGE_STYLE["fail"][2]) - fills["fail"] > 0.5  # light text on the dark fill


def test_sections_flow_and_the_appendix_starts_a_page(report_pdf, report):
    pages = [[line.strip() for line in p.splitlines() if line.strip()] for p in pdf_text(report_pdf).split("\f")]

    def heading_page(title: str) -> list[str]:  # the page holding the title on a line of its own
        (page,) = [p for p in pages if title in p]
        return page

    appendix = next(s for s in report.sections if s.id == "appendix")
    assert heading_page(appendix.title)[0] == appendix.title
    # the other sections flow: they start below another section's text, on the same page
    later = [s.title for s in report.sections[1:] if s.id != "appendix"]
    below = [t for t in later if heading_page(t)[0] != t]
    assert len(below) >= len(later) / 2, below


def test_writers_refuse_a_small_count(tmp_path):
    bad = Table(id="t", title="t", frame=pd.DataFrame({"group": ["iop"], "n": [4]}), count_cols=("n",))
    r = tiny_report([bad])
    for write, name in ((pdf.write_pdf, "r.pdf"), (pdf.write_brief_pdf, "b.pdf")):
        with pytest.raises(DisclosureError):
            write(r, tmp_path / name)
        assert not (tmp_path / name).exists()


# --- pages ------------------------------------------------------------------------------------

def test_no_page_is_blank(report_pdf, brief_pdf, tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    for name, path, margin in (("report", report_pdf, pdf.REPORT_LAYOUT.margin_y),
                               ("brief", brief_pdf, pdf.BRIEF_LAYOUT.margin_y)):
        subprocess.run(["pdftoppm", "-r", "40", "-png", str(path), str(tmp_path / name)], check=True, timeout=120)
        pngs = sorted(tmp_path.glob(f"{name}*.png"))
        assert len(pngs) == page_count(path)
        for p in pngs:
            img = np.asarray(mpimg.imread(p))[..., :3]
            foot = int(img.shape[0] * margin / page_size(path)[1]) + 1  # the footer's band
            body = img[foot:-foot]
            ink = (body < 0.9).any(axis=-1).mean()
            assert ink > 0.005, f"{p.name} looks blank ({ink:.4f} of pixels inked)"
