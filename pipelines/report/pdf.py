"""The report as PDF for printing (reportlab, pure Python): the report's sections, charts and
compact tables on landscape A4 (:func:`write_pdf`), and one section as a portrait board brief of
at most two pages (:func:`write_brief_pdf`). Both go through :func:`section_story`.

Layout rules:

* table columns are fitted to their text (:func:`column_widths`): no word is ever broken inside;
  when even the longest words do not fit, the table's font steps down, and only then are long
  identifiers allowed to break after an underscore; numbers are right-aligned, text left;
* a long, narrow table runs in two columns side by side (:class:`TwoUp`);
* full tables (``Table.detail``) stay in the workbook and the HTML; the PDF says where they are;
  a table without rows is not printed;
* sections flow one after another (a heading is kept with what follows it); only the appendix
  starts a page;
* a chart keeps its caption and its aspect, is capped so that two share a landscape page (a tall
  one, a Love plot say, may take a page), and shrinks a little to finish a page (:class:`Figure`);
* badges (pass/warn/fail) are a small table before the section's charts and tables: the word in
  capitals on a fill whose lightness differs too, so that a grey print reads.

Accessibility: the open-source reportlab cannot write tagged PDF (no structure tree or marked
content, so no PDF/UA); the files carry the document language, title, author and subject, show
the title in the viewer's title bar, and have an outline (bookmarks) of the sections.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4, landscape, portrait
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import cm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    KeepTogether,
    LongTable,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    TableStyle,
)

from pipelines.report.model import Badge, Chart, Report, Section, Table

log = logging.getLogger(__name__)

CELL_FONT = "Helvetica"
HEAD_FONT = "Helvetica-Bold"
CELL_PAD = 3.0  # left and right padding of a table cell, each
# what a column needs beyond its text: both paddings and a point of slack, so that reportlab's
# line breaking (which compares floats) never finds a word a hair too wide and splits it
CELL_EXTRA = 2 * CELL_PAD + 1.0
# where a long identifier may break: reportlab (5.1) breaks lines at U+200B only in text that also
# holds a no-break space (and draws it as a missing glyph otherwise), so the break is a plain
# space, put only where a line must end (see break_after_underscores)
BREAK = " "
NBSP = "\u00a0"
FRAME_PAD = 6.0  # reportlab's padding inside a page's frame, on each side
PT_PER_PX = 72 / 130  # the charts are drawn at 130 dpi: this is their size as designed
PDF_LANG = "en"  # as the HTML report's <html lang>
APPENDIX = "appendix"
DETAIL_POINTER = ("Full tables (all estimators, every row): report.xlsx and the HTML report "
                  "(under 'Full tables').")

# status -> (word, fill, text colour): the word carries the verdict, the fills differ clearly
# in lightness too (grey luminance about 0.91, 0.66, 0.23, 1.0) so a grey print still reads
BADGE_STYLE = {
    "pass": ("PASS", "#dcefdc", "#000000"),
    "warn": ("WARN", "#d9a441", "#000000"),
    "fail": ("FAIL", "#7f1d1d", "#ffffff"),
    "n/a": ("N/A", "#ffffff", "#333333"),
}


# --- column widths (pure functions) ---------------------------------------------------------

def _words(text: str) -> list[str]:
    """The words reportlab lays out whole: split at white space, but not at a no-break space."""
    return [w for w in re.split(r"[^\S\u00a0]+", str(text)) if w]


def _pieces(word: str) -> list[str]:
    """A word cut after each underscore: the only places a last-resort break may go."""
    return [p for p in re.split(r"(?<=_)", word) if p]


def text_extent(texts: Sequence[str], font: str, size: float, *, underscore_breaks: bool = False) -> tuple[float, float]:
    """(natural, minimum) width of a column's texts in points, without padding: the natural
    width is the widest text on one line, the minimum the widest single word (or, with
    ``underscore_breaks``, the widest piece of a word cut after its underscores)."""
    natural = minimum = 0.0
    for text in texts:
        words = _words(text)
        if not words:
            continue
        natural = max(natural, stringWidth(" ".join(words), font, size))
        for w in words:
            for part in (_pieces(w) if underscore_breaks else (w,)):
                minimum = max(minimum, stringWidth(part, font, size))
    return natural, minimum


def fit_widths(naturals: Sequence[float], minimums: Sequence[float], frame_width: float) -> list[float] | None:
    """Column widths within ``frame_width``: the natural widths when they fit; otherwise each
    column's minimum plus a share of the width left over in proportion to what it lacks
    (natural - minimum); None when even the minimums do not fit."""
    naturals = [max(n, m) for n, m in zip(naturals, minimums, strict=True)]
    if sum(naturals) <= frame_width:
        return list(naturals)
    if sum(minimums) > frame_width:
        return None
    spare = frame_width - sum(minimums)
    lack = [n - m for n, m in zip(naturals, minimums, strict=True)]
    total = sum(lack)  # > 0: the naturals did not fit but the minimums did
    return [m + spare * d / total for m, d in zip(minimums, lack, strict=True)]


def column_widths(texts: Sequence[Sequence[str]], font: str, size: float, frame_width: float,
                  *, padding: float = CELL_EXTRA) -> list[float] | None:
    """Widths of the columns whose texts (heading and cells) are ``texts[j]``, measured in one
    font and size, each with ``padding`` added: see :func:`fit_widths`."""
    extents = [text_extent(col, font, size) for col in texts]
    return fit_widths([n + padding for n, _ in extents], [m + padding for _, m in extents], frame_width)


def break_after_underscores(text: str, width: float, font: str, size: float) -> str:
    """The last resort for an identifier wider than its column: a break after as few underscores
    as needed, other words left whole. The pieces are packed greedily into lines of ``width``, so
    no two of them ever share a line: the break is always a line's end, never a gap inside."""
    out = []
    for w in _words(text):
        if stringWidth(w, font, size) <= width or "_" not in w:
            out.append(w)
            continue
        lines, line = [], ""
        for part in _pieces(w):
            if line and stringWidth(line + part, font, size) > width:
                lines.append(line)
                line = part
            else:
                line += part
        lines.append(line)
        out.append(BREAK.join(lines))
    return " ".join(out)


def _glue_number(text: str) -> str:
    """Keep a number with its sign or unit on one line: '< 0.001', '+2.1 pp'."""
    return re.sub(r"(?<=\d) (?=pp\b)", NBSP, re.sub(r"(^|(?<=\s))([<>≤≥]) (?=\d)", r"\2" + NBSP, text))


# --- layout and styles ----------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    pagesize: tuple[float, float]
    margin_x: float
    margin_y: float
    body_size: float = 9.5
    cell_sizes: tuple[float, ...] = (7.0, 6.0, 5.5)  # the table font, stepped down when needed
    chart_height: float = 7.9 * cm  # the cap for a chart (two and captions share a landscape page)
    tall_chart_height: float | None = None  # the cap for a tall chart (None: as chart_height)
    links: bool = True

    @property
    def frame_width(self) -> float:
        """The width flowables get: the page less margins and the frame's own padding."""
        return self.pagesize[0] - 2 * self.margin_x - 2 * FRAME_PAD

    @property
    def frame_height(self) -> float:
        return self.pagesize[1] - 2 * self.margin_y - 2 * FRAME_PAD


REPORT_LAYOUT = Layout(pagesize=landscape(A4), margin_x=1.5 * cm, margin_y=1.3 * cm,
                       tall_chart_height=landscape(A4)[1] - 2 * 1.3 * cm)
HEADING_ROOM = 1.6 * cm  # kept free beside a chart for the heading that may start its page
BRIEF_LAYOUT = Layout(pagesize=portrait(A4), margin_x=1.5 * cm, margin_y=1.5 * cm, body_size=9.0,
                      chart_height=(portrait(A4)[1] - 3 * cm) / 2, links=False)


class Styles:
    def __init__(self, body_size: float) -> None:
        grey, b = colors.HexColor("#5a5a5a"), body_size
        self.body = ParagraphStyle("body", fontName="Helvetica", fontSize=b, leading=b * 1.25, spaceAfter=b * 0.4)
        self.bullet = ParagraphStyle("bullet", parent=self.body, leftIndent=b * 1.2, bulletIndent=b * 0.2,
                                     spaceAfter=b * 0.2)
        self.small = ParagraphStyle("small", parent=self.body, fontSize=b - 1.5, leading=(b - 1.5) * 1.25,
                                    textColor=grey, spaceAfter=b * 0.3)
        self.warn = ParagraphStyle("warn", parent=self.body, textColor=colors.HexColor("#a33b3b"),
                                   fontName="Helvetica-Oblique")
        self.title = ParagraphStyle("title", parent=self.body, fontName="Helvetica-Bold", fontSize=b + 8,
                                    leading=(b + 8) * 1.2, spaceAfter=b * 0.5)
        self.h1 = ParagraphStyle("h1", parent=self.body, fontName="Helvetica-Bold", fontSize=b + 4.5,
                                 leading=(b + 4.5) * 1.2, spaceBefore=b * 1.4, spaceAfter=b * 0.5)
        self.h2 = ParagraphStyle("h2", parent=self.body, fontName="Helvetica-Bold", fontSize=b + 2,
                                 leading=(b + 2) * 1.2, spaceBefore=b * 1.1, spaceAfter=b * 0.4)
        self.h3 = ParagraphStyle("h3", parent=self.body, fontName="Helvetica-Bold", fontSize=b,
                                 leading=b * 1.2, spaceBefore=b * 0.8, spaceAfter=b * 0.3)
        self.badge = ParagraphStyle("badge", parent=self.body, fontSize=b - 1, leading=(b - 1) * 1.2, spaceAfter=0)
        self._cells: dict[tuple, ParagraphStyle] = {}

    def cell(self, size: float, *, bold: bool = False, right: bool = False, color: str | None = None) -> ParagraphStyle:
        key = (size, bold, right, color)
        if key not in self._cells:
            self._cells[key] = ParagraphStyle(
                f"cell-{len(self._cells)}", fontName=HEAD_FONT if bold else CELL_FONT, fontSize=size,
                leading=size * 1.15, alignment=TA_RIGHT if right else TA_LEFT,
                textColor=colors.HexColor(color) if color else colors.black)
        return self._cells[key]


def paragraph(text: str, style: ParagraphStyle, **kw) -> Paragraph:
    return Paragraph(escape(str(text)), style, **kw)


# --- flowables of a section -----------------------------------------------------------------

@dataclass
class TablePlan:
    """How a table is laid out: its font size, column widths, whether its cells fit on one line,
    and whether identifiers may break after underscores."""

    size: float
    widths: list[float]
    one_line: bool = False
    underscore_breaks: bool = False


def plan_table(headers: Sequence[str], columns: Sequence[Sequence[str]], frame_width: float,
               sizes: Sequence[float]) -> TablePlan:
    """Fit a table into the frame at the largest of ``sizes`` that takes its longest words:
    natural widths (headings wrapping first, between words), else minimums plus shares (see
    :func:`fit_widths`); then breaks after underscores at the smallest size; and if even that
    fails, the minimums squeezed into the frame (reportlab then breaks inside words)."""
    def fit(size: float, breaks: bool) -> TablePlan | None:
        whole, cells_whole, mins = [], [], []  # with the heading on one line; the cells only; words
        for h, cells in zip(headers, columns, strict=True):
            hn, hm = text_extent([h], HEAD_FONT, size)  # a heading wraps between words only
            cn, cm_ = text_extent(cells, CELL_FONT, size, underscore_breaks=breaks)
            m = max(hm, cm_) + CELL_EXTRA
            whole.append(max(hn, cn) + CELL_EXTRA)
            cells_whole.append(max(cn + CELL_EXTRA, m))
            mins.append(m)
        if sum(cells_whole) <= frame_width:  # the cells fit on one line: only headings may wrap
            return TablePlan(size, fit_widths(whole, cells_whole, frame_width), one_line=True, underscore_breaks=breaks)
        widths = fit_widths(cells_whole, mins, frame_width)
        return None if widths is None else TablePlan(size, widths, underscore_breaks=breaks)

    for size in sizes:
        plan = fit(size, False)
        if plan is not None:
            return plan
    size = sizes[-1]
    plan = fit(size, True)
    if plan is None:
        mins = [max(text_extent([h], HEAD_FONT, size)[1],
                    text_extent(cells, CELL_FONT, size, underscore_breaks=True)[1]) + CELL_EXTRA
                for h, cells in zip(headers, columns, strict=True)]
        plan = TablePlan(size, [m * frame_width / sum(mins) for m in mins], underscore_breaks=True)
    return plan


# a table this long runs in two columns side by side when that takes less than this share of
# the height it takes across the page (a long, narrow table: Table 1, a trend by quarter)
TWO_UP_ROWS = 24
TWO_UP_GAIN = 0.8
TWO_UP_GAP = 0.8 * cm
TABLE_STYLE = TableStyle([
    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf2")),
    ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f6f7f9")]),
    ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.HexColor("#7a8591")),
    ("LINEBELOW", (0, -1), (-1, -1), 0.4, colors.HexColor("#b0b0b0")),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("LEFTPADDING", (0, 0), (-1, -1), CELL_PAD),
    ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PAD),
    ("TOPPADDING", (0, 0), (-1, -1), 0.8),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 1.2),
])


class TwoUp(Flowable):
    """A long, narrow table in two columns side by side, each under the header row: balanced on
    the table's last page, filled column by column on the pages before."""

    def __init__(self, table: LongTable, gap: float, cut: int | None = None) -> None:
        super().__init__()
        self.table, self.gap, self.cut = table, gap, cut
        self.data = table._cellvalues  # the header row, then the rows
        self.widths = list(table._colWidths)
        table.wrap(sum(self.widths), 1e9)  # measures the rows
        self.heights = list(table._rowHeights)
        self.width = 2 * sum(self.widths) + gap

    def _part(self, rows: list) -> LongTable:
        tbl = LongTable([self.data[0], *rows], colWidths=self.widths, hAlign="LEFT")
        tbl.setStyle(TABLE_STYLE)
        return tbl

    def _columns(self, k: int) -> tuple[float, float]:
        head, rows = self.heights[0], self.heights[1:]
        return head + sum(rows[:k]), head + sum(rows[k:])

    def balanced(self) -> tuple[float, int]:
        """(height, rows in the left column) with the columns as even as the rows allow."""
        return min((max(self._columns(k)), k) for k in range(1, len(self.heights)))

    def wrap(self, aW: float, aH: float) -> tuple[float, float]:
        k = self.cut if self.cut is not None else self.balanced()[1]
        self._k, self.height = k, max(self._columns(k))
        return self.width, self.height

    def split(self, aW: float, aH: float) -> list[Flowable]:
        head, rows = self.heights[0], self.heights[1:]

        def fill(start: int) -> int:  # the rows from ``start`` that fit in one column
            used, i = head, start
            while i < len(rows) and used + rows[i] <= aH:
                used, i = used + rows[i], i + 1
            return i

        k = fill(0)
        n = fill(k)
        if k == 0 or n >= len(rows):
            return []  # not one row fits (next page), or no split needed
        data = self.data
        first = TwoUp(self._part(data[1:n + 1]), self.gap, cut=k)
        return [first, TwoUp(self._part(data[n + 1:]), self.gap)]

    def draw(self) -> None:
        rows = self.data[1:]
        for x, part in ((0.0, rows[:self._k]), (sum(self.widths) + self.gap, rows[self._k:])):
            if part:
                tbl = self._part(part)
                _, h = tbl.wrap(sum(self.widths), self.height)
                tbl.drawOn(self.canv, x, self.height - h)


def _table(t: Table, report: Report, st: Styles, lay: Layout) -> list[Flowable]:
    """A table's title, the table, and its note."""
    cols = list(t.frame.columns)
    numeric = [t.formats.get(c) not in (None, "text") for c in cols]
    headers = [t.heading(c) for c in cols]
    columns = []
    for c, num in zip(cols, numeric, strict=True):
        cells = [t.text(i, c, report.marker) for i in range(t.frame.shape[0])]
        columns.append([_glue_number(x) for x in cells] if num else cells)

    def make(plan: TablePlan) -> LongTable:
        def para(text: str, width: float, bold: bool, right: bool) -> Paragraph:
            if plan.underscore_breaks and not bold:  # a heading wraps between words only
                text = break_after_underscores(text, width - CELL_EXTRA, CELL_FONT, plan.size)
            return Paragraph(escape(text), st.cell(plan.size, bold=bold, right=right))

        data = [[para(h, w, True, num) for h, w, num in zip(headers, plan.widths, numeric, strict=True)]]
        for i in range(t.frame.shape[0]):
            data.append([para(col[i], w, False, num) for col, w, num in zip(columns, plan.widths, numeric, strict=True)])
        tbl = LongTable(data, colWidths=plan.widths, repeatRows=1, hAlign="LEFT")
        tbl.setStyle(TABLE_STYLE)
        return tbl

    plan = plan_table(headers, columns, lay.frame_width, lay.cell_sizes)
    body: Flowable = make(plan)
    if t.frame.shape[0] >= TWO_UP_ROWS:  # long and narrow: in two columns side by side?
        half_width = (lay.frame_width - TWO_UP_GAP) / 2
        half = plan_table(headers, columns, half_width, lay.cell_sizes[:1])
        if not half.underscore_breaks and half.size == plan.size:
            narrow = TwoUp(make(half), TWO_UP_GAP)
            if narrow.balanced()[0] < TWO_UP_GAIN * body.wrap(lay.frame_width, 1e9)[1]:
                body = narrow
    out: list[Flowable] = [paragraph(t.title, st.h3), body]
    if t.note:
        out.append(paragraph(t.note, st.small))
    return out


def _badges(badges: Sequence[Badge], st: Styles, lay: Layout) -> Flowable:
    """The verdicts as a table: the status word on a fill that also reads in grey, name, detail."""
    style, size = st.badge, st.badge.fontSize
    words = [BADGE_STYLE.get(b.status, (str(b.status).upper(), "#ffffff", "#000000")) for b in badges]
    pad = 2 * 4 + 1
    status_w = max(stringWidth(w, HEAD_FONT, size) for w, _, _ in words) + pad
    name_n, name_m = text_extent([b.name for b in badges], HEAD_FONT, size)
    det_n, det_m = text_extent([b.detail for b in badges], style.fontName, size)
    widths = fit_widths([status_w, name_n + pad, det_n + pad], [status_w, name_m + pad, det_m + pad], lay.frame_width)
    if widths is None:
        widths = [status_w, (lay.frame_width - status_w) * 0.3, (lay.frame_width - status_w) * 0.7]
    data, cmds = [], [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 4), ("RIGHTPADDING", (0, 0), (-1, -1), 4),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
        ("LINEBELOW", (0, 0), (-1, -1), 0.4, colors.HexColor("#c8c8c8")),
        ("BOX", (0, 0), (0, -1), 0.4, colors.HexColor("#7a7a7a")),
    ]
    for k, (b, (word, fill, ink)) in enumerate(zip(badges, words, strict=True)):
        data.append([paragraph(word, st.cell(size, bold=True, color=ink)),
                     paragraph(b.name, st.cell(size, bold=True)), paragraph(b.detail, style)])
        cmds.append(("BACKGROUND", (0, k), (0, k), colors.HexColor(fill)))
    tbl = LongTable(data, colWidths=widths, hAlign="LEFT")
    tbl.setStyle(TableStyle(cmds))
    return tbl


def chart_size(pixels: tuple[int, int], lay: Layout, reserve: float = 0.0) -> tuple[float, float]:
    """A chart's size on the page, aspect kept: as drawn (130 dpi), shrunk to the frame's width
    and to the chart cap (a tall chart, one with many rows like a Love plot, may take a page
    less ``reserve``, the room for its caption and a heading)."""
    iw, ih = pixels
    w, h = iw * PT_PER_PX, ih * PT_PER_PX
    tall = ih >= 0.9 * iw and lay.tall_chart_height is not None
    cap = lay.tall_chart_height if tall else lay.chart_height
    scale = min(1.0, lay.frame_width / w, min(cap, lay.frame_height - reserve) / h)
    return w * scale, h * scale


FIGURE_MIN_SCALE = 0.75  # a chart may shrink this far to finish a page rather than start one


class Figure(Flowable):
    """A chart over its caption, never split: at the foot of a page it shrinks (down to
    FIGURE_MIN_SCALE, aspect kept) when that lets it finish the page, else it starts the next."""

    def __init__(self, png: bytes, width: float, height: float, caption: Paragraph, space: float) -> None:
        super().__init__()
        self.png, self.w, self.h, self.caption, self.space = png, width, height, caption, space
        self.spaceAfter = caption.getSpaceAfter()
        self.hAlign = "LEFT"
        self.scale = 1.0

    def min_height(self, aW: float) -> float:
        return self.space + self.h * FIGURE_MIN_SCALE + self.caption.wrap(aW, 1e9)[1]

    def wrap(self, aW: float, aH: float) -> tuple[float, float]:
        self._caption_h = self.caption.wrap(aW, 1e9)[1]
        room = (aH - self.space - self._caption_h) / self.h
        self.scale = 1.0 if room >= 1 or room < FIGURE_MIN_SCALE else room
        self.width, self.height = aW, self.space + self.h * self.scale + self._caption_h
        return self.width, self.height

    def split(self, aW: float, aH: float) -> list[Flowable]:
        return []

    def draw(self) -> None:
        self.caption.drawOn(self.canv, 0, 0)
        self.canv.drawImage(ImageReader(io.BytesIO(self.png)), 0, self._caption_h, width=self.w * self.scale,
                            height=self.h * self.scale, mask="auto")


def _chart(c: Chart, st: Styles, lay: Layout) -> list[Flowable]:
    """A chart and its caption, as one flowable."""
    caption = paragraph(f"{c.title}. {c.caption}" if c.caption else c.title, st.small)
    room = caption.wrap(lay.frame_width, lay.frame_height)[1] + caption.getSpaceAfter() + HEADING_ROOM
    w, h = chart_size(ImageReader(io.BytesIO(c.png)).getSize(), lay, room)
    return [Figure(c.png, w, h, caption, space=0.15 * cm)]


# how the parts of a section are kept on a page: "flow" (split anywhere), "whole" (never split:
# a heading and a paragraph), "start" (a chart or a table: see _start)
TABLE_START_SHARE = 0.25


def _start(parts: list[Flowable], lay: Layout) -> list[Flowable]:
    """A block behind a conditional page break, so that a heading or a title is never left alone
    at the foot of a page, nor with only a table's first row: a chart needs room for all of
    itself (shrunk as far as it may be), a table for a share of a page."""
    height, most = 0.0, lay.frame_height * TABLE_START_SHARE
    for f in parts:
        if isinstance(f, Figure):
            height += f.min_height(lay.frame_width)
            break
        height += f.wrap(lay.frame_width, lay.frame_height)[1] + f.getSpaceBefore() + f.getSpaceAfter()
        if height >= most:
            height = most
            break
    return [CondPageBreak(height), *parts]


def section_story(report: Report, s: Section, st: Styles, lay: Layout, level: int = 1) -> list[Flowable]:
    """The flowables of one section, for the report and the brief alike: heading, text, badges,
    charts, the compact tables (full ones are named, not printed), then its sub-sections. The
    heading is kept with whatever comes first."""
    head = paragraph(s.title, st.h1 if level == 1 else st.h2)
    head.outline = (s.title, level - 1)  # an entry in the PDF's outline (see _Doc)
    blocks: list[tuple[list[Flowable], str]] = []
    blocks += [([paragraph(x, st.body)], "flow") for x in s.paragraphs]
    blocks += [([paragraph(x, st.bullet, bulletText="•")], "flow") for x in s.bullets]
    blocks += [([paragraph(x, st.warn)], "flow") for x in s.unavailable]
    if lay.links:
        blocks += [([paragraph(f"{text}: {href}", st.small)], "flow") for text, href in s.links]
    if s.badges:
        blocks.append(([_badges(s.badges, st, lay), Spacer(1, 0.2 * cm)], "start"))
    blocks += [(_chart(c, st, lay), "start") for c in s.charts]
    for t in s.tables:
        if not t.detail and t.frame.shape[0] and t.frame.shape[1]:  # no empty tables
            blocks.append((_table(t, report, st, lay), "start"))
    if any(t.detail for t in s.tables):
        blocks.append(([paragraph(DETAIL_POINTER, st.small)], "flow"))
    out: list[Flowable] = []
    if blocks:
        first, kind = blocks[0]
        blocks[0] = ([head, *first], "whole" if kind == "flow" else kind)
    else:  # a heading over sub-sections only: not alone at the foot of a page
        out += [CondPageBreak(lay.frame_height * TABLE_START_SHARE), head]
    for parts, kind in blocks:
        if kind == "flow":
            out += parts
        elif kind == "start":
            out += _start(parts, lay)
        else:
            out.append(KeepTogether(parts))
    for part in getattr(s, "parts", ()):  # sub-sections (newer models)
        out += section_story(report, part, st, lay, level + 1)
    return out


# --- documents ------------------------------------------------------------------------------

class _Doc(SimpleDocTemplate):
    """A document that adds each section's heading to the PDF outline (bookmarks), sub-sections
    under their section."""

    def afterFlowable(self, flowable: Flowable) -> None:  # reportlab calls this hook
        entry = getattr(flowable, "outline", None)
        if entry:
            title, level = entry
            key = f"s{id(flowable)}"
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(title, key, level=level)


def build_pdf(report: Report, target: Path | io.BytesIO, lay: Layout, story: list[Flowable],
              title: str) -> int:
    """Write the story (with the footer, the metadata and the outline); returns the number of
    pages."""
    footer = f"{title} · {report.period}"

    def on_page(canv, doc) -> None:
        canv.saveState()
        canv.setFont("Helvetica", 7)
        canv.setFillColor(colors.HexColor("#6a6a6a"))
        canv.drawString(lay.margin_x, lay.margin_y / 2, footer)
        canv.drawRightString(lay.pagesize[0] - lay.margin_x, lay.margin_y / 2, f"page {doc.page}")
        canv.restoreState()

    doc = _Doc(str(target) if isinstance(target, Path) else target, pagesize=lay.pagesize, leftMargin=lay.margin_x, rightMargin=lay.margin_x,
               topMargin=lay.margin_y, bottomMargin=lay.margin_y, title=title, author="levelcare",
               subject=f"Period {report.period}", creator="levelcare", lang=PDF_LANG, displayDocTitle=1)
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return doc.page


def write_pdf(report: Report, path: Path) -> Path:
    """The whole report on landscape A4 (wide tables fit across)."""
    report.check()
    lay = REPORT_LAYOUT
    st = Styles(lay.body_size)
    story: list[Flowable] = [
        paragraph(report.title, st.title),
        paragraph(f"Period: {report.period} · results run {report.run_id or '–'} · "
                  f"created {report.created_at or '–'} · disclosure rule {report.rule_name}", st.small),
        paragraph(report.disclosure_note, st.small),
    ]
    for k, s in enumerate(report.sections):
        if s.id == APPENDIX and k:
            story.append(PageBreak())
        story += section_story(report, s, st, lay)
    build_pdf(report, path, lay, story, report.title)
    return path


# the brief is tried at these sizes until it fits: (body font, chart cap as a share of the frame
# height, table fonts); the charts shrink first, the 9 pt text only when they are small
_CELLS = (7.0, 6.0, 5.5)
BRIEF_STEPS = ((9.0, 0.5, _CELLS), (9.0, 0.4, _CELLS), (9.0, 0.33, _CELLS), (9.0, 0.27, _CELLS), (9.0, 0.22, _CELLS),
               (8.5, 0.22, (6.5, 6.0, 5.5)), (8.0, 0.2, (6.0, 5.5)), (7.5, 0.18, (5.5,)))
BRIEF_MAX_PAGES = 2


def write_brief_pdf(report: Report, path: Path, section_id: str = "summary", kind: str = "board brief",
                    max_pages: int | None = None) -> Path:
    """One section (the summary by default) as a portrait A4 brief of at most two pages (or
    ``max_pages``), titled the report's title — ``kind``."""
    report.check()
    section = next((s for s in report.sections if s.id == section_id), None)
    if section is None:
        raise ValueError(f"no section {section_id!r} in the report (have {', '.join(s.id for s in report.sections)})")
    title = f"{report.title} — {kind}"
    most = BRIEF_MAX_PAGES if max_pages is None else max_pages
    pages, data = 0, b""
    for body, share, cells in BRIEF_STEPS:
        lay = replace(BRIEF_LAYOUT, body_size=body, chart_height=BRIEF_LAYOUT.frame_height * share, cell_sizes=cells)
        st = Styles(lay.body_size)
        story: list[Flowable] = [
            paragraph(title, st.title),
            paragraph(f"Period: {report.period} · results run {report.run_id or '–'}", st.small),
            paragraph(report.disclosure_note, st.small),
        ]
        story += section_story(report, section, st, lay)
        buf = io.BytesIO()
        pages, data = build_pdf(report, buf, lay, story, title), buf.getvalue()
        if pages <= most:
            log.debug("brief: %d page(s) at %.1f pt, charts up to %.0f%% of the page", pages, body, 100 * share)
            break
    else:
        log.warning("the brief of section %s takes %d pages (more than %d)", section_id, pages, most)
    Path(path).write_bytes(data)
    return path
