"""The report as data: sections of paragraphs, tables and charts, written by html/pdf/xlsx.

Every table here already passed disclosure control; writers still call
:func:`pipelines.disclosure.check_artifact` on each one before writing (the last guard).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd



@dataclass
class Table:
    id: str
    title: str
    frame: pd.DataFrame  # display columns; None = hidden (see ``hidden``) or not applicable
    count_cols: tuple[str, ...] = ()  # person/episode counts, checked by the guard
    # where a cell was suppressed: its reason ("small" or "complementary"; True = small)
    hidden: pd.DataFrame | None = None
    # column -> int | pct | rd | pp | p | ratio | num2 | num3 | text (see :mod:`pipelines.report.numbers`)
    formats: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # column -> heading shown
    note: str = ""
    complementary_marker: str | None = None  # how a cell withheld to protect another is written
    # a full table kept for the workbook and the HTML (folded under "Full tables"), left out of
    # the PDF, which shows the section's compact table instead
    detail: bool = False
    # a table for reading (cells of text such as "43.1% (41.8% to 44.3%)") in the HTML and PDF,
    # left out of the workbook, which sorts the full table of the same numbers instead
    compact: bool = False

    def _column(self, frame: pd.DataFrame, col: str) -> list[Any]:
        """A column as a list, kept while the frame is the same object: writers read a table
        cell by cell, and a pandas row per cell cost seconds for a large report."""
        cache = self.__dict__.setdefault("_columns", {})
        key = (id(frame), col)
        if key not in cache:
            cache[key] = (frame, frame[col].tolist())  # the frame is held so its id stays its own
        return cache[key][1]

    def value(self, i: int, col: str) -> Any:
        """The cell's value (None or NaN when it has none)."""
        return self._column(self.frame, col)[i]

    def reason(self, i: int, col: str) -> str | None:
        """Why a cell is hidden: "small", "complementary", or None when it is shown."""
        h = self.hidden
        if h is None or col not in h.columns:
            return None
        v = self._column(h, col)[i]
        if v is None or v is False or (isinstance(v, float) and math.isnan(v)):
            return None
        return v if isinstance(v, str) else ("small" if bool(v) else None)

    def is_hidden(self, i: int, col: str) -> bool:
        return self.reason(i, col) is not None

    def marker(self, i: int, col: str, marker: str) -> str:
        """The rule's marker for a small cell; the complementary marker for a protecting one."""
        if self.reason(i, col) == "complementary" and self.complementary_marker:
            return self.complementary_marker
        return marker

    def heading(self, col: str) -> str:
        return self.headers.get(col, col.replace("_", " "))

    def check(self, rule: str) -> None:
        """The final guard: refuse if a count the rule forbids would be written."""
        from pipelines.disclosure import check_artifact

        check_artifact(self.frame, list(self.count_cols), rule=rule, name=self.id)
        if {"numerator", "denominator"} <= set(self.frame.columns):  # a small complement
            check_artifact(self.frame[["numerator", "denominator"]], [], rule=rule, name=self.id)

    def text(self, i: int, col: str, marker: str) -> str:
        """The cell as text: the rule's marker when hidden, a dash when there is no value."""
        if self.is_hidden(i, col):
            return self.marker(i, col, marker)
        return format_value(self.value(i, col), self.formats.get(col))


def format_value(v: Any, fmt: str | None) -> str:
    from pipelines.report import numbers

    return numbers.cell(v, fmt)


@dataclass
class Chart:
    id: str
    title: str
    svg: str  # inline SVG for the HTML
    png: bytes  # the same figure for the PDF
    caption: str = ""


@dataclass
class Badge:
    """A pass/warn/fail verdict on whether an estimate can be trusted (OHDSI diagnostics style):
    ``status`` is the word shown (never colour alone), ``detail`` the figures behind it."""

    name: str
    status: str  # "pass" | "warn" | "fail" | "n/a"
    detail: str


@dataclass
class Section:
    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # each "not available: <reason>"
    badges: list[Badge] = field(default_factory=list)  # pass/warn/fail verdicts, shown before any estimate
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, relative href)
    parts: list[Section] = field(default_factory=list)  # sub-sections (a heading each), after the above

    def all_tables(self) -> list[Table]:
        return [*self.tables, *(t for p in self.parts for t in p.all_tables())]

    def all_charts(self) -> list[Chart]:
        return [*self.charts, *(c for p in self.parts for c in p.all_charts())]


@dataclass
class Report:
    title: str
    period: str  # the period the numbers cover, in words
    run_id: str
    created_at: str
    rule_name: str
    marker: str
    disclosure_note: str
    sections: list[Section]
    complementary_marker: str = ""

    def __post_init__(self) -> None:
        for t in self.tables():
            t.complementary_marker = t.complementary_marker or self.complementary_marker or None

    def check(self) -> None:
        """The final guard over every table, called by each writer before it writes."""
        for t in self.tables():
            t.check(self.rule_name)

    def tables(self) -> list[Table]:
        return [t for s in self.sections for t in s.all_tables()]

    def charts(self) -> list[Chart]:
        return [c for s in self.sections for c in s.all_charts()]
