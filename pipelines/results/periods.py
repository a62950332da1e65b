"""Reporting periods: whole quarters, inclusive (``2025Q3..2026Q2``), and the trend window.

A *period* is what the headline numbers count: a discharge is in it when its discharge
quarter is. TEDS-D records carry a discharge year and no date: a TEDS-D year is in a period
only when all four of its quarters are (no number counts a discharge outside the period).
The *trend window* is the :data:`TREND_QUARTERS` quarters ending at the period's last quarter
(or the whole period, when it is longer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines.errors import UserError

TREND_QUARTERS = 8
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")


def parse_quarter(text: str, option: str = "--quarter") -> tuple[int, int]:
    m = _QUARTER.match(str(text or "").strip())
    if not m:
        raise UserError(f"{option}: {text!r} is not a quarter like 2026Q3")
    return int(m.group(1)), int(m.group(2))


def quarter_index(q: str) -> int:
    year, quarter = parse_quarter(q)
    return year * 4 + quarter - 1


def quarter_of_index(k: int) -> str:
    return f"{k // 4}Q{k % 4 + 1}"


def quarters_between(first: str, last: str) -> list[str]:
    """Every quarter from ``first`` to ``last``, inclusive."""
    return [quarter_of_index(k) for k in range(quarter_index(first), quarter_index(last) + 1)]


def last_quarters(q: str, n: int = TREND_QUARTERS) -> list[str]:
    """The ``n`` quarters ending at ``q``, oldest first."""
    k = quarter_index(q)
    return [quarter_of_index(i) for i in range(k - n + 1, k + 1)]


@dataclass(frozen=True)
class Period:
    """Quarters ``first``..``last`` inclusive; both None = every quarter with data."""

    first: str | None = None
    last: str | None = None

    @property
    def asked(self) -> bool:
        return self.first is not None

    def text(self) -> str | None:
        return None if self.first is None else f"{self.first}..{self.last}"

    def quarters(self) -> list[str]:
        return [] if self.first is None else quarters_between(self.first, self.last)

    def contains_year(self, year: int) -> bool:
        """A TEDS-D discharge year counts only when the period holds all its quarters."""
        if self.first is None:
            return True
        return quarter_index(self.first) <= year * 4 and year * 4 + 3 <= quarter_index(self.last)


def parse_period(period: str | None = None, quarter: str | None = None) -> Period:
    """``--period FROM..TO`` or ``--quarter Q`` (= ``Q..Q``); neither: all data."""
    if period and quarter:
        raise UserError("give --period or --quarter, not both (--quarter Q means --period Q..Q)")
    if quarter:
        parse_quarter(quarter)
        q = quarter.strip()
        return Period(q, q)
    if not period:
        return Period()
    parts = str(period).split("..")
    if len(parts) != 2:
        raise UserError(f"--period: {period!r} is not a range of quarters like 2025Q3..2026Q2")
    first, last = (p.strip() for p in parts)
    parse_quarter(first, "--period")
    parse_quarter(last, "--period")
    if quarter_index(first) > quarter_index(last):
        raise UserError(f"--period: {period!r} ends before it starts")
    return Period(first, last)


def trend_window(period_quarters: list[str], last_data_quarter: str | None) -> list[str]:
    """The quarters a trend shows: the 8 ending at the period's last quarter (or at the last
    quarter with data when the period is all data), or the whole period when it is longer."""
    end = period_quarters[-1] if period_quarters else last_data_quarter
    if end is None:
        return []
    window = last_quarters(end)
    return period_quarters if len(period_quarters) > len(window) else window
