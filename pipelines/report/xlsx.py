"""Tables as an XLSX workbook and as CSV, with formula-like text neutralized: a cell starting
with = + - @ tab or CR would run as a formula in a spreadsheet.

The report's workbook (:func:`write_report_xlsx`) is made to be sorted and read by a board
member, a payer or a surveyor:

* a "Contents" sheet first: one row per other sheet, with an internal link to it, its section,
  its full title and a one-line description; below it, the run, the disclosure note and the
  number rule below;
* one table per sheet: the sheet's full title in row 1, the header in row 2 (frozen, with an
  autofilter over the table), the rows, then a blank row and the notes (the table's note, and on
  the first sheet of a section the section's text); a section without a table, and the summary,
  is a one-column table of its lines;
* the success definitions on their own sheet ("Definitions"), read from results.json's
  ``definitions`` list;
* sheet names of at most 31 characters made of the title's first whole words (see
  :func:`sheet_name`); the full title is in row 1 and in the contents;
* column widths fitted to the header and the cells (8 to 60 characters; longer text wraps).

Number rule (the cell always keeps the full-precision number; only its display changes):

* proportions (rates, shares, their interval bounds, control limits: a table's ``pct``
  columns, and the share of weights truncated) are on the 0-1 scale, as in results.json, shown
  as ``0.0%``; floating noise such as 3.47e-18 shows as 0.0%;
* differences of proportions (the risk differences of the comparison and effect-modification
  tables) are on the 0-1 scale too, shown signed as ``+0.0%;-0.0%;0.0%``: +5.0% is 5
  percentage points. The non-inferiority table, which the report gives in percentage points
  already on its absolute-margin rows, keeps those values and shows them as ``+0.0 pp``; its
  risk-ratio rows show ``0.00``;
* p-values show ``0.000``, and below 0.001 show "< 0.001";
* counts show thousands separators (``#,##0``); other numbers show 2 or 3 decimals as the
  table declares (3 when it declares none), never an exponent;
* a cell hidden by disclosure control keeps the rule's marker text.

The accreditation export (:func:`write_workbook`) keeps its own layout (several tables on a
sheet, under a bold title each); its cells get the same number formats and fitted widths.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.report.model import Report, Section, Table
from pipelines.writers import safe_cell

_BAD_SHEET = re.compile(r"[\[\]\*\?/\\:]")
SHEET_MAX = 31  # Excel's limit on a sheet name
CONTENTS = "Contents"

# number formats (see the module's docstring)
PERCENT = "0.0%"
DIFFERENCE = "+0.0%;-0.0%;0.0%"
POINTS = '+0.0" pp";-0.0" pp";0.0" pp"'
POINTS_MARGIN = '0.0" pp"'
P_VALUE = '[<0.001]"< 0.001";0.000'
COUNT = "#,##0"
NUMBER_FORMATS = {"usd": '"$"#,##0;-"$"#,##0', "num1": "0.0", "int": COUNT, "pct": PERCENT, "num2": "0.00", "num3": "0.000", "rd": DIFFERENCE, "pp": POINTS,
                  "p": P_VALUE, "ratio": "0.00"}
DEFAULT_FLOAT = "0.000"
_P_COLUMN = re.compile(r"(^|_)p(_value|_bh|_holm)?$|^p_")

NONINFERIORITY = "table-noninferiority"

WIDTH_MIN, WIDTH_MAX = 8, 60
ROW_HEIGHT, MAX_LINES = 15, 12  # points per line of wrapped text; the tallest row, in lines
_STOP_WORDS = frozenset({"a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "vs",
                         "with", "within"})
_TRAILING = ",;-–—&"

DEFINITIONS_ID = "table-definitions"
DEFINITIONS_TITLE = "Definitions (success definitions analysed, from results.json)"
DEFINITION_COLUMNS = ["id", "version", "label", "description", "population", "success", "missing", "window_days",
                      "applicable", "references"]
DEFINITION_HEADERS = {"missing": "missing-data policy", "window_days": "window (days)"}

# one line per sheet in the contents, by table id (a table not named here: its note's first sentence)
DESCRIPTIONS = {
    "summary": "The board brief: who was served, headline outcomes, whether the adjusted comparison can be "
               "trusted, IOP vs residential in words, the trend and the data-quality flags.",
    "table-ledger": "Each file received, with rows read, loaded and quarantined.",
    "table-quarantine": "Rows set aside by each data check, with the reason.",
    "table-followup": "Share of discharges reached at each follow-up window, by level of care (target 80%).",
    "table-validation": "Validation of each file by levelcare's checks and great-expectations suites.",
    "table-validation-failed": "Validation checks that did not pass, with their failing rows.",
    "table-cohort": "Discharges, people and sites by level of care.",
    "table-one": "Baseline characteristics by level of care, with standardized mean differences (SMD).",
    "table-rates": "Success rate of every definition by level of care, with 95% intervals.",
    "table-comparisons": "IOP minus residential risk difference, crude and adjusted, with 95% intervals.",
    "table-noninferiority": "Whether IOP is non-inferior to residential for each definition, on its margin.",
    "table-diagnostics": "Propensity diagnostics of the adjusted comparison: overlap, effective sample size, "
                         "balance.",
    "table-modification": "Adjusted risk difference within subgroups, with the interaction p-value.",
    "table-at-risk": "People still at risk of readmission on each day after discharge.",
    "table-trend": "Rate by quarter of the trended definition, with p-chart control limits.",
    "table-sites": "Rate of the headline definition at each site, with 95% intervals.",
    "table-stepdown-quarter": "Residential discharges followed by an IOP admission within 14 days, by quarter.",
    "table-stepdown-care": "Residential discharges followed by an IOP admission within 14 days, by setting.",
    "table-benchmark-rows": "Observed against expected successes (O/E) beside TEDS-D, adjusted for case mix: the "
                            "program, each level of care and site (and quarter when asked for).",
    "table-benchmark-models": "The national case-mix model of each definition and TEDS-D setting, with its "
                              "discrimination and calibration on held-out rows.",
    "table-benchmark-calibration": "Held-out TEDS-D rows by decile of predicted risk: mean predicted against observed.",
    DEFINITIONS_ID: "Every success definition: population, success, missing-data policy and window.",
    "table-inputs": "The input files of the analysis, with their SHA-256 checksums.",
}
_BALANCE_DESCRIPTION = "Standardized mean difference of each covariate before and after this weighting."
NUMBER_RULE = ("Numbers: rates, shares and their 95% interval bounds are shown as percentages; differences "
               "between rates are shown signed (+5.0% = 5 percentage points higher); p-values below 0.001 "
               "are shown as < 0.001; each cell keeps its full-precision number.")


def table_rows(t: Table, marker: str, *, headings: bool = True) -> tuple[list[str], list[list[Any]]]:
    """Header (headings, or column names for CSV) and rows of a table for a spreadsheet: numbers
    as numbers, counts as integers, hidden cells as the marker."""
    header = [t.heading(c) if headings else str(c) for c in t.frame.columns]
    rows = []
    for i in range(t.frame.shape[0]):
        row = []
        for c in t.frame.columns:
            v = t.value(i, c)
            if t.is_hidden(i, c):
                v = t.marker(i, c, marker)
            elif v is None or (isinstance(v, float) and math.isnan(v)):
                v = None
            elif hasattr(v, "item"):
                v = v.item()
            if isinstance(v, float) and t.formats.get(c) == "int":
                v = int(v)
            row.append(safe_cell(v if isinstance(v, (int, float, type(None))) else str(v)))
        rows.append(row)
    return header, rows


# --------------------------------------------------------------------------- sheet names
def _title_words(title: str) -> list[tuple[str, bool]]:
    """The words of a title as a sheet name may hold them (no [ ] * ? / \\ :), each with
    whether a clause ends after it (the title's word ended with a colon, semicolon or comma)."""
    out: list[tuple[str, bool]] = []
    for raw in str(title).split():
        parts = _BAD_SHEET.sub(" ", raw).split()
        out += [(w, k == len(parts) - 1 and raw.endswith((":", ";", ","))) for k, w in enumerate(parts)]
    return out


def _unclosed_paren(words: Sequence[str]) -> int | None:
    """Index of the word opening a parenthesis that the words do not close, else None."""
    opened: list[int] = []
    for i, w in enumerate(words):
        for ch in w:
            if ch == "(":
                opened.append(i)
            elif ch == ")" and opened:
                opened.pop()
    return opened[0] if opened else None


def _fit(tokens: Sequence[tuple[str, bool]], limit: int) -> str:
    """The title's first whole words within ``limit`` characters. When words had to be dropped,
    the name also ends at the last clause break it reaches (a colon, semicolon or comma of the
    title), without an unclosed parenthesis and without a trailing small word ("by", "of", ...).
    A single word longer than the limit is the only thing ever cut."""
    words = [w for w, _ in tokens]
    if not words:
        return "Sheet"[:limit]
    n = len(words)
    while n > 1 and len(" ".join(words[:n])) > limit:
        n -= 1
    if n < len(words):
        breaks = [i + 1 for i in range(n) if tokens[i][1]]
        n = breaks[-1] if breaks else n
        kept = list(words[:n])
        while True:
            opened = _unclosed_paren(kept)
            if opened is not None and opened > 0:
                kept = kept[:opened]
            elif len(kept) > 1 and kept[-1].lower().strip(_TRAILING) in _STOP_WORDS | {""}:
                kept.pop()
            else:
                break
    else:
        kept = words
    name = " ".join(kept).rstrip(_TRAILING + " ").strip("'") or " ".join(kept)
    return name[:limit].rstrip() or "Sheet"


def sheet_name(title: str, used: set[str]) -> str:
    """A sheet name for ``title``: at most 31 characters, of the title's first whole words
    (characters a sheet name cannot hold become spaces); a name already in ``used`` (lower case)
    gets " 2", " 3", ... with words dropped to make room. Adds the name to ``used``."""
    tokens = _title_words(title)
    name = _fit(tokens, SHEET_MAX)
    k = 2
    while name.lower() in used or name.lower() == "history":  # Excel reserves "History"
        suffix = f" {k}"
        name, k = _fit(tokens, SHEET_MAX - len(suffix)) + suffix, k + 1
    used.add(name.lower())
    return name


def _link(name: str) -> str:
    """An internal link's location: the sheet's cell A1 (quotes in the name doubled)."""
    return "'" + name.replace("'", "''") + "'!A1"


# --------------------------------------------------------------------------- number formats
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _column_formats(t: Table) -> dict[str, str | None]:
    """Each column's number format, before any row's own (see :func:`_cell_format`)."""
    out: dict[str, str | None] = {}
    for c in t.frame.columns:
        fmt = NUMBER_FORMATS.get(t.formats.get(c) or "")
        if _P_COLUMN.search(str(c)):
            fmt = P_VALUE
        out[c] = fmt
    return out


def _cell_format(t: Table, i: int, c: str, v: Any, column: str | None) -> str | None:
    """The number format of a numeric cell (None for text and empty cells)."""
    if not _is_number(v):
        return None
    if column == DIFFERENCE and "estimand" in t.frame.columns and t.value(i, "estimand") not in ("rd", None):
        return NUMBER_FORMATS.get(t.formats.get(c) or "") or DEFAULT_FLOAT
    if t.id == NONINFERIORITY and c in ("margin", "estimate", "ci_low", "ci_high") and "basis" in t.frame.columns:
        if str(t.value(i, "basis") or "").startswith("absolute"):
            return POINTS_MARGIN if c == "margin" else POINTS
        return column or "0.00"
    if column is None and isinstance(v, float):
        return DEFAULT_FLOAT
    return column


def _shown_length(v: Any, fmt: str | None) -> int:
    """About how many characters a cell shows (for the column width)."""
    if v is None:
        return 0
    if isinstance(v, str):
        return max((len(line) for line in v.splitlines()), default=0)
    if isinstance(v, bool):
        return 5
    if isinstance(v, int) and (fmt is None or fmt == COUNT):
        return len(f"{v:,}")
    if fmt and "%" in fmt:
        return len(f"{100 * float(v):+.1f}%")
    if fmt == P_VALUE:
        return 7
    if fmt and "pp" in fmt:
        return len(f"{float(v):+.1f} pp")
    return len(f"{float(v):,.3f}")


def _wrapped_lines(text: str, width: int) -> int:
    """About how many lines ``text`` takes wrapped in a column ``width`` characters wide (a
    spreadsheet does not grow a row for wrapped text it did not wrap itself)."""
    per_line = max(1, int(width * 1.1))  # text is narrower than the digits a width counts
    return min(MAX_LINES, sum(max(1, math.ceil(len(part) / per_line)) for part in text.splitlines() or [""]))


def _width(longest: int) -> int:
    return max(WIDTH_MIN, min(WIDTH_MAX, longest + 2))


# --------------------------------------------------------------------------- sheets
@dataclass
class _Sheet:
    """A sheet of the report's workbook: one table (or a one-column table of text lines)."""

    title: str
    section: str
    description: str
    table: Table | None = None
    lines: list[str] = field(default_factory=list)  # the table, when ``table`` is None
    notes: list[str] = field(default_factory=list)
    name: str = ""


def _styles():
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

    return {"title": Font(bold=True, size=13), "bold": Font(bold=True),
            "link": Font(color="0563C1", underline="single"),
            "fill": PatternFill("solid", fgColor="DDE5F0"), "border": Border(bottom=Side(style="thin")),
            "wrap": Alignment(wrap_text=True, vertical="top"), "top": Alignment(vertical="top")}


def _write_table_sheet(ws, sheet: _Sheet, marker: str, rule_name: str, styles: dict) -> None:
    """Row 1 the full title, row 2 the header (frozen, filtered), the rows, a blank row, the notes."""
    from openpyxl.utils import get_column_letter

    ws.cell(row=1, column=1, value=safe_cell(sheet.title)).font = styles["title"]
    if sheet.table is not None:
        t = sheet.table
        t.check(rule_name)
        header, rows = table_rows(t, marker)
        columns = list(t.frame.columns)
        formats = _column_formats(t)
    else:
        header, rows, columns, formats = ["text"], [[safe_cell(x)] for x in sheet.lines], ["text"], {"text": None}
    head = 2
    longest = [len(str(h)) for h in header]
    for j, h in enumerate(header, start=1):
        cell = ws.cell(row=head, column=j, value=safe_cell(h))
        cell.font, cell.fill, cell.border = styles["bold"], styles["fill"], styles["border"]
    for i, row in enumerate(rows):
        r = head + 1 + i
        for j, v in enumerate(row):
            cell = ws.cell(row=r, column=j + 1, value=v)
            fmt = _cell_format(t, i, columns[j], v, formats[columns[j]]) if sheet.table is not None else None
            if fmt is not None:
                cell.number_format = fmt
            longest[j] = max(longest[j], _shown_length(v, fmt))
    last = head + len(rows)
    end = get_column_letter(len(header))
    ws.freeze_panes = f"A{head + 1}"
    ws.auto_filter.ref = f"A{head}:{end}{last}"
    ws.print_title_rows = f"{head}:{head}"
    ws.page_setup.orientation = "landscape"
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    lines: dict[int, int] = {}
    for j, n in enumerate(longest, start=1):
        ws.column_dimensions[get_column_letter(j)].width = _width(n)
        if n > WIDTH_MAX:  # long text wraps within the widest column, its row made tall enough
            for i, row in enumerate(rows):
                cell = ws.cell(row=head + 1 + i, column=j)
                cell.alignment = styles["wrap"]
                if isinstance(row[j - 1], str):
                    lines[i] = max(lines.get(i, 1), _wrapped_lines(row[j - 1], WIDTH_MAX))
    for i, n in lines.items():
        if n > 1:
            ws.row_dimensions[head + 1 + i].height = ROW_HEIGHT * n
            for j, n_j in enumerate(longest, start=1):  # the row's other cells at its top too
                if n_j <= WIDTH_MAX:
                    ws.cell(row=head + 1 + i, column=j).alignment = styles["top"]
    # the notes: each across the table's width, wrapped (a long line would widen the printed page)
    across = min(sum(_width(n) for n in longest), 3 * WIDTH_MAX)
    r = last + 2
    for note in sheet.notes:
        cell = ws.cell(row=r, column=1, value=safe_cell(note))
        cell.alignment = styles["wrap"]
        if len(header) > 1:
            ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=len(header))
        n = _wrapped_lines(note, across)
        if n > 1:
            ws.row_dimensions[r].height = ROW_HEIGHT * n
        r += 1


def _applicable(d: Mapping[str, Any]) -> str | None:
    a = d.get("applicable")
    if a is None or isinstance(a, str):  # absent, or already in words (the report's own table)
        return a
    return "yes" if a else f"no: {d.get('not_applicable_reason')}"


def _definitions_table(definitions: Sequence[Mapping[str, Any]]) -> Table:
    """The definitions sheet's table: one row per definition of results.json's list (or of the
    report's own definitions table, whose rows have the same keys but no window)."""
    from pipelines.report.tables import simple_table

    recs = []
    for d in definitions:
        refs = d.get("references")
        recs.append({"id": d.get("id"), "version": d.get("version"), "label": d.get("label"),
                     "description": d.get("description"), "population": d.get("population") or "every episode",
                     "success": d.get("success"), "missing": d.get("missing"), "window_days": d.get("window_days"),
                     "applicable": _applicable(d),
                     "references": refs if isinstance(refs, str) or refs is None else "; ".join(map(str, refs))})
    return simple_table(DEFINITIONS_ID, DEFINITIONS_TITLE, recs, DEFINITION_COLUMNS, {"window_days": "int"},
                        headers=DEFINITION_HEADERS)


def _first_sentence(text: str, limit: int = 110) -> str:
    s = re.split(r"(?<=[.;:])\s", text.strip(), maxsplit=1)[0] if text else ""
    if len(s) > limit:
        s = s[:limit].rsplit(" ", 1)[0] + " …"
    return s


def _description(t: Table, s: Section) -> str:
    if t.id in DESCRIPTIONS:
        return DESCRIPTIONS[t.id]
    if t.id.startswith("table-balance-"):
        return _BALANCE_DESCRIPTION
    return _first_sentence(t.note) or f"A table of the section '{s.title}'."


def _lines(s: Section) -> list[str]:
    """A section's text as lines: paragraphs, bullets, badges and what is not available, then
    each sub-section's under its title."""
    out = [*s.paragraphs, *s.bullets, *(f"{b.status.upper()}: {b.name}: {b.detail}" for b in s.badges), *s.unavailable]
    for p in s.parts:
        out += [f"{p.title}:", *_lines(p)]
    return out


def _report_sheets(report: Report, definitions: Sequence[Mapping[str, Any]] | None) -> list[_Sheet]:
    """The report's sheets in reading order: the summary, each table of each section (the
    definitions from ``definitions`` when given), a text sheet for a section without a table."""
    sheets: list[_Sheet] = []
    for s in report.sections:
        lines = _lines(s)
        if s.id == "summary":
            lines = [report.title, f"Period: {report.period}; run {report.run_id}", *lines, report.disclosure_note]
        tabs = [t for t in s.all_tables() if not t.compact]
        own = next((t for t in tabs if t.id == DEFINITIONS_ID), None)
        if s.id == "appendix" and (definitions is not None or own is not None):
            if definitions is None:  # the report's table: the same definitions, without their window
                definitions = [{c: own.value(i, c) for c in own.frame.columns} for i in range(len(own.frame))]
            tabs = [t for t in tabs if t.id != DEFINITIONS_ID]
            tabs.insert(0, _definitions_table(definitions))
        if not tabs:
            sheets.append(_Sheet(title=s.title, section=s.title, lines=lines or ["Nothing to show."],
                                 description=DESCRIPTIONS.get(s.id) or _first_sentence(lines[0] if lines else "")
                                 or f"The text of the section '{s.title}'."))
            continue
        for k, t in enumerate(tabs):
            title = DEFINITIONS_TITLE if t.id == DEFINITIONS_ID else t.title
            notes = [t.note] if t.note else []
            if k == 0 and lines:
                notes += [f"{s.title}:", *lines]
            sheets.append(_Sheet(title=title, section=s.title, description=_description(t, s), table=t,
                                 notes=notes))
    return sheets


def write_report_xlsx(report: Report, path: Path,
                      definitions: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """The report's workbook (see the module's docstring). ``definitions``: results.json's
    ``definitions`` list; when not given, the report's own definitions table (which has no
    window column)."""
    from openpyxl import Workbook
    from openpyxl.worksheet.hyperlink import Hyperlink

    sheets = _report_sheets(report, definitions)  # each table passes the guard as its sheet is written
    styles = _styles()
    used: set[str] = {CONTENTS.lower()}
    for sh in sheets:
        sh.name = sheet_name(sh.title, used)
    wb = Workbook()
    contents = wb.active
    contents.title = CONTENTS
    for sh in sheets:
        _write_table_sheet(wb.create_sheet(sh.name), sh, report.marker, report.rule_name, styles)
    index = _Sheet(title=f"Contents: {report.title}", section="", description="", notes=[
        f"Period: {report.period}. Results run {report.run_id or '–'}, created {report.created_at or '–'}.",
        report.disclosure_note, NUMBER_RULE])
    index.table = _contents_table(sheets)
    _write_table_sheet(contents, index, report.marker, report.rule_name, styles)
    for i, sh in enumerate(sheets):
        cell = contents.cell(row=3 + i, column=1)
        cell.hyperlink = Hyperlink(ref=cell.coordinate, location=_link(sh.name), display=sh.name)
        cell.font = styles["link"]
    wb.save(path)
    return path


def _contents_table(sheets: Sequence[_Sheet]) -> Table:
    from pipelines.report.tables import simple_table

    recs = [{"sheet": sh.name, "section": sh.section, "title": sh.title, "description": sh.description}
            for sh in sheets]
    return simple_table("contents", "Contents", recs, ["sheet", "section", "title", "description"])


# --------------------------------------------------------------------------- accreditation
def write_workbook(path: Path, sheets: Iterable[tuple[str, Sequence[Table], Sequence[str]]], marker: str,
                   rule_name: str) -> Path:
    """``sheets``: (sheet title, tables, lines of text above them); several tables on a sheet,
    each under its bold title. Every table passes the guard."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    wb.remove(wb.active)
    used: set[str] = set()
    styles = _styles()
    for title, tabs, lines in sheets:
        ws = wb.create_sheet(sheet_name(title, used))
        longest: dict[int, int] = {}
        r = 1
        for line in lines:
            ws.cell(row=r, column=1, value=safe_cell(line))
            r += 1
        for t in tabs:
            t.check(rule_name)
            if r > 1:
                r += 1
            ws.cell(row=r, column=1, value=safe_cell(t.title)).font = styles["bold"]
            r += 1
            header, rows = table_rows(t, marker)
            columns, formats = list(t.frame.columns), _column_formats(t)
            for j, h in enumerate(header, start=1):
                ws.cell(row=r, column=j, value=safe_cell(h)).font = styles["bold"]
                longest[j] = max(longest.get(j, 0), len(str(h)))
            r += 1
            for i, row in enumerate(rows):
                for j, v in enumerate(row, start=1):
                    cell = ws.cell(row=r, column=j, value=v)
                    fmt = _cell_format(t, i, columns[j - 1], v, formats[columns[j - 1]])
                    if fmt is not None:
                        cell.number_format = fmt
                    longest[j] = max(longest.get(j, 0), _shown_length(v, fmt))
                r += 1
            if t.note:
                ws.cell(row=r, column=1, value=safe_cell(t.note))
                r += 1
        for j, n in longest.items():
            ws.column_dimensions[get_column_letter(j)].width = _width(n)
    wb.save(path)
    return path


def write_csv(path: Path, t: Table, marker: str, rule_name: str) -> Path:
    t.check(rule_name)
    header, rows = table_rows(t, marker, headings=False)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([safe_cell(h) for h in header])
        w.writerows(rows)
    return path
