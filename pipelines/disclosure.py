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
and are written as the rule's marker, never as zero. Each hidden cell has a reason: ``small``
(the cell itself may not be shown) or ``complementary`` (withheld only so that another hidden
cell cannot be worked out): ``suppression`` on rate rows, :func:`suppress_table_reasons` for
tables. :func:`check_artifact` is the last guard
before any file is written: it refuses rather than write a small count.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
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
    complementary_marker: str = ""  # a cell withheld only to protect another ("" = the marker)

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
    "worked out from totals or percentages (CMS cell-size rule).", complementary_marker="†",
)
OPENSAFELY = Rule(
    name="opensafely", high=7, round_to=5, complementary=False, min_stat_n=5, marker="[REDACTED]",
    note="[REDACTED]: a count from 1 to 7 (OpenSAFELY rule); all other counts are rounded to the "
    "nearest 5 and totals are sums of rounded cells; no statistic over 5 people or fewer.",
)
RULES = {r.name: r for r in (CMS, OPENSAFELY)}

RATE_STAT_COLS = ("rate", "ci_low", "ci_high")

# Why a cell is hidden (the ``suppression`` of a rate row, the reasons of suppress_table_reasons):
SMALL = "small"  # a count the rule forbids, a statistic over too few people, or a small complement
COMPLEMENTARY = "complementary"  # withheld only so that another hidden cell cannot be worked out


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
    # Relations sharing no cell are protected by the line rules alone (a hidden cell ranges over
    # [0, hidden sum > high]); only overlapping ones need the linear-programming audit.
    seen: set[int] = set()
    overlap = False
    for rel in relations:
        cells = set(rel.members) | ({rel.total} if rel.total is not None else set())
        overlap |= bool(cells & seen)
        seen |= cells
    for _ in range(len(values) + 2):
        _protect_lines(values, hidden, relations, rule)
        weak = _weak_cells(values, hidden, relations, rule) if overlap else []
        if not weak:
            return hidden
        changed = False
        for i in weak:
            for rel in relations:
                if i in rel.members or rel.total == i:
                    changed |= _hide_one_more(values, hidden, rel)
        if not changed:
            break
    # Last resort: hide every total that is a cell, so no relation can be used -- and then
    # the line rules once more, or a total hidden here could be worked out from its members.
    for rel in relations:
        if rel.total is not None:
            hidden[rel.total] = True
    _protect_lines(values, hidden, relations, rule)
    return hidden


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
    """Every relation has no hidden cell or at least two; with its total shown, the hidden
    members' sum (which the total gives away) is not itself 1..high."""
    changed = True
    while changed:
        changed = False
        for rel in relations:
            cells = rel.members + ([rel.total] if rel.total is not None else [])
            n_hidden = sum(hidden[i] for i in cells)
            if not n_hidden:
                continue
            total_shown = rel.total is None or not hidden[rel.total]
            s = sum(values[i] for i in rel.members if hidden[i])
            if n_hidden == 1 or (total_shown and rule.is_small(s)):
                changed |= _hide_one_more(values, hidden, rel)


def _weak_cells(values: list[int], hidden: list[bool], relations: list[_Relation], rule: Rule) -> list[int]:
    """Hidden non-zero cells whose feasible range, given every relation and every shown cell,
    is ``rule.high`` wide or less. (A hidden zero may be worked out: zero may be shown.)"""
    unknowns = [i for i, h in enumerate(hidden) if h]
    if not unknowns:
        return []
    rows, rhs = _equations(values, hidden, relations, unknowns)
    if not rows:
        return []  # nothing ties hidden cells to anything shown
    ranges = cell_ranges(rows, rhs, len(unknowns))
    return [unknowns[k] for k, (lo, hi) in enumerate(ranges) if values[unknowns[k]] and hi - lo <= rule.high]


def _equations(values, hidden, relations, unknowns):
    """``sum(members) - total = 0`` per relation, over the hidden cells, as ``A x = b``."""
    pos = {c: k for k, c in enumerate(unknowns)}
    rows, rhs = [], []
    for rel in relations:
        coef = [0.0] * len(unknowns)
        b = float(rel.known) if rel.total is None else 0.0
        terms = [(i, 1.0) for i in rel.members] + ([(rel.total, -1.0)] if rel.total is not None else [])
        for i, sign in terms:
            if hidden[i]:
                coef[pos[i]] += sign
            else:
                b -= sign * values[i]
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
# A level_of_care row adds up into its level_group row.
LEVEL_GROUP = {"residential_short": "residential", "residential_long": "residential",
               "residential_hospital": "residential"}


def apply_rates(
    rows: Iterable[Mapping[str, Any]],
    rule: str | Rule = "cms",
    *,
    period_quarters: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Rates rows (rates.csv columns) made safe to publish.

    All rows of one definition (and version) are protected together, because they are tied
    by totals: every grouping (``group_by``) splits the same population, whose total is the
    ``all`` row (or, without one, is assumed published); ``level_of_care`` rows add up to
    their ``level_group`` row; a multi-dimension ``group_by`` (``level_group,quarter`` with
    group ``iop|2026Q3``) gives one total per line.

    ``period_quarters``: the quarters of the reporting period, when the ``all`` row and the
    other single-dimension rows cover that period while the quarter rows (``quarter`` and
    ``level_group,quarter``) cover a longer trend window. The quarter rows inside the period
    then add up to the ``all`` row, a group's ``g|quarter`` rows inside the period to the
    group's own row, and one quarter's ``g|quarter`` rows to that quarter's row (each only
    where the sums agree; otherwise the sum is taken as published, as is the trend's total).
    A sum that is itself 1..high, or of a single row, is not taken as published: the rule
    keeps such a total out of every output. Without ``period_quarters`` nothing changes.

    Every row gets ``suppression``: None when its rate is shown, ``"small"`` when the row
    itself may not be shown (a small numerator, denominator or complement, a denominator too
    small for a statistic, or the row arrived hidden), ``"complementary"`` when it is hidden
    only so that another hidden row cannot be worked out from totals. A row arriving with a
    reason keeps it (rows disclosed once may be disclosed again).
    """
    r = get_rule(rule)
    out = [dict(row) for row in rows]
    for row in out:
        row["numerator"] = _count(row.get("numerator"))
        row["denominator"] = _count(row.get("denominator"))
        row["suppression"] = _reason(row.get("suppression"))
        # a row arriving with a reason was hidden before: it stays hidden
        row["suppressed"] = bool(row.get("suppressed")) or row["suppression"] is not None
    if r.round_to > 1:
        return [_round_rate_row(row, r) for row in out]

    if isinstance(period_quarters, str):
        period_quarters = [period_quarters]
    period = None if period_quarters is None else frozenset(str(q) for q in period_quarters)
    definitions: dict[tuple, list[dict[str, Any]]] = {}
    for row in out:
        definitions.setdefault((row.get("definition_id"), row.get("definition_version")), []).append(row)
    for family in definitions.values():
        _suppress_definition(family, r, period_quarters=period)
    return out


def _reason(x: Any) -> str | None:
    """An incoming ``suppression`` value: None, NaN, pandas NA and "" mean none."""
    try:
        import pandas as pd

        if x is pd.NA:
            return None
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    if x is None or _isnan(x) or x == "":
        return None
    return str(x)


def _suppress_definition(rows: list[dict[str, Any]], r: Rule, period_quarters: Collection[str] | None = None
                         ) -> None:
    dens = [row["denominator"] or 0 for row in rows]
    nums = [row["numerator"] or 0 for row in rows]
    # rows may arrive disclosed already (analyze applies the rule): keep what was hidden
    den_hidden = [row["denominator"] is None or r.is_small(d) for row, d in zip(rows, dens)]
    num_hidden = [
        dh or row["suppressed"] or row["numerator"] is None or r.is_small(k) or r.is_small(d - k)
        or not r.stat_allowed(d)
        for row, dh, k, d in zip(rows, den_hidden, nums, dens)
    ]
    small = list(num_hidden)  # hidden for the row's own numbers; the rest only protect others
    den_hidden = _protect(dens, den_hidden, _rate_relations(rows, dens, period_quarters, r), r)
    # A rate beside a shown numerator gives the denominator back: hidden denominator, hidden row.
    num_hidden = [a or b for a, b in zip(num_hidden, den_hidden)]
    num_hidden = _protect(nums, num_hidden, _rate_relations(rows, nums, period_quarters, r), r)
    for k, row in enumerate(rows):
        if den_hidden[k]:
            row["denominator"] = None
        if num_hidden[k]:
            row["numerator"] = None
            for col in RATE_STAT_COLS:
                row[col] = None
            row["suppressed"] = True
            if row["suppression"] is None:
                row["suppression"] = SMALL if small[k] else COMPLEMENTARY


QUARTER_DIMS = ("quarter", "discharge_quarter")


def _rate_relations(rows: list[dict[str, Any]], values: list[int], period_quarters: Collection[str] | None = None,
                    rule: Rule = CMS) -> list[_Relation]:
    by_family: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_family.setdefault(str(row.get("group_by") or "all"), []).append(i)
    overall = by_family.get("all", [])
    total_cell = overall[0] if len(overall) == 1 else None
    period = period_quarters is not None
    rels: list[_Relation] = []
    for group_by, members in by_family.items():
        if group_by == "all":
            continue
        dims = _dims(group_by)
        if len(dims) <= 1:
            if period and dims and dims[0] in QUARTER_DIMS:
                # quarters over a trend window: the period's quarters add up to the all row;
                # the window's total is taken as published (it may be, elsewhere) unless it is
                # the all row's too (a window no longer than the period)
                inside = [i for i in members if str(rows[i].get("group")) in period_quarters]
                rels += _period_total(inside, total_cell, values, rule)
                if len(inside) < len(members):
                    rels += _period_total(members, total_cell, values, rule)
            else:
                rels.append(_total(members, total_cell, values))
            continue
        keys = {i: _parts(rows[i].get("group"), len(dims)) for i in members}
        for d in range(len(dims)):
            lines: dict[tuple, list[int]] = {}
            for i in members:
                lines.setdefault(tuple(keys[i][:d] + keys[i][d + 1:]), []).append(i)
            if not period:
                rels += [_Relation(members=m, known=sum(values[i] for i in m)) for m in lines.values()]
                continue
            # Beside a trend, a line's total is a row of the other dimensions' family when it
            # has that row's value (the level_group,quarter cells of one quarter add up to the
            # quarter's row): tied to that row, which may be hidden, not taken as published.
            parents = _rows_by_key(rows, by_family, dims[:d] + dims[d + 1:])
            rels += [rel for key, m in lines.items() for rel in _period_total(m, parents.get(key), values, rule)]
        if period:
            rels += _period_relations(rows, values, by_family, members, dims, keys, period_quarters, rule)
    # level_of_care rows add up to their level_group row
    groups = {rows[i].get("group"): i for i in by_family.get("level_group", [])}
    children: dict[int, list[int]] = {}
    for i in by_family.get("level_of_care", []):
        loc = rows[i].get("group")
        parent = groups.get(LEVEL_GROUP.get(loc, loc))
        if parent is not None:
            children.setdefault(parent, []).append(i)
    for parent, members in children.items():
        if sum(values[i] for i in members) == values[parent]:
            rels.append(_Relation(members=members, total=parent))
    return rels


def _rows_by_key(rows, by_family, dims: list[str]) -> dict[tuple, int]:
    """The rows of the family grouped by exactly ``dims``, by their group split into parts."""
    family = next((f for f in by_family if f != "all" and _dims(f) == dims), None) if dims else None
    out: dict[tuple, int] = {}
    for i in by_family.get(family, []) if family is not None else []:
        out.setdefault(tuple(_parts(rows[i].get("group"), len(dims))), i)
    return out


def _period_relations(rows, values, by_family, members, dims, keys, period_quarters, rule) -> list[_Relation]:
    """A ``level_group,quarter`` family over a trend window: for each level group g, the rows
    ``g|q`` with q in the period add up to g's own (period) row. The same for any dimensions
    beside one quarter dimension (``site,quarter`` to the ``site`` rows)."""
    qdims = [d for d, name in enumerate(dims) if name in QUARTER_DIMS]
    if len(qdims) != 1:
        return []
    qd = qdims[0]
    parents = _rows_by_key(rows, by_family, dims[:qd] + dims[qd + 1:])
    inside: dict[tuple, list[int]] = {}
    for i in members:
        if keys[i][qd] in period_quarters:
            inside.setdefault(tuple(keys[i][:qd] + keys[i][qd + 1:]), []).append(i)
    return [rel for key, m in inside.items() for rel in _period_total(m, parents.get(key), values, rule)]


def _period_total(members: list[int], total_cell: int | None, values: list[int], rule: Rule) -> list[_Relation]:
    """``members`` add up to ``total_cell`` when their sum is its value (every episode has a
    quarter); otherwise their sum is taken as published (:func:`_assumed`)."""
    if not members:
        return []
    rel = _total(members, total_cell, values)
    return [rel] if rel.total is not None else _assumed(members, values, rule)


def _assumed(members: list[int], values: list[int], rule: Rule) -> list[_Relation]:
    """A total that is no row's, assumed published elsewhere (conservative) -- except where it
    cannot be: a count the rule forbids is published nowhere, and one row's "total" is the row
    itself (assuming it published would leave that row impossible to hide, and the engine's last
    resort would then hide every total row)."""
    s = sum(values[i] for i in members)
    if len(members) < 2 or rule.is_small(s):
        return []
    return [_Relation(members=members, known=s)]


def _total(members: list[int], total_cell: int | None, values: list[int]) -> _Relation:
    s = sum(values[i] for i in members)
    if total_cell is not None and values[total_cell] == s:
        return _Relation(members=members, total=total_cell)
    # No matching overall row: assume the family's total is published somewhere.
    return _Relation(members=members, known=s)


def _dims(group_by: Any) -> list[str]:
    return [d.strip() for d in str(group_by or "").replace("+", ",").split(",") if d.strip()]


def _parts(group: Any, n: int) -> list[str]:
    parts = str(group).split("|")
    return parts if len(parts) == n else [str(group)] * n


def _round_rate_row(row: dict[str, Any], r: Rule) -> dict[str, Any]:
    """OpenSAFELY: no complementary suppression, so every redacted row is ``small``."""
    out = _round_rate_counts(row, r)
    if out["suppressed"] and out["suppression"] is None:
        out["suppression"] = SMALL
    return out


def _round_rate_counts(row: dict[str, Any], r: Rule) -> dict[str, Any]:
    num, den = row["numerator"], row["denominator"]
    if row["suppressed"] or den is None or num is None or not r.stat_allowed(den) or r.is_small(den):
        row.update(numerator=None, denominator=None, suppressed=True, **dict.fromkeys(RATE_STAT_COLS))
        return row
    den_r = r.round(den)
    if r.is_small(num) or r.is_small(den - num):
        row.update(numerator=None, denominator=den_r, suppressed=True, **dict.fromkeys(RATE_STAT_COLS))
        return row
    num_r = r.round(num)
    if r.is_small(den_r - num_r):  # rounding can bring the shown complement into the small range
        row.update(numerator=None, denominator=den_r, suppressed=True, **dict.fromkeys(RATE_STAT_COLS))
        return row
    # The exact rate would give the exact counts back: recompute from the rounded counts.
    from pipelines.stats.proportions import wilson_interval

    lo, hi = wilson_interval(num_r, den_r)
    row.update(numerator=num_r, denominator=den_r, rate=num_r / den_r, ci_low=float(lo), ci_high=float(hi),
               ci_method="wilson (rounded counts)")
    return row


# --------------------------------------------------------------------------- cross-tables
def suppress_table(
    df: pd.DataFrame,
    count_cols: Sequence[str],
    groups: Sequence[str] | str | None = None,
    *,
    margins: bool | str = True,
    total_col: str = "total",
    total_label: str = "total",
    rule: str | Rule = "cms",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Make a cross-table of counts safe to publish.

    ``df`` has one row per category and one column per count (``count_cols``); ``groups``
    columns split it into independent sub-tables (Table 1: one per covariate). With
    ``margins`` (True or "both") a ``total_col`` column (row sums) and, per sub-table, a total
    row (column sums, labelled ``total_label`` in the last label column) are added and protected
    with the cells; ``"rows"`` adds only the total column, ``"cols"`` only the total row. Returns ``(shown, hidden)``: hidden cells are ``None`` in ``shown`` and ``True`` in
    ``hidden`` (a frame of the count columns). :func:`suppress_table_reasons` gives the reason
    for each hidden cell instead.
    """
    shown, reasons = suppress_table_reasons(df, count_cols, groups, margins=margins, total_col=total_col,
                                            total_label=total_label, rule=rule)
    return shown, reasons.notna().astype(bool)


def suppress_table_reasons(
    df: pd.DataFrame,
    count_cols: Sequence[str],
    groups: Sequence[str] | str | None = None,
    *,
    margins: bool | str = True,
    total_col: str = "total",
    total_label: str = "total",
    rule: str | Rule = "cms",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`suppress_table`, with the reason each cell is hidden.

    Returns ``(shown, reasons)``: ``shown`` as :func:`suppress_table` gives it; ``reasons`` a
    frame of the count columns (and the total column) holding, per cell, None (shown),
    ``"small"`` (the cell's own count is one the rule forbids) or ``"complementary"`` (not
    small itself, withheld so that a small cell cannot be worked out from the totals).
    """
    import pandas as pd

    r = get_rule(rule)
    groups = [groups] if isinstance(groups, str) else list(groups or [])
    count_cols = list(count_cols)
    label_cols = [c for c in df.columns if c not in count_cols]
    margins = {True: "both", False: None}.get(margins, margins)
    if margins not in ("both", "rows", "cols", None):
        raise ValueError(f"margins must be True, False, 'both', 'rows' or 'cols', not {margins!r}")
    add_col, add_row = margins in ("both", "rows"), margins in ("both", "cols")
    pieces = []
    for _, sub in (df.groupby(groups, sort=False, dropna=False) if groups else [(None, df)]):
        sub = sub.reset_index(drop=True)
        mat = [[_count(v) or 0 for v in sub[c]] for c in count_cols]  # column-major
        cols = list(count_cols)
        nrow = len(sub)
        if add_col:
            mat.append([sum(mat[j][i] for j in range(len(count_cols))) for i in range(nrow)])
            cols.append(total_col)
        if add_row:
            for col in mat:
                col.append(sum(col))
            labels = sub[label_cols].iloc[[0]].copy()
            free = [c for c in label_cols if c not in groups]
            if free:
                labels[free[-1]] = total_label
            sub = pd.concat([sub[label_cols], labels], ignore_index=True)
        else:
            sub = sub[label_cols].copy()
        shown, hidden = _protect_matrix(mat, add_col, add_row, r)
        for j, c in enumerate(cols):
            sub[c] = pd.Series(shown[j], dtype="object")
            reasons = [_cell_reason(v, h, r) for v, h in zip(mat[j], hidden[j])]
            sub[f"{_REASON}{c}"] = pd.Series(reasons, dtype="object")
        pieces.append(sub)
    out = pd.concat(pieces, ignore_index=True) if pieces else df.copy()
    reason_cols = [c for c in out.columns if c.startswith(_REASON)]
    reasons = out[reason_cols].rename(columns=lambda c: c[len(_REASON):]).astype(object)
    reasons = reasons.where(reasons.notna(), None)
    return out.drop(columns=reason_cols), reasons


_REASON = "__reason__"


def _cell_reason(value: int, hidden: bool, r: Rule) -> str | None:
    if not hidden:
        return None
    return SMALL if r.is_small(value) else COMPLEMENTARY


def _protect_matrix(mat: list[list[int]], add_col: bool, add_row: bool, r: Rule):
    ncol, nrow = len(mat), len(mat[0]) if mat else 0
    inner_c = ncol - 1 if add_col else ncol
    inner_r = nrow - 1 if add_row else nrow
    if r.round_to > 1:
        shown = [[None if r.is_small(v) else r.round(v) for v in col] for col in mat]
        # totals from the rounded (redacted = 0) cells
        if add_row:
            for j in range(inner_c):
                shown[j][inner_r] = sum(v or 0 for v in shown[j][:inner_r])
        if add_col:
            for i in range(nrow):
                shown[inner_c][i] = sum(shown[j][i] or 0 for j in range(inner_c))
        hidden = [[v is None for v in col] for col in shown]
        return shown, hidden
    flat = [v for col in mat for v in col]

    def idx(j: int, i: int) -> int:  # column-major flat index
        return j * nrow + i

    hidden = [r.is_small(v) for v in flat]
    relations = []
    if add_col:
        for i in range(nrow):  # each row: cells sum to the total column
            relations.append(_Relation(members=[idx(j, i) for j in range(inner_c)], total=idx(inner_c, i)))
    if add_row:
        for j in range(ncol):  # each column: cells sum to the total row
            relations.append(_Relation(members=[idx(j, i) for i in range(inner_r)], total=idx(j, inner_r)))
    if r.complementary and relations:
        hidden = _protect(flat, hidden, relations, r)
    shown = [[None if hidden[idx(j, i)] else mat[j][i] for i in range(nrow)] for j in range(ncol)]
    return shown, [[hidden[idx(j, i)] for i in range(nrow)] for j in range(ncol)]


def protect_cells(
    values: Sequence[int], relations: Sequence[tuple[Sequence[int], int | None, int | None]],
    rule: str | Rule = "cms",
) -> tuple[list[int | None], list[str | None]]:
    """Counts in any shape made safe to publish: ``values`` are the cells; each relation
    ``(members, total, known)`` says ``sum(values[members]) == values[total]`` (a cell), or,
    with ``total`` None, equals ``known``, a total published elsewhere (the rates) that the
    reader is assumed to have. Returns ``(shown, reasons)`` per cell: None and ``small`` or
    ``complementary`` for a hidden cell. Under OpenSAFELY small counts are redacted and the
    others rounded (no complementary suppression, as :func:`suppress_table`)."""
    r = get_rule(rule)
    values = [int(v) for v in values]
    hidden = [r.is_small(v) for v in values]
    rels = [_Relation(members=list(m), total=t, known=k) for m, t, k in relations]
    if r.complementary and rels:
        hidden = _protect(values, hidden, rels, r)
    shown = [None if h else r.round(v) for v, h in zip(values, hidden, strict=True)]
    return shown, [_cell_reason(v, h, r) for v, h in zip(values, hidden, strict=True)]


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


# --------------------------------------------------------------------------- comparisons
def apply_comparisons(
    rows: Iterable[Mapping[str, Any]], rates: Sequence[Mapping[str, Any]], rule: str | Rule = "cms"
) -> list[dict[str, Any]]:
    """Comparison rows (estimate, interval) made safe to publish, given the *disclosed* rates.

    A difference or ratio beside one shown rate gives the other rate back, so a comparison is
    hidden when the arm's or the reference's rate is hidden, or when either arm counts too few
    people. The arm sizes themselves are dropped: the rates table shows the denominators.
    """
    r = get_rule(rule)
    # why each arm's rate is hidden (None: shown)
    hidden_rates = {
        (str(x.get("definition_id")), str(x.get("group"))): (x.get("suppression") or SMALL) if x.get("rate") is None
        else None for x in rates if x.get("group_by") in ("level_group", "level_of_care")
    }
    out = []
    for row in rows:
        row = dict(row)
        d = str(row.get("definition_id"))
        sizes = [_count(row.pop(k, None)) for k in ("n_arm", "n_reference")]
        why = [w for w in (hidden_rates.get((d, str(row.get(k)))) for k in ("arm", "reference")) if w]
        small_arm = any(n is not None and not r.stat_allowed(n) for n in sizes)
        hide = bool(why) or small_arm
        if hide:  # every number of the row: the arms' risks are the hidden rates themselves
            _blank_comparison(row)
        row["suppressed"] = hide
        # complementary only when every rate it would give back was withheld to protect another
        row["suppression"] = None if not hide else (
            COMPLEMENTARY if why and not small_arm and all(w == COMPLEMENTARY for w in why) else SMALL)
        out.append(row)
    return out


COMPARISON_STATS = ("estimate", "ci_low", "ci_high", "se", "p_value", "risk_arm", "risk_reference", "e_value",
                    "e_value_ci", "p_holm", "p_bh")


# A hidden non-inferiority row: its numbers and verdicts on both bases (absolute: the risk
# difference; relative: the risk ratio) and the basis itself become None, its words NI_WORDS.
NI_STATS = ("estimate", "ci95_low", "ci95_high", "ci90_low", "ci90_high", "noninferior", "equivalent",
            "rr", "rr_ci95_low", "rr_ci95_high", "rr_ci90_low", "rr_ci90_high", "noninferior_relative",
            "equivalent_relative", "margin_basis")
NI_WORDS = ("conclusion", "conclusion_absolute", "conclusion_relative", "margin_basis_reason")


def _is_p_value_column(name: Any) -> bool:
    """A p-value of the row's estimate (``p_value``, ``p_holm``, ``p_bh``, ``p_noninferiority``,
    ``interaction_p_value``, ...): beside the hidden estimate's shown neighbours (or each other:
    a multiplicity-adjusted p-value is a known function of the raw one) it gives it back."""
    name = str(name).lower()
    return name == "p_value" or name.startswith("p_") or name.endswith("_p_value")


def _is_interval_column(name: Any) -> bool:
    """``ci95_low``, ``ci90_high``: the other intervals some rows carry beside ``ci_low/high``."""
    name = str(name).lower()
    return name.startswith("ci") and name.endswith(("_low", "_high")) and name[2:].split("_")[0].isdigit()


def _blank_comparison(row: dict[str, Any]) -> None:
    """Every number of a hidden comparison row becomes None: estimate and interval always, and
    whichever of the other statistics (standard error, p-values raw or adjusted, the arms' risks,
    E-values, further intervals) the row carries."""
    row.update(dict.fromkeys(COMPARISON_STATS[:3]))
    for key in list(row):
        if key in COMPARISON_STATS or _is_p_value_column(key) or _is_interval_column(key):
            row[key] = None


# --------------------------------------------------------------------------- Kaplan-Meier
def apply_km(
    time: Sequence[float],
    survival: Sequence[float],
    at_risk: Sequence[int],
    ci_low: Sequence[float] | None = None,
    ci_high: Sequence[float] | None = None,
    *,
    grid_days: int = 15,
    rule: str | Rule = "cms",
) -> list[dict[str, float]]:
    """A Kaplan-Meier curve safe to plot: points on a coarse grid, each drop between two shown
    points standing for 0 or more than ``rule.high`` events, none once fewer than
    ``rule.min_stat_n + 1`` are at risk.

    Each step of a raw curve, with its number at risk, gives the number of events that day back,
    so the curve is read only at grid times and grid points are merged until every interval's
    events (at risk x relative drop) are 0 or above the threshold.
    """
    r = get_rule(rule)
    pts = sorted(zip(time, survival, at_risk, ci_low or [None] * len(time), ci_high or [None] * len(time)))
    if not pts:
        return []

    def at(t: float):  # the curve is right-continuous: last step at or before t
        last = None
        for p in pts:
            if p[0] <= t:
                last = p
            else:
                break
        return last

    def risk_at(t: float) -> int:  # at risk just after t = at risk at the next step
        for p in pts:
            if p[0] > t:
                return p[2]
        return 0

    out = [{"time": 0.0, "survival": 1.0, "ci_low": 1.0, "ci_high": 1.0}]
    prev_t, prev_s = 0.0, 1.0
    t = float(grid_days)
    end = pts[-1][0]
    while t <= end:
        p = at(t)
        if p is None:
            t += grid_days
            continue
        n_prev = risk_at(prev_t)
        if not r.stat_allowed(n_prev):
            break
        events = n_prev * (1 - p[1] / prev_s) if prev_s > 0 else 0.0
        if round(events) == 0 or round(events) > r.high:
            out.append({"time": t, "survival": p[1], "ci_low": p[3], "ci_high": p[4]})
            prev_t, prev_s = t, p[1]
        t += grid_days
    return out


def apply_risk_table(at_risk: Sequence[Any], rule: str | Rule = "cms") -> list[int | None]:
    """Numbers at risk under the rule (hidden when small, rounded under OpenSAFELY)."""
    return [shown_count(n, rule) for n in at_risk]


# --------------------------------------------------------------------------- final guard
COUNT_NAMES = frozenset({"n", "count", "numerator", "denominator", "episodes", "persons", "at_risk"})
COUNT_PREFIXES = ("n_", "count_", "at_risk_", "rows_", "episodes_", "persons_")
COUNT_SUFFIXES = ("_n", "_count", "_episodes", "_persons", "_at_risk", "_numerator", "_denominator")


@functools.lru_cache(maxsize=4096)
def is_count_column(name: str) -> bool:
    """Does a column of this name hold person or episode counts? (asked for every cell the final
    guard reads: the answer is kept per name)"""
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


# --------------------------------------------------------------------------- balance
#: a balance row's moments: hidden together (each arm's mean and SD before and after weighting)
BALANCE_MOMENTS = ("mean_arm_before", "mean_reference_before", "sd_arm_before", "sd_reference_before",
                   "mean_arm_after", "mean_reference_after", "sd_arm_after", "sd_reference_after")


def apply_balance(rows: Iterable[Mapping[str, Any]], rule: str | Rule = "cms", *,
                  published: Iterable[str] = (), size_shown: Any = None) -> list[dict[str, Any]]:
    """Balance rows made safe to publish. The SMDs and variance ratios are shown as they are.

    * A 0/1 column's mean times its arm's size is a head count (people at that level, and the
      rest): the row's means and SDs are hidden (``small``) when either count is small in either
      arm, and always under a rule that rounds counts (the mean would give the exact count back).
    * A 0/1 column of a covariate in ``published`` (the rates' groupings, such as ``site_id``)
      counts people of a cell the rates table shows or withholds: its means and SDs are hidden
      (``complementary``), so that no withheld cell can be worked out from them.
    * A numeric column's moments are statistics over its arm, shown when the rule allows.
    * An arm's head count is shown where ``size_shown(row, key, n)`` allows (``key``: ``n_arm`` or
      ``n_reference``; default: always), as a stand-alone count.
    """
    r = get_rule(rule)
    published = set(published)
    out = []
    for row in rows:
        row = dict(row)
        sizes = [_count(row.get(k)) for k in ("n_arm", "n_reference")]
        means = [row.get("mean_arm_before"), row.get("mean_reference_before")]
        covariate = str(row.get("covariate") or "").split("=")[0].removesuffix("__missing")
        why = None
        if row.get("binary"):
            counts = [None if n is None or m is None else round(n * m) for n, m in zip(sizes, means, strict=True)]
            if r.round_to > 1 or any(c is None or r.is_small(c) or r.is_small(n - c)
                                     for n, c in zip(sizes, counts, strict=True)):
                why = SMALL
            elif covariate in published:
                why = COMPLEMENTARY
        elif any(n is None or not r.stat_allowed(n) for n in sizes):
            why = SMALL
        if why:
            row.update(dict.fromkeys(BALANCE_MOMENTS))
        row["suppression"] = why
        for key, n in zip(("n_arm", "n_reference"), sizes, strict=True):
            row[key] = shown_count(n, r) if size_shown is None or size_shown(row, key, n) else None
        out.append(row)
    return out


# --------------------------------------------------------------------------- analysis output
def apply_comparative(
    comparative: Mapping[str, Any], rates: Sequence[Mapping[str, Any]], rule: str | Rule = "cms",
    grouped: Iterable[str] = (),
) -> dict[str, Any]:
    """The comparative part of ``results.json`` (pipelines.analysis.comparative) made safe;
    ``grouped``: the columns the published rates are grouped by (``site_id``, ...).

    ``rates`` are the *disclosed* rate rows. Comparisons follow :func:`apply_comparisons` (arm
    sizes shown only when the rule allows); a non-inferiority verdict goes with its comparison;
    diagnostics' and balance rows' head counts (a population's sizes) are shown only where the
    rates show that denominator; the propensity histogram's bins are protected like a table with
    its margin (the arm's total is published); Kaplan–Meier curves and numbers at risk
    follow :func:`apply_km` / :func:`apply_risk_table`; subgroup effects over too few people
    are hidden.
    """
    import pandas as pd

    r = get_rule(rule)
    out = dict(comparative)
    rows = comparative.get("comparisons") or []
    sizes = [(row.get("n_arm"), row.get("n_reference")) for row in rows]
    shown = apply_comparisons(rows, rates, r)
    # An arm's size is its rate's denominator: shown only where the rates table shows that
    # denominator, or complementary suppression there would be undone here.
    dens = {(str(x.get("definition_id")), str(x.get("group"))): x.get("denominator")
            for x in rates if x.get("group_by") == "level_group"}
    for row, (n1, n0) in zip(shown, sizes):
        d = str(row.get("definition_id"))
        for key, n, group in (("n_arm", n1, row.get("arm")), ("n_reference", n0, row.get("reference"))):
            ok = not row["suppressed"] and dens.get((d, str(group))) == _count(n)
            row[key] = shown_count(n, r) if ok else None
    out["comparisons"] = shown
    hidden = {(x["definition_id"], x["method"]): x["suppression"] for x in shown if x["suppressed"]}
    out["noninferiority"] = [
        {**x, **dict.fromkeys(NI_STATS),
         **{k: None for k in x if k == "se" or _is_p_value_column(k)},  # p_noninferiority, p_equivalence, ...
         # the verdicts (and their words) say which side of the margin the hidden interval lies,
         # the basis chosen by the reference rate on which side of 20% that rate lies
         **dict.fromkeys(NI_WORDS, "not shown: too few people to publish"),
         "suppression": hidden[(x.get("definition_id"), x.get("method"))]}
        if (x.get("definition_id"), x.get("method")) in hidden else {**x, "suppression": None}
        for x in comparative.get("noninferiority") or []
    ]
    # a population's size is a definition's rate denominator for the arm (or the reference): as
    # for the comparisons, shown only where the rates show that denominator
    in_population: dict[Any, set[tuple[str, str, str]]] = {}
    for row in rows:
        in_population.setdefault(row.get("population"), set()).add(
            (str(row.get("definition_id")), str(row.get("arm")), str(row.get("reference"))))

    def size_shown(row: Mapping[str, Any], key: str, n: int | None) -> bool:
        side = 1 if key == "n_arm" else 2
        return n is not None and any(dens.get((m[0], m[side])) == n for m in in_population.get(row.get("population"), ()))

    # the diagnostics' and the balance's head counts are a population's sizes
    out["diagnostics"] = [
        {**x, **{k: shown_count(x.get(k), r) if size_shown(x, k, _count(x.get(k))) else None
                 for k in ("n_arm", "n_reference")}}
        for x in comparative.get("diagnostics") or []
    ]
    out["balance"] = apply_balance(comparative.get("balance") or [], r, published=grouped, size_shown=size_shown)
    prop = comparative.get("propensity")
    if prop:
        arms = list(prop["counts"])
        df = pd.DataFrame({"bin": range(len(prop["bin_edges"]) - 1), **{a: prop["counts"][a] for a in arms}})
        safe, _ = suppress_table(df, arms, margins="cols", rule=r)
        safe = safe[safe["bin"] != "total"] if safe["bin"].dtype == object else safe.iloc[:-1]
        out["propensity"] = {"bin_edges": prop["bin_edges"],
                             "counts": {a: [_count(v) for v in safe[a]] for a in arms}}
    survival = comparative.get("survival") or {}
    if "groups" in survival.get("readmission", {}):
        km = dict(survival["readmission"])
        km["groups"] = {
            g: {**c, **_columns(apply_km(c["time"], c["survival"], c["at_risk"], c.get("ci_low"), c.get("ci_high"),
                                         rule=r))}
            for g, c in km["groups"].items()
        }
        km["risk_table"] = {"times": km["risk_table"]["times"],
                            "at_risk": {g: apply_risk_table(v, r) for g, v in km["risk_table"]["at_risk"].items()}}
        km["events"] = {g: shown_count(v, r) for g, v in (km.get("events") or {}).items()}
        survival = {**survival, "readmission": km}
    out["survival"] = survival
    # a subgroup's size is a count like any other (rounded under OpenSAFELY)
    out["modification"] = [
        {**x, "n": shown_count(x.get("n"), r), "suppression": None} if r.stat_allowed(x.get("n"))
        else {**x, "estimate": None, "ci_low": None, "ci_high": None, "n": None,
              "note": "not shown: too few people to publish", "suppression": SMALL}
        for x in comparative.get("modification") or []
    ]
    return out


def _columns(points: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Kaplan–Meier grid points as columns; the per-step numbers at risk are not published."""
    return {"time": [p["time"] for p in points], "survival": [p["survival"] for p in points],
            "ci_low": [p["ci_low"] for p in points], "ci_high": [p["ci_high"] for p in points],
            "at_risk": None}
