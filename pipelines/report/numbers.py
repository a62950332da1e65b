"""One style of numbers for everything a person reads (report HTML/PDF, brief, text):

* rates and shares in percent, one decimal: ``43.1%``; an interval ``41.8% to 44.3%``;
* differences of rates in percentage points, signed: ``+2.1 pp``, ``-10.6 pp`` (a difference
  that rounds to zero is ``0.0 pp``, never ``-0.0``);
* p-values with three decimals, and ``< 0.001`` below that;
* counts with thousands separators: ``5,767``;
* ratios (risk and hazard ratios) with two decimals;
* money in whole dollars: ``$2,909``, ``-$7,755``.

The workbook keeps full-precision numbers and shows them the same way through number formats
(:mod:`pipelines.report.xlsx`).
"""

from __future__ import annotations

import math
from typing import Any

NOT_APPLICABLE = "–"  # a cell with no value (not a hidden one)


def missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _signed(x: float, decimals: int) -> str:
    text = f"{x:+.{decimals}f}"
    return text[1:] if float(text) == 0 else text  # no "-0.0" / "+0.0"


def _plain(x: float, decimals: int) -> str:
    text = f"{x:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def pct(v: float | None) -> str:
    """A proportion on the 0-1 scale as a percentage: 0.4312 -> '43.1%'."""
    return NOT_APPLICABLE if missing(v) else f"{_plain(100 * float(v), 1)}%"


def pct_range(lo: float | None, hi: float | None) -> str:
    """An interval of proportions: '41.8% to 44.3%'."""
    return NOT_APPLICABLE if missing(lo) or missing(hi) else f"{pct(lo)} to {pct(hi)}"


def pp(v: float | None) -> str:
    """A difference of proportions on the 0-1 scale in signed percentage points: -0.106 -> '-10.6 pp'."""
    return NOT_APPLICABLE if missing(v) else f"{_signed(100 * float(v), 1)} pp"


def pp_points(v: float | None) -> str:
    """A difference already in percentage points, signed: -10.6 -> '-10.6 pp'."""
    return NOT_APPLICABLE if missing(v) else f"{_signed(float(v), 1)} pp"


def pp_range(lo: float | None, hi: float | None) -> str:
    """An interval of differences (0-1 scale): '-12.8 to -8.5 pp'."""
    if missing(lo) or missing(hi):
        return NOT_APPLICABLE
    return f"{_signed(100 * float(lo), 1)} to {_signed(100 * float(hi), 1)} pp"


def p_value(v: float | None) -> str:
    """0.0004 -> '< 0.001'; 0.0234 -> '0.023'."""
    if missing(v):
        return NOT_APPLICABLE
    return "< 0.001" if float(v) < 0.001 else f"{float(v):.3f}"


def count(v: Any) -> str:
    return NOT_APPLICABLE if missing(v) else f"{int(v):,}"


def ratio(v: float | None) -> str:
    return NOT_APPLICABLE if missing(v) else f"{float(v):.2f}"


def usd(v: Any) -> str:
    """Dollars, whole, signed only when negative: 2909.05 -> '$2,909'; -7755.2 -> '-$7,755'."""
    if missing(v):
        return NOT_APPLICABLE
    whole = round(float(v))
    return f"-${-whole:,}" if whole < 0 else f"${whole:,}"


_CELL = {"usd": usd, "num1": lambda v: _plain(float(v), 1), "int": count, "pct": pct, "rd": pp, "pp": pp_points, "p": p_value, "ratio": ratio,
         "num2": lambda v: _plain(float(v), 2), "num3": lambda v: _plain(float(v), 3)}


def cell(v: Any, fmt: str | None) -> str:
    """A table cell by its column's format (see the module docstring); text stays text, a float
    without a format shows 3 significant digits."""
    if missing(v):
        return NOT_APPLICABLE
    f = _CELL.get(fmt or "")
    if f is not None:
        try:
            return f(v)
        except (TypeError, ValueError):
            return str(v)
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
