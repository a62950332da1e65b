"""Generative: over random tables, nothing in 1-10 is shown and no hidden cell can be worked out.

"Worked out" is tested by an attacker who knows every shown cell and shown total and that
counts are >= 0: for each hidden cell a linear program gives its smallest and largest possible
value; for a hidden non-zero cell the range must be wider than 10 (so it is neither pinned nor
pinned into 1-10). A hidden zero may be worked out: zero is allowed to be shown.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from pipelines.disclosure import apply_rates, suppress_table

# Many small cells, some zeros, some large: the hard cases for complementary suppression.
cell = st.one_of(st.integers(0, 12), st.integers(11, 400))


def _attacker_ranges(values, hidden, equations):
    """equations: list of (cells, total or None=hidden total); values[cell] known when shown."""
    unknown = sorted({c for c, h in hidden.items() if h})
    pos = {c: k for k, c in enumerate(unknown)}
    a, b = [], []
    for cells, total in equations:
        if total is None:
            continue
        row = np.zeros(len(unknown))
        rhs = float(total)
        for c in cells:
            if hidden[c]:
                row[pos[c]] += 1
            else:
                rhs -= values[c]
        if row.any():
            a.append(row)
            b.append(rhs)
    ranges = {}
    for c in unknown:
        if not a:
            ranges[c] = (0.0, np.inf)
            continue
        obj = np.zeros(len(unknown))
        obj[pos[c]] = 1
        lo = linprog(obj, A_eq=np.array(a), b_eq=np.array(b), bounds=(0, None), method="highs")
        hi = linprog(-obj, A_eq=np.array(a), b_eq=np.array(b), bounds=(0, None), method="highs")
        assert lo.status == 0  # the true table is always feasible
        ranges[c] = (lo.fun, -hi.fun if hi.status == 0 else np.inf)
    return ranges


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 5).flatmap(lambda nc: st.lists(st.lists(cell, min_size=nc, max_size=nc), min_size=1, max_size=5)))
def test_cross_table_no_small_count_and_nothing_recoverable(matrix):
    ncol = len(matrix[0])
    cols = [f"c{j}" for j in range(ncol)]
    df = pd.DataFrame(matrix, columns=cols)
    df.insert(0, "category", [f"r{i}" for i in range(len(matrix))])
    shown, hidden = suppress_table(df, cols)
    all_cols = cols + ["total"]
    nrow = len(matrix) + 1
    full = np.zeros((nrow, ncol + 1), dtype=int)
    full[:-1, :-1] = matrix
    full[-1, :-1] = full[:-1, :-1].sum(axis=0)
    full[:, -1] = full[:, :-1].sum(axis=1)

    values, hid = {}, {}
    for i in range(nrow):
        for j, c in enumerate(all_cols):
            v = shown.loc[i, c]
            values[(i, j)] = int(full[i, j])
            hid[(i, j)] = bool(hidden.loc[i, c])
            assert (v is None) == hid[(i, j)]
            if v is not None:
                assert v == full[i, j], "a shown cell must be the true value"
                assert not (1 <= v <= 10), "a shown count lies in 1-10"

    equations = []
    for i in range(nrow):  # row i: inner cells sum to its total
        tot = None if hid[(i, ncol)] else values[(i, ncol)]
        equations.append(([(i, j) for j in range(ncol)], tot))
    for j in range(ncol + 1):
        tot = None if hid[(nrow - 1, j)] else values[(nrow - 1, j)]
        equations.append(([(i, j) for i in range(nrow - 1)], tot))
    for c, (lo, hi) in _attacker_ranges(values, hid, equations).items():
        assert values[c] == 0 or hi - lo > 10, f"hidden cell {c} (true {values[c]}) pinned to [{lo}, {hi}]"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(cell, cell), min_size=1, max_size=8))
def test_rates_family_no_small_count_and_nothing_recoverable(pairs):
    rows = []
    for i, (a, b) in enumerate(pairs):
        num, den = a, a + b  # den >= num
        rows.append({"definition_id": "d", "definition_version": "1", "group_by": "site_id",
                     "group": f"s{i}", "numerator": num, "denominator": den,
                     "rate": num / den if den else None, "ci_low": None, "ci_high": None,
                     "ci_method": "wilson", "suppressed": False})
    out = apply_rates(rows)
    for row, o in zip(rows, out):
        for col in ("numerator", "denominator"):
            v = o[col]
            assert v is None or (v == row[col] and not 1 <= v <= 10)
        if o["numerator"] is not None and o["denominator"] is not None:
            assert not 1 <= o["denominator"] - o["numerator"] <= 10
        if o["rate"] is not None:  # a shown rate needs both of its counts shown
            assert o["numerator"] is not None and o["denominator"] is not None
    # The family totals are assumed published (they appear elsewhere in a report) unless they
    # are themselves 1-10, which the rule keeps out of every output. A one-group family has no
    # total apart from the row itself.
    for col in ("numerator", "denominator"):
        values = {i: r[col] for i, r in enumerate(rows)}
        hid = {i: out[i][col] is None for i in values}
        total = sum(values.values())
        eq = [(list(values), None if 1 <= total <= 10 or len(rows) == 1 else total)]
        for c, (lo, hi) in _attacker_ranges(values, hid, eq).items():
            assert values[c] == 0 or hi - lo > 10, (col, c, lo, hi)


LOC_GROUP = {"outpatient": "outpatient", "iop": "iop", "php": "php", "residential_short": "residential",
             "residential_long": "residential", "residential_hospital": "residential", "inpatient": "inpatient",
             "detox": "detox"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(cell, cell), min_size=8, max_size=8))
def test_rates_of_one_definition_nothing_recoverable_across_groupings(pairs):
    """all = sum of level groups = sum of levels of care; residential = its three settings."""
    locs = list(LOC_GROUP)
    num = {loc: a for loc, (a, _) in zip(locs, pairs)}
    den = {loc: a + b for loc, (a, b) in zip(locs, pairs)}
    groups = list(dict.fromkeys(LOC_GROUP.values()))

    def row(by, group, k, n):
        return {"definition_id": "d", "definition_version": 1, "group_by": by, "group": group, "numerator": k,
                "denominator": n, "rate": k / n if n else None, "ci_low": None, "ci_high": None,
                "ci_method": "wilson", "suppressed": False}

    rows = [row("all", None, sum(num.values()), sum(den.values()))]
    rows += [row("level_group", g, sum(num[x] for x in locs if LOC_GROUP[x] == g),
                 sum(den[x] for x in locs if LOC_GROUP[x] == g)) for g in groups]
    rows += [row("level_of_care", x, num[x], den[x]) for x in locs]
    out = apply_rates(rows)
    idx_all, idx_group = 0, {g: 1 + i for i, g in enumerate(groups)}
    idx_loc = {x: 1 + len(groups) + i for i, x in enumerate(locs)}
    for col in ("numerator", "denominator"):
        values = {i: r[col] for i, r in enumerate(rows)}
        hid = {i: out[i][col] is None for i in values}
        for i, v in values.items():
            assert hid[i] or not 1 <= v <= 10

        eqs = [(list(idx_group.values()), idx_all), (list(idx_loc.values()), idx_all)]
        eqs += [([idx_loc[x] for x in locs if LOC_GROUP[x] == g], idx_group[g]) for g in groups]
        ranges = _attacker_ranges_signed(values, hid, eqs)
        for c, (lo, hi) in ranges.items():
            assert values[c] == 0 or hi - lo > 10, (col, c, values[c], lo, hi)


def _attacker_ranges_signed(values, hidden, equations):
    """Like _attacker_ranges, but a hidden total is an unknown too: sum(members) - total = 0."""
    unknown = sorted(c for c, h in hidden.items() if h)
    pos = {c: k for k, c in enumerate(unknown)}
    a, b = [], []
    for members, t in equations:
        row = np.zeros(len(unknown))
        rhs = 0.0
        for c, sign in [(m, 1.0) for m in members] + [(t, -1.0)]:
            if hidden[c]:
                row[pos[c]] += sign
            else:
                rhs -= sign * values[c]
        if row.any():
            a.append(row)
            b.append(rhs)
    out = {}
    for c in unknown:
        if not a:
            out[c] = (0.0, np.inf)
            continue
        obj = np.zeros(len(unknown))
        obj[pos[c]] = 1
        lo = linprog(obj, A_eq=np.array(a), b_eq=np.array(b), bounds=(0, None), method="highs")
        hi = linprog(-obj, A_eq=np.array(a), b_eq=np.array(b), bounds=(0, None), method="highs")
        assert lo.status == 0
        out[c] = (lo.fun, -hi.fun if hi.status == 0 else np.inf)
    return out
