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

NOT_APPLICABLE = "–"  # a cell with no value (not a hidden one)


@dataclass
class Table:
    id: str
    title: str
    frame: pd.DataFrame  # display columns; None = hidden (see ``hidden``) or not applicable
    count_cols: tuple[str, ...] = ()  # person/episode counts, checked by the guard
    hidden: pd.DataFrame | None = None  # True where a cell was suppressed
    formats: dict[str, str] = field(default_factory=dict)  # column -> int | pct | num2 | num3 | text
    headers: dict[str, str] = field(default_factory=dict)  # column -> heading shown
    note: str = ""

    def is_hidden(self, i: int, col: str) -> bool:
        h = self.hidden
        return bool(h is not None and col in h.columns and bool(h.iloc[i][col]))

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
            return marker
        return format_value(self.frame.iloc[i][col], self.formats.get(col))


def format_value(v: Any, fmt: str | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return NOT_APPLICABLE
    try:
        if fmt == "int":
            return f"{int(v):,}"
        if fmt == "pct":
            return f"{100 * float(v):.1f}%"
        if fmt == "num2":
            return f"{float(v):.2f}"
        if fmt == "num3":
            return f"{float(v):.3f}"
    except (TypeError, ValueError):
        return str(v)
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


@dataclass
class Chart:
    id: str
    title: str
    svg: str  # inline SVG for the HTML
    png: bytes  # the same figure for the PDF
    caption: str = ""


@dataclass
class Section:
    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # each "not available: <reason>"
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, relative href)


@dataclass
class Report:
    title: str
    quarter: str | None
    run_id: str
    created_at: str
    rule_name: str
    marker: str
    disclosure_note: str
    sections: list[Section]

    def check(self) -> None:
        """The final guard over every table, called by each writer before it writes."""
        for t in self.tables():
            t.check(self.rule_name)

    def tables(self) -> list[Table]:
        return [t for s in self.sections for t in s.tables]

    def charts(self) -> list[Chart]:
        return [c for s in self.sections for c in s.charts]
