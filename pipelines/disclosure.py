"""Disclosure control: the only door out of the warehouse.

Everything the report and the exports write passes through here. Two rules:

* ``cms`` (default): the CMS cell-size rule. No count of persons or episodes from 1 to 10 is
  shown, and none can be worked out from shown totals, complements or percentages:
  complementary suppression hides further cells until, in every line whose total is known,
  either nothing is hidden or at least two cells are hidden, their sum is not itself 1–10, and
  (checked with linear programming) no hidden cell is pinned to a range of 10 or narrower.
* ``opensafely``: counts of 1–7 are redacted, every count is rounded to the nearest 5, totals
  come from the rounded cells, and no statistic is shown over 5 people or fewer.

Zero is a true zero and is shown. Hidden cells become ``None`` (``suppressed=True`` on rate rows)
and are written as the rule's marker, never as zero. :func:`check_artifact` is the last guard
before any file is written: it refuses rather than write a small count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class DisclosureError(RuntimeError):
    """A writer was about to write a count the rule forbids (a levelcare bug, not user input)."""


@dataclass(frozen=True)
class Rule:
    name: str
    high: int  # counts 1..high are disclosive
    round_to: int  # 1 = exact counts
    complementary: bool  # hide further cells so hidden ones cannot be recovered from totals
    min_stat_n: int  # no mean, rate or interval over this many people or fewer
    marker: str  # how a hidden cell is written in text outputs
    note: str

    def is_small(self, n: Any) -> bool:
        return n is not None and not _isnan(n) and 1 <= n <= self.high

    def stat_allowed(self, n: Any) -> bool:
        return n is not None and not _isnan(n) and n > self.min_stat_n

    def round(self, n: int) -> int:
        # half-up rounding: Python's round() would send 2.5*5 to the even neighbour
        return int(math.floor(n / self.round_to + 0.5) * self.round_to)


CMS = Rule(
    name="cms", high=10, round_to=1, complementary=True, min_stat_n=10, marker="*",
    note="* not shown: a count from 1 to 10, or a cell withheld so that such a count cannot be "
    "worked out from totals or percentages (CMS cell-size rule).",
)
OPENSAFELY = Rule(
    name="opensafely", high=7, round_to=5, complementary=False, min_stat_n=5, marker="[REDACTED]",
    note="[REDACTED]: a count from 1 to 7 (OpenSAFELY rule); all other counts are rounded to the "
    "nearest 5 and totals are sums of rounded cells; no statistic over 5 people or fewer.",
)
RULES = {r.name: r for r in (CMS, OPENSAFELY)}

RATE_STAT_COLS = ("rate", "ci_low", "ci_high")


def get_rule(rule: str | Rule = "cms") -> Rule:
    if isinstance(rule, Rule):
        return rule
    try:
        return RULES[rule]
    except KeyError:
        raise ValueError(f"unknown disclosure rule {rule!r} (choose from {', '.join(RULES)})") from None


def _isnan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _count(x: Any) -> int | None:
    if x is None or _isnan(x):
        return None
    try:
        import pandas as pd

        if x is pd.NA:
            return None
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    return int(x)


# --------------------------------------------------------------------------- the engine
@dataclass
class _Relation:
    """``sum(cells[members]) == total``; total is a cell index, or None when the total is
    published elsewhere (its value is then ``known``)."""

    members: list[int]
    total: int | None = None
    known: int | None = None


def _protect(values: list[int], hidden: list[bool], relations: list[_Relation], rule: Rule) -> list[bool]:
    """Complementary suppression: hide more cells until no hidden cell is recoverable."""
    hidden = list(hidden)
    for _ in range(len(values) + 2):
        _protect_lines(values, hidden, relations, rule)
        weak = _weak_cells(values, hidden, relations, rule)
        if not weak:
            return hidden
        changed = False
        for i in weak:
            for rel in relations:
                if i in rel.members or rel.total == i:
                    changed |= _hide_one_more(values, hidden, rel)
        if not changed:
            break
    # Last resort: hide every total that is a cell, so no relation can be used.
    for rel in relations:
        if rel.total is not None:
            hidden[rel.total] = True
    return hidden


def _usable(rel: _Relation, hidden: list[bool]) -> bool:
    return rel.total is None or not hidden[rel.total]


def _hide_one_more(values: list[int], hidden: list[bool], rel: _Relation) -> bool:
    # The smallest non-zero cell costs least; a hidden zero still adds an unknown.
    shown = [i for i in rel.members if not hidden[i]]
    if not shown:
        if rel.total is not None and not hidden[rel.total]:
            hidden[rel.total] = True
            return True
        return False
    nonzero = [i for i in shown if values[i] > 0]
    pick = min(nonzero or shown, key=lambda i: (values[i], i))
    hidden[pick] = True
    return True


def _protect_lines(values: list[int], hidden: list[bool], relations: list[_Relation], rule: Rule) -> None:
    changed = True
    while changed:
        changed = False
        for rel in relations:
            if not _usable(rel, hidden):
                continue
            unknown = [i for i in rel.members if hidden[i]]
            if not unknown:
                continue
            s = sum(values[i] for i in unknown)
            if len(unknown) == 1 or rule.is_small(s):
                if [i for i in rel.members if not hidden[i]] or rel.total is not None:
                    changed |= _hide_one_more(values, hidden, rel)


def _weak_cells(values: list[int], hidden: list[bool], relations: list[_Relation], rule: Rule) -> list[int]:
    """Hidden cells whose feasible range, given every usable relation, is ``rule.high`` wide or less."""
    unknowns = [i for i, h in enumerate(hidden) if h]
    if not unknowns:
        return []
    rows, rhs = _equations(values, hidden, relations, unknowns)
    if not rows:
        return []  # nothing ties hidden cells to anything shown
    ranges = cell_ranges(rows, rhs, len(unknowns))
    return [unknowns[k] for k, (lo, hi) in enumerate(ranges) if hi - lo <= rule.high]


def _equations(values, hidden, relations, unknowns):
    pos = {c: k for k, c in enumerate(unknowns)}
    rows, rhs = [], []
    for rel in relations:
        if not _usable(rel, hidden):
            continue
        coef = [0.0] * len(unknowns)
        known_total = rel.known if rel.total is None else values[rel.total]
        b = float(known_total)
        for i in rel.members:
            if hidden[i]:
                coef[pos[i]] = 1.0
            else:
                b -= values[i]
        if any(coef):
            rows.append(coef)
            rhs.append(b)
    return rows, rhs


def cell_ranges(a_eq: list[list[float]], b_eq: list[float], n: int) -> list[tuple[float, float]]:
    """Smallest and largest value of each unknown (>= 0) allowed by ``a_eq @ x == b_eq``."""
    import numpy as np
    from scipy.optimize import linprog

    a = np.asarray(a_eq, dtype=float)
    b = np.asarray(b_eq, dtype=float)
    out = []
    for k in range(n):
        c = np.zeros(n)
        c[k] = 1.0
        lo = linprog(c, A_eq=a, b_eq=b, bounds=[(0, None)] * n, method="highs")
        hi = linprog(-c, A_eq=a, b_eq=b, bounds=[(0, None)] * n, method="highs")
        low = lo.fun if lo.status == 0 else 0.0
        high = -hi.fun if hi.status == 0 else math.inf  # unbounded: nothing pins it
        out.append((low, high))
    return out


# --------------------------------------------------------------------------- rates tables
def _dims(group_by: Any) -> list[str]:
    return [d.strip() for d in str(group_by or "").replace("+", ",").split(",") if d.strip()]


def _parts(group: Any, n: int) -> list[str]:
    parts = str(group).split("|")
    return parts if len(parts) == n else [str(group)] * n


def apply_rates(rows: Iterable[Mapping[str, Any]], rule: str | Rule = "cms") -> list[dict[str, Any]]:
    """Rates rows (rates.csv columns) made safe to publish.

    Within one family (definition, version, group_by) the groups split one population, so
    totals along each grouping dimension are treated as known; a multi-dimension group_by
    (``level_group,discharge_quarter`` with group ``iop|2026Q3``) gives one total per line.
    """
    r = get_rule(rule)
    out = [dict(row) for row in rows]
    for row in out:
        row["numerator"] = _count(row.get("numerator"))
        row["denominator"] = _count(row.get("denominator"))
        row["suppressed"] = bool(row.get("suppressed"))
    if r.round_to > 1:
        return [_round_rate_row(row, r) for row in out]

    families: dict[tuple, list[int]] = {}
    for i, row in enumerate(out):
        key = (row.get("definition_id"), row.get("definition_version"), row.get("group_by"))
        families.setdefault(key, []).append(i)
    for (_, _, group_by), idx in families.items():
        _suppress_rate_family([out[i] for i in idx], _dims(group_by), r)
    return out


def _suppress_rate_family(rows: list[dict[str, Any]], dims: list[str], r: Rule) -> None:
    n = len(rows)
    dens = [row["denominator"] or 0 for row in rows]
    nums = [row["numerator"] or 0 for row in rows]
    upstream = [row["suppressed"] or row["denominator"] is None for row in rows]
    den_hidden = [u or r.is_small(d) for u, d in zip(upstream, dens)]
    num_hidden = [
        dh or r.is_small(k) or r.is_small(d - k) or not r.stat_allowed(d)
        for dh, k, d in zip(den_hidden, nums, dens)
    ]
    relations_den = _lines(rows, dims, dens)
    relations_num = _lines(rows, dims, nums)
    den_hidden = _protect(dens, den_hidden, relations_den, r)
    # A rate beside a shown numerator gives the denominator back: hidden denominator, hidden row.
    num_hidden = [a or b for a, b in zip(num_hidden, den_hidden)]
    num_hidden = _protect(nums, num_hidden, relations_num, r)
    for k in range(n):
        row = rows[k]
        if den_hidden[k]:
            row["denominator"] = None
        if num_hidden[k]:
            row["numerator"] = None
            for col in RATE_STAT_COLS:
                row[col] = None
            row["suppressed"] = True


def _lines(rows: list[dict[str, Any]], dims: list[str], values: list[int]) -> list[_Relation]:
    nd = max(len(dims), 1)
    keys = [_parts(row.get("group"), nd) for row in rows]
    rels = []
    for d in range(nd):
        lines: dict[tuple, list[int]] = {}
        for i, k in enumerate(keys):
            lines.setdefault(tuple(k[:d] + k[d + 1:]), []).append(i)
        for members in lines.values():
            rels.append(_Relation(members=members, known=sum(values[i] for i in members)))
    return rels


def _round_rate_row(row: dict[str, Any], r: Rule) -> dict[str, Any]:
    num, den = row["numerator"], row["denominator"]
    if row["suppressed"] or den is None or num is None or not r.stat_allowed(den) or r.is_small(den):
        row.update(numerator=None, denominator=None, suppressed=True, **dict.fromkeys(RATE_STAT_COLS))
        return row
    den_r = r.round(den)
    if r.is_small(num) or r.is_small(den - num):
        row.update(numerator=None, denominator=den_r, suppressed=True, **dict.fromkeys(RATE_STAT_COLS))
        return row
    num_r = r.round(num)
    # The exact rate would give the exact counts back: recompute from the rounded counts.
    lo, hi = wilson(num_r, den_r)
    row.update(numerator=num_r, denominator=den_r, rate=num_r / den_r, ci_low=lo, ci_high=hi,
               ci_method="wilson (rounded counts)")
    return row


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval (Wilson 1927) for k successes out of n."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# --------------------------------------------------------------------------- cross-tables
def suppress_table(
    df: pd.DataFrame,
    count_cols: Sequence[str],
    groups: Sequence[str] | str | None = None,
    *,
    margins: bool = True,
    total_col: str = "total",
    total_label: str = "total",
    rule: str | Rule = "cms",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Make a cross-table of counts safe to publish.

    ``df`` has one row per category and one column per count (``count_cols``); ``groups``
    columns split it into independent sub-tables (Table 1: one per covariate). With
    ``margins`` a ``total_col`` column (row sums) and, per sub-table, a total row (column sums,
    labelled ``total_label`` in the last group/label column) are added and protected with the
    cells. Returns ``(shown, hidden)``: hidden cells are ``None`` in ``shown`` and ``True`` in
    ``hidden`` (a frame of the count columns).
    """
    import pandas as pd

    r = get_rule(rule)
    groups = [groups] if isinstance(groups, str) else list(groups or [])
    count_cols = list(count_cols)
    label_cols = [c for c in df.columns if c not in count_cols]
    pieces = []
    for _, sub in (df.groupby(groups, sort=False, dropna=False) if groups else [(None, df)]):
        sub = sub.reset_index(drop=True)
        mat = [[_count(v) or 0 for v in sub[c]] for c in count_cols]  # column-major
        cols = list(count_cols)
        nrow = len(sub)
        if margins:
            mat.append([sum(mat[j][i] for j in range(len(count_cols))) for i in range(nrow)])
            cols.append(total_col)
            for col in mat:
                col.append(sum(col))
            labels = sub[label_cols].iloc[[0]].copy()
            free = [c for c in label_cols if c not in groups]
            if free:
                labels[free[-1]] = total_label
            sub = pd.concat([sub[label_cols], labels], ignore_index=True)
        else:
            sub = sub[label_cols].copy()
        shown, hidden = _protect_matrix(mat, margins, r)
        for j, c in enumerate(cols):
            sub[c] = pd.Series(shown[j], dtype="object")
            sub[f"__hidden__{c}"] = hidden[j]
        pieces.append(sub)
    out = pd.concat(pieces, ignore_index=True) if pieces else df.copy()
    hidden_cols = [c for c in out.columns if c.startswith("__hidden__")]
    mask = out[hidden_cols].rename(columns=lambda c: c[len("__hidden__"):]).astype(bool)
    return out.drop(columns=hidden_cols), mask


def _protect_matrix(mat: list[list[int]], margins: bool, r: Rule):
    ncol, nrow = len(mat), len(mat[0]) if mat else 0
    if r.round_to > 1:
        inner_c = ncol - 1 if margins else ncol
        inner_r = nrow - 1 if margins else nrow
        shown = [[None if r.is_small(v) else r.round(v) for v in col] for col in mat]
        if margins:  # totals from the rounded (redacted = 0) cells
            for j in range(inner_c):
                shown[j][inner_r] = sum(v or 0 for v in shown[j][:inner_r])
            for i in range(nrow):
                shown[inner_c][i] = sum(shown[j][i] or 0 for j in range(inner_c))
        hidden = [[v is None for v in col] for col in shown]
        return shown, hidden
    flat = [v for col in mat for v in col]
    idx = lambda j, i: j * nrow + i  # noqa: E731
    hidden = [r.is_small(v) for v in flat]
    relations = []
    if margins:
        for i in range(nrow):  # each row: cells sum to the total column
            relations.append(_Relation(members=[idx(j, i) for j in range(ncol - 1)], total=idx(ncol - 1, i)))
        for j in range(ncol):  # each column: cells sum to the total row
            relations.append(_Relation(members=[idx(j, i) for i in range(nrow - 1)], total=idx(j, nrow - 1)))
    if r.complementary and relations:
        hidden = _protect(flat, hidden, relations, r)
    shown = [[None if hidden[idx(j, i)] else mat[j][i] for i in range(nrow)] for j in range(ncol)]
    return shown, [[hidden[idx(j, i)] for i in range(nrow)] for j in range(ncol)]


def statistic_allowed(n: Any, rule: str | Rule = "cms") -> bool:
    """May a mean, SD, rate or interval over ``n`` people be shown?"""
    return get_rule(rule).stat_allowed(_count(n))


def shown_count(n: Any, rule: str | Rule = "cms") -> int | None:
    """One stand-alone count (no published total to protect against): None when small, rounded
    under OpenSAFELY."""
    r = get_rule(rule)
    n = _count(n)
    if n is None or r.is_small(n):
        return None
    return r.round(n)


# --------------------------------------------------------------------------- final guard
COUNT_NAMES = frozenset({"n", "count", "numerator", "denominator", "episodes", "persons", "at_risk"})
COUNT_PREFIXES = ("n_", "count_", "at_risk_", "rows_", "episodes_", "persons_")
COUNT_SUFFIXES = ("_n", "_count", "_episodes", "_persons", "_at_risk", "_numerator", "_denominator")


def is_count_column(name: str) -> bool:
    name = str(name).lower()
    return name in COUNT_NAMES or name.startswith(COUNT_PREFIXES) or name.endswith(COUNT_SUFFIXES)


def _records(table: Any) -> list[Mapping[str, Any]]:
    if hasattr(table, "to_dict") and hasattr(table, "columns"):
        return table.to_dict(orient="records")
    if isinstance(table, Mapping):
        return [table]
    return list(table)


def check_artifact(
    table: Any, count_cols: Sequence[str] | None = None, *, rule: str | Rule = "cms", name: str = "table"
) -> None:
    """Refuse (raise :class:`DisclosureError`) if a person count the rule forbids would be written.

    ``table``: a DataFrame, a list of row dicts, or one dict of values. ``count_cols`` names
    the person/episode counts; by default columns are recognised by name (``n``, ``n_*``,
    ``numerator``, ``denominator``, ``*_count``, ``at_risk*``, ``rows_*``). Text cells holding
    a number are checked too. A shown numerator beside its shown denominator is checked for a
    small complement.
    """
    r = get_rule(rule)
    for rownum, rec in enumerate(_records(table), start=1):
        cols = count_cols if count_cols is not None else [c for c in rec if is_count_column(c)]
        for c in cols:
            v = _as_number(rec.get(c))
            if v is None:
                continue
            if r.is_small(v):
                raise DisclosureError(f"{name}: row {rownum}, column {c!r} holds a count the "
                                      f"{r.name} rule forbids; refusing to write")
            if r.round_to > 1 and v % r.round_to:
                raise DisclosureError(f"{name}: row {rownum}, column {c!r} is not rounded to "
                                      f"{r.round_to}; refusing to write")
        num, den = _as_number(rec.get("numerator")), _as_number(rec.get("denominator"))
        if num is not None and den is not None and r.is_small(den - num):
            raise DisclosureError(f"{name}: row {rownum}: denominator - numerator is a count the "
                                  f"{r.name} rule forbids; refusing to write")


def _as_number(v: Any) -> float | None:
    if v is None or isinstance(v, bool) or _isnan(v):
        return None
    if isinstance(v, (int, float)):
        return v
    if hasattr(v, "item"):  # numpy scalar
        return _as_number(v.item())
    if isinstance(v, str):
        s = v.strip().replace(",", "")
        try:
            return float(s)
        except ValueError:
            return None
    return None


def display(value: Any, rule: str | Rule = "cms") -> Any:
    """A cell for a text output: hidden cells (None) become the rule's marker, never zero."""
    if value is None or _isnan(value):
        return get_rule(rule).marker
    return value
