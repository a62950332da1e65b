"""Tables as an XLSX workbook (one sheet per section) and as CSV, with formula-like text
neutralized: a cell starting with = + - @ tab or CR would run as a formula in a spreadsheet."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pipelines.report.model import Report, Table

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_BAD_SHEET = re.compile(r"[\[\]\*\?/\\:]")


def safe_cell(v: Any) -> Any:
    """Text that a spreadsheet would read as a formula gets a leading apostrophe (OWASP CSV
    injection); numbers stay numbers."""
    if isinstance(v, str) and v.startswith(FORMULA_START):
        return "'" + v
    return v


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


def sheet_name(title: str, used: set[str]) -> str:
    base = _BAD_SHEET.sub(" ", title)[:31].strip() or "sheet"
    name, k = base, 2
    while name.lower() in used:
        suffix = f" {k}"
        name, k = base[: 31 - len(suffix)] + suffix, k + 1
    used.add(name.lower())
    return name


def write_workbook(path: Path, sheets: Iterable[tuple[str, Sequence[Table], Sequence[str]]], marker: str,
                   rule_name: str) -> Path:
    """``sheets``: (sheet title, tables, lines of text above them). Every table passes the guard."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    wb.remove(wb.active)
    used: set[str] = set()
    bold = Font(bold=True)
    for title, tabs, lines in sheets:
        ws = wb.create_sheet(sheet_name(title, used))
        r = 1
        for line in lines:
            ws.cell(row=r, column=1, value=safe_cell(line))
            r += 1
        for t in tabs:
            t.check(rule_name)
            if r > 1:
                r += 1
            ws.cell(row=r, column=1, value=safe_cell(t.title)).font = bold
            r += 1
            header, rows = table_rows(t, marker)
            for j, h in enumerate(header, start=1):
                ws.cell(row=r, column=j, value=safe_cell(h)).font = bold
            r += 1
            for row in rows:
                for j, v in enumerate(row, start=1):
                    ws.cell(row=r, column=j, value=v)
                r += 1
            if t.note:
                ws.cell(row=r, column=1, value=safe_cell(t.note))
                r += 1
    wb.save(path)
    return path


def write_report_xlsx(report: Report, path: Path) -> Path:
    sheets = []
    for s in report.sections:
        lines = [*s.paragraphs, *s.bullets, *s.unavailable]
        if s.id == "summary":
            lines = [report.title, f"Period: {report.period}; run {report.run_id}", *lines,
                     report.disclosure_note]
        sheets.append((s.title, s.tables, lines))
    return write_workbook(path, sheets, report.marker, report.rule_name)


def write_csv(path: Path, t: Table, marker: str, rule_name: str) -> Path:
    t.check(rule_name)
    header, rows = table_rows(t, marker, headings=False)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([safe_cell(h) for h in header])
        w.writerows(rows)
    return path
