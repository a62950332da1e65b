"""Why a cell is hidden, p-values of hidden comparisons, and rates of a period beside a trend.

Every expectation is worked out by hand in the comments (the CMS line rules: in every line with
a known total, nothing hidden or at least two hidden whose sum is not 1-10; then no hidden
non-zero cell pinned to a range of 10 or narrower). Where a test checks that nothing can be
worked out, an attacker is written out here: it knows every shown count, the relations the
test declares (totals, including totals assumed published elsewhere), that counts are >= 0 and
that a numerator is at most its shown denominator, and a linear program gives the smallest and
largest value each hidden numerator can take.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from pipelines.disclosure import (
    apply_comparative,
    apply_comparisons,
    apply_rates,
    suppress_table,
    suppress_table_reasons,
)


def _rate(group_by, group, num, den, definition="completion", **extra):
    return {
        "definition_id": definition, "definition_version": "1", "group_by": group_by, "group": group,
        "numerator": num, "denominator": den, "rate": num / den if den else None,
        "ci_low": 0.0, "ci_high": 1.0, "ci_method": "wilson", "suppressed": False, **extra,
    }


def _name(row):
    return "all" if row["group_by"] == "all" else str(row["group"])


def _numerator_ranges(rows, out, equations):
    """For each hidden numerator, (smallest, largest) value an attacker can give it.

    ``equations``: ``({cell name: coefficient}, constant)`` meaning sum(coef * numerator) ==
    constant; cells are named by :func:`_name`. Shown numerators are substituted; a hidden one
    is an unknown in [0, its denominator] (the denominator's true value when it is shown)."""
    true = {_name(r): r["numerator"] for r in rows}
    shown = {_name(o): o["numerator"] for o in out}
    dens = {_name(o): o["denominator"] for o in out}
    unknown = sorted(c for c, v in shown.items() if v is None)
    pos = {c: k for k, c in enumerate(unknown)}
    a, b = [], []
    for coefs, const in equations:
        row, rhs = np.zeros(len(unknown)), float(const)
        for c, k in coefs.items():
            if shown[c] is None:
                row[pos[c]] += k
            else:
                rhs -= k * shown[c]
        if row.any():
            a.append(row)
            b.append(rhs)
        else:
            assert rhs == 0, "a declared relation does not hold for the test's own numbers"
    bounds = [(0, dens[c]) for c in unknown]
    ranges = {}
    for c in unknown:
        obj = np.zeros(len(unknown))
        obj[pos[c]] = 1
        kw = {"A_eq": np.array(a), "b_eq": np.array(b)} if a else {}
        lo = linprog(obj, bounds=bounds, method="highs", **kw)
        hi = linprog(-obj, bounds=bounds, method="highs", **kw)
        assert lo.status == 0 and hi.status == 0  # the true numbers are always a solution
        ranges[c] = (lo.fun, -hi.fun)
        assert ranges[c][0] <= true[c] <= ranges[c][1]
    return ranges


def _assert_nothing_recoverable(rows, out, equations):
    true = {_name(r): r["numerator"] for r in rows}
    for c, (lo, hi) in _numerator_ranges(rows, out, equations).items():
        assert true[c] == 0 or hi - lo > 10, f"hidden numerator {c} (true {true[c]}) pinned to [{lo}, {hi}]"


def _total(members, total=None, known=None):
    """sum(members) == total cell, or == known (a total published elsewhere)."""
    coefs = dict.fromkeys(members, 1.0)
    if total is not None:
        coefs[total] = coefs.get(total, 0.0) - 1.0
        return coefs, 0.0
    return coefs, known


# --------------------------------------------------------------------------- A. comparisons
P_LIKE = ("p_value", "p_holm", "p_bh", "p_noninferiority", "p_equivalence", "interaction_p_value")
NUMBERS = ("estimate", "ci_low", "ci_high", "se", "risk_arm", "risk_reference", "e_value", "e_value_ci",
           "ci90_low", "ci90_high", *P_LIKE)


def _comparison(n_arm, definition="retention"):
    return {"definition_id": definition, "arm": "iop", "reference": "residential", "method": "crude",
            "estimand": "rd", "population": "all discharges", "note": "kept", "estimate": -0.05,
            "ci_low": -0.1, "ci_high": 0.0, "se": 0.025, "risk_arm": 0.45, "risk_reference": 0.5,
            "e_value": 1.3, "e_value_ci": 1.0, "ci90_low": -0.09, "ci90_high": -0.01, "p_value": 0.046,
            "p_holm": 0.092, "p_bh": 0.069, "p_noninferiority": 0.01, "p_equivalence": 0.2,
            "interaction_p_value": 0.3, "n_arm": n_arm, "n_reference": 200}


def test_a_hidden_comparison_keeps_no_p_value_and_a_shown_one_keeps_them_all():
    # retention rates are large and shown (iop 20/40, residential 100/200), so only the arm size
    # decides: 8 people in the arm is a statistic over 10 or fewer (hidden), 40 is not.
    rates = apply_rates([_rate("level_group", "iop", 20, 40, "retention"),
                         _rate("level_group", "residential", 100, 200, "retention")])
    assert all(r["suppression"] is None for r in rates)
    hidden, shown = apply_comparisons([_comparison(8), _comparison(40)], rates)
    assert hidden["suppressed"] is True
    # p_holm and p_bh are monotone functions of p_value within its family: any of them gives
    # the hidden estimate's p-value back, so all go (and every other number of the row).
    for key in NUMBERS:
        assert hidden[key] is None, key
    # labels are not numbers of the estimate: kept ("population" starts with "p" but not "p_")
    assert (hidden["population"], hidden["note"], hidden["method"]) == ("all discharges", "kept", "crude")
    assert shown["suppressed"] is False
    for key in NUMBERS:
        assert shown[key] == _comparison(40)[key], key


def test_a_apply_comparative_hides_adjusted_p_values_of_hidden_rows_and_noninferiority_p_values():
    # completion: iop 5/40 has a small numerator, so its rate (and the comparison) is hidden.
    rates = apply_rates([_rate("level_group", "iop", 5, 40), _rate("level_group", "php", 30, 80),
                         _rate("level_group", "residential", 60, 200),
                         _rate("level_group", "iop", 20, 40, "retention"),
                         _rate("level_group", "residential", 100, 200, "retention")])
    ni = {"method": "crude", "margin_pp": 5.0, "estimate": -0.05, "ci95_low": -0.1, "ci95_high": 0.0,
          "ci90_low": -0.09, "ci90_high": -0.01, "noninferior": False, "equivalent": False,
          "p_noninferiority": 0.4, "p_equivalence": 0.7, "conclusion": "inconclusive"}
    out = apply_comparative({
        "comparisons": [_comparison(40, "completion"), _comparison(40, "retention")],
        "noninferiority": [{**ni, "definition_id": "completion"}, {**ni, "definition_id": "retention"}],
    }, rates)
    hidden, shown = out["comparisons"]
    assert hidden["suppressed"] and not shown["suppressed"]
    for key in NUMBERS:
        assert hidden[key] is None, key
        assert shown[key] == _comparison(40)[key], key
    assert hidden["n_arm"] is None and shown["n_arm"] == 40
    ni_hidden, ni_shown = out["noninferiority"]
    for key in ("estimate", "ci95_low", "ci95_high", "ci90_low", "ci90_high", "p_noninferiority", "p_equivalence"):
        assert ni_hidden[key] is None, key
        assert ni_shown[key] == ni[key], key


def test_a_hidden_noninferiority_row_hides_its_relative_verdict_and_basis_too():
    # the risk ratio, its intervals, p-values, verdicts and words would give the hidden rate back
    # as the difference would; the basis chosen by the reference rate says on which side of 20% it is
    rates = apply_rates([_rate("level_group", "iop", 5, 40), _rate("level_group", "residential", 60, 200),
                         _rate("level_group", "iop", 20, 40, "retention"),
                         _rate("level_group", "residential", 100, 200, "retention")])
    relative = {"rr": 0.42, "rr_ci95_low": 0.2, "rr_ci95_high": 0.9, "rr_ci90_low": 0.25, "rr_ci90_high": 0.8,
                "noninferior_relative": False, "equivalent_relative": False, "p_noninferiority_relative": 0.9,
                "p_equivalence_relative": 0.95}
    words = {"conclusion": "iop is worse than residential (risk ratio 0.42)",
             "conclusion_absolute": "inconclusive (95% CI -10.0 to 0.0 pp)",
             "conclusion_relative": "iop is worse than residential (risk ratio 0.42)",
             "margin_basis_reason": "relative: the residential rate 12.0% is below 20%"}
    ni = {"method": "crude", "margin_pp": 5.0, "margin_ratio": 0.8, "estimate": -0.05, "ci95_low": -0.1,
          "ci95_high": 0.0, "ci90_low": -0.09, "ci90_high": -0.01, "noninferior": False, "equivalent": False,
          "p_noninferiority": 0.4, "p_equivalence": 0.7, "margin_basis": "relative", **relative, **words}
    out = apply_comparative({
        "comparisons": [_comparison(40, "completion"), _comparison(40, "retention")],
        "noninferiority": [{**ni, "definition_id": "completion"}, {**ni, "definition_id": "retention"}],
    }, rates)
    ni_hidden, ni_shown = out["noninferiority"]
    assert ni_hidden["suppression"] and ni_shown["suppression"] is None
    for key in (*relative, "margin_basis"):
        assert ni_hidden[key] is None, key
        assert ni_shown[key] == ni[key], key
    for key in words:
        assert ni_hidden[key].startswith("not shown"), key
        assert "0.42" not in ni_hidden[key] and "12.0" not in ni_hidden[key], key
        assert ni_shown[key] == ni[key], key
    assert ni_hidden["margin_pp"] == 5.0 and ni_hidden["margin_ratio"] == 0.8  # the margins asked are no secret


# --------------------------------------------------------------------------- B. reasons, tables
def test_b_table_reasons_two_by_three_with_one_small_cell():
    #          c1   c2   c3 | total
    #   a       4   30   50 |   84
    #   b      20   40   60 |  120
    #   total  24   70  110 |  204
    # (a,c1) = 4 is small. Row a then needs a second hidden cell: the smallest other, (a,c2) = 30
    # (hidden sum 34). Column c1 needs a second: its only other cell, (b,c1) = 20 (sum 24);
    # column c2 now has (a,c2) alone: (b,c2) = 40 (sum 70). Row b then holds (b,c1), (b,c2)
    # (sum 60) and every line has two hidden cells with a sum above 10. The linear audit:
    # x = (a,c1) leaves (a,c2) = 34 - x, (b,c1) = 24 - x, (b,c2) = 36 + x with x in [0, 24]:
    # every hidden cell ranges over 24 values. No margin is hidden.
    df = pd.DataFrame({"category": ["a", "b"], "c1": [4, 20], "c2": [30, 40], "c3": [50, 60]})
    shown, reasons = suppress_table_reasons(df, ["c1", "c2", "c3"])
    assert list(reasons.columns) == ["c1", "c2", "c3", "total"]
    assert reasons.to_dict("list") == {
        "c1": ["small", "complementary", None],
        "c2": ["complementary", "complementary", None],
        "c3": [None, None, None],
        "total": [None, None, None],
    }
    assert shown.to_dict("list") == {
        "category": ["a", "b", "total"], "c1": [None, None, 24], "c2": [None, None, 70],
        "c3": [50, 60, 110], "total": [84, 120, 204],
    }
    # suppress_table is the same table with booleans
    shown2, hidden = suppress_table(df, ["c1", "c2", "c3"])
    assert shown2.equals(shown)
    assert hidden.equals(reasons.notna())
    assert list(hidden.dtypes) == [bool] * 4


def test_b_table_reasons_small_margin_is_small_and_the_rest_of_its_rows_complementary():
    #          iop  res | total
    #   a        3   40 |   43
    #   b        2   50 |   52
    #   total    5   90 |   95
    # Both iop cells and the iop total (5) are small themselves. Each row (a, b, total) then
    # holds one hidden cell and one shown: the res cell of every row must go (complementary).
    # The total column is shown: with x = (a,iop), y = (b,iop) free, every hidden cell is
    # x, y, x + y, 43 - x, 52 - y or 95 - x - y, each over at least 43 values.
    df = pd.DataFrame({"category": ["a", "b"], "iop": [3, 2], "res": [40, 50]})
    shown, reasons = suppress_table_reasons(df, ["iop", "res"])
    assert reasons.to_dict("list") == {"iop": ["small"] * 3, "res": ["complementary"] * 3,
                                       "total": [None] * 3}
    assert list(shown["total"]) == [43, 52, 95]


def test_b_table_reasons_with_groups_and_opensafely():
    df = pd.DataFrame({"covariate": ["sex", "sex", "age", "age"], "category": ["f", "m", "<30", "30+"],
                       "iop": [50, 60, 4, 106], "res": [70, 80, 60, 90]})
    shown, reasons = suppress_table_reasons(df, ["iop", "res"], groups="covariate")
    # sex: nothing small, nothing hidden; age: (<30, iop) = 4 small and, as in the 2x3 case,
    # the smallest cells completing a rectangle: (<30, res) 60, (30+, iop) 106, (30+, res) 90.
    assert reasons.iloc[:3].isna().all().all()
    assert reasons.iloc[3:5].to_dict("list") == {"iop": ["small", "complementary"],
                                                 "res": ["complementary", "complementary"],
                                                 "total": [None, None]}
    # OpenSAFELY: no complementary suppression; a redacted cell is always small
    df = pd.DataFrame({"category": ["a", "b", "c"], "iop": [12, 6, 23], "res": [0, 33, 47]})
    shown, reasons = suppress_table_reasons(df, ["iop", "res"], rule="opensafely")
    assert list(shown["iop"]) == [10, None, 25, 35]
    assert reasons.to_dict("list") == {"iop": [None, "small", None, None], "res": [None] * 4,
                                       "total": [None] * 4}


# --------------------------------------------------------------------------- B. reasons, rates
def test_b_rates_family_small_row_and_its_complement():
    # all 100/200 = iop 3/20 + residential 97/180. iop's numerator (3) is small; the level-group
    # line (total: the shown all row) would then give it back as 100 - 97: residential's
    # numerator must go too (complementary). Denominators are all large and stay.
    rows = [_rate("all", None, 100, 200), _rate("level_group", "iop", 3, 20),
            _rate("level_group", "residential", 97, 180)]
    out = apply_rates(rows)
    assert [(o["numerator"], o["denominator"], o["suppression"]) for o in out] == [
        (100, 200, None), (None, 20, "small"), (None, 180, "complementary")]
    assert [o["suppressed"] for o in out] == [False, True, True]
    assert out[2]["rate"] is None and out[2]["ci_low"] is None
    # iop + residential = 100 with iop <= 20: iop in [0, 20], residential in [80, 100]
    _assert_nothing_recoverable(rows, out, [_total(["iop", "residential"], total="all")])


@pytest.mark.parametrize(("num", "den", "why"), [
    (3, 40, "numerator 3 is small"),
    (35, 40, "complement 40 - 35 = 5 is small"),
    (0, 7, "denominator 7 is small"),
    (0, 0, "denominator 0 allows no statistic"),
])
def test_b_every_cause_of_a_small_row(num, den, why):
    # a family of its own (site) with a large row beside it: the large row is hidden only to
    # protect the first (when anything needs protecting at all)
    out = apply_rates([_rate("site", "s1", num, den), _rate("site", "s2", 100, 300)])
    assert out[0]["suppression"] == "small", why
    assert out[0]["suppressed"] and out[0]["rate"] is None
    assert out[1]["suppression"] in (None, "complementary")
    assert (out[1]["suppression"] is None) == (out[1]["numerator"] is not None)


def test_b_rows_arriving_hidden_keep_or_get_their_reason_and_a_second_pass_changes_nothing():
    rows = [_rate("all", None, 215, 549), _rate("level_group", "detox", 0, 9),
            _rate("level_group", "iop", 35, 40), _rate("level_group", "php", 30, 80),
            _rate("level_group", "residential", 150, 420)]
    once = apply_rates(rows)
    assert {_name(o): o["suppression"] for o in once} == {
        # detox: denominator 9 small; iop: complement 40 - 35 = 5 small. The denominator line
        # (9 + 40 + 80 + 420 = 549, the all row) needs a second hidden denominator: the
        # smallest, iop's 40 (sum 49), whose row is hidden anyway; the numerator line then holds
        # detox 0 and iop 35 hidden (sum 35): nothing more to hide, php stays.
        "all": None, "detox": "small", "iop": "small", "php": None, "residential": None}
    assert [o["denominator"] for o in once] == [549, None, None, 80, 420]
    assert apply_rates(once) == once
    # a row that arrives hidden without a reason (analyze's own rule, an older file) is small;
    # one that arrives with a reason keeps it, and stays hidden
    came = [_rate("site", "s1", 50, 100, suppressed=True, numerator=None, rate=None),
            _rate("site", "s2", 60, 100, suppression="complementary", suppressed=True),
            _rate("site", "s3", 100, 300), _rate("site", "s4", 120, 300)]
    came[0]["numerator"] = None
    out = apply_rates(came)
    assert [o["suppression"] for o in out] == ["small", "complementary", None, None]
    assert out[1]["numerator"] is None


def test_b_opensafely_rows_redacted_are_small():
    rows = [_rate("level_group", "iop", 6, 40), _rate("level_group", "residential", 123, 301),
            _rate("level_group", "detox", 3, 4)]
    out = apply_rates(rows, rule="opensafely")
    assert [o["suppression"] for o in out] == ["small", None, "small"]
    # a second pass keeps the reasons (it also drops a redacted row's denominator, as before)
    assert [o["suppression"] for o in apply_rates(out, rule="opensafely")] == ["small", None, "small"]


# --------------------------------------------------------------------------- C. period and trend
def _quarter_rows():
    # period = 2026Q3 alone; the trend window is 2026Q1..2026Q3. The all row (the period) is
    # the 2026Q3 row; the level groups split the period: iop 20/40 + residential 30/60.
    return [_rate("all", None, 50, 100), _rate("level_group", "iop", 20, 40),
            _rate("level_group", "residential", 30, 60), _rate("quarter", "2026Q1", 60, 120),
            _rate("quarter", "2026Q2", 4, 30), _rate("quarter", "2026Q3", 50, 100)]


def test_c_quarter_of_the_period_is_the_all_row():
    # Numerators. 2026Q2 = 4 is small. The trend's own total (60 + 4 + 50 = 114, taken as
    # published) needs a second hidden quarter: the smallest, 2026Q3 = 50. But 2026Q3 is the
    # all row (the period is that quarter): the all row must go too (complementary), and then
    # the level-group line (iop + residential = all) has its total hidden alone: its smallest
    # member, iop = 20, goes with it. Denominators are all large: nothing hidden there.
    rows = _quarter_rows()
    out = apply_rates(rows, period_quarters={"2026Q3"})
    assert {_name(o): o["suppression"] for o in out} == {
        "all": "complementary", "iop": "complementary", "residential": None,
        "2026Q1": None, "2026Q2": "small", "2026Q3": "complementary"}
    assert all(o["denominator"] == r["denominator"] for o, r in zip(out, rows))
    by = {_name(o): o for o in out}
    assert by["2026Q3"]["numerator"] is None and by["all"]["numerator"] is None
    # The attacker: Q1 + Q2 + Q3 = 114, Q3 = all, iop + residential = all, Q2 <= 30. Then
    # Q2 + Q3 = 54 and all = Q3 = iop + 30: Q3 in [30, 54], Q2 in [0, 24], iop in [0, 24].
    eqs = [_total(["2026Q1", "2026Q2", "2026Q3"], known=114), _total(["2026Q3"], total="all"),
           _total(["iop", "residential"], total="all")]
    ranges = _numerator_ranges(rows, out, eqs)
    assert ranges == {"2026Q2": (0, 24), "2026Q3": (30, 54), "all": (30, 54), "iop": (0, 24)}
    _assert_nothing_recoverable(rows, out, eqs)


def test_c_without_period_quarters_nothing_changes():
    # The rows as before this option: the quarter family is tied to nothing but its own
    # total, so 2026Q3 is hidden while the all row (equal to it) is shown. That is why a
    # caller whose all row covers a period inside the trend window must pass period_quarters.
    out = apply_rates(_quarter_rows())
    assert {_name(o): o["suppression"] for o in out} == {
        "all": None, "iop": None, "residential": None, "2026Q1": None, "2026Q2": "small",
        "2026Q3": "complementary"}


def test_c_period_of_two_quarters_adds_up_to_the_all_row():
    # period 2026Q2..2026Q3; all = 2026Q2 + 2026Q3 = 4 + 50 = 54 (numerators), 30 + 100 = 130.
    # 2026Q2 (4) is small. Period line: Q2 + Q3 = all, with all shown: Q3 must go (4 + 50 = 54
    # is not small) -- and the trend line Q1 + Q2 + Q3 = 114 then has two hidden (54): enough.
    # The level-group line (iop 24 + residential 30 = all 54) is untouched.
    # Attacker: Q2 + Q3 = 54, Q2 <= 30: Q2 in [0, 30], Q3 in [24, 54].
    rows = [_rate("all", None, 54, 130), _rate("level_group", "iop", 24, 70),
            _rate("level_group", "residential", 30, 60), _rate("quarter", "2026Q1", 60, 120),
            _rate("quarter", "2026Q2", 4, 30), _rate("quarter", "2026Q3", 50, 100)]
    out = apply_rates(rows, period_quarters=["2026Q2", "2026Q3"])
    assert {_name(o): o["suppression"] for o in out} == {
        "all": None, "iop": None, "residential": None, "2026Q1": None, "2026Q2": "small",
        "2026Q3": "complementary"}
    eqs = [_total(["2026Q1", "2026Q2", "2026Q3"], known=114), _total(["2026Q2", "2026Q3"], total="all"),
           _total(["iop", "residential"], total="all")]
    assert _numerator_ranges(rows, out, eqs) == {"2026Q2": (0, 30), "2026Q3": (24, 54)}


def test_c_quarter_without_the_all_rows_value_is_not_tied_to_it():
    # 5 episodes of the period have no quarter: all = 55 is not 2026Q3 = 50, so the all row
    # gives 2026Q3 away no more than it would without the option. The period's quarters alone
    # (one row) are not taken as a published total either: that "total" would be 2026Q3
    # itself. The result is the one without period_quarters (2026Q2 small, 2026Q3 its
    # complement, all shown).
    rows = _quarter_rows()
    rows[0] = _rate("all", None, 55, 110)
    rows[2] = _rate("level_group", "residential", 35, 70)
    out = apply_rates(rows, period_quarters={"2026Q3"})
    assert out == apply_rates(rows)
    assert {_name(o): o["suppression"] for o in out}["2026Q3"] == "complementary"


def test_c_a_window_no_longer_than_the_period_is_the_all_row_not_a_published_total():
    # period = trend window = 2026Q1..2026Q3; all 83/85 = 30/30 + 25/25 + 28/30. The all row and
    # 2026Q3 have complements of 2 (small): both hidden. The quarters add up to the all row
    # (hidden), not to a total published elsewhere, so the line holds two hidden cells and
    # 2026Q1, 2026Q2 stay. (Taking the window's 83 as published would pin 2026Q3 to 83 - 55.)
    # Attacker: 2026Q3 = all - 55, all <= 85, 2026Q3 <= 30: all in [55, 85], 2026Q3 in [0, 30].
    rows = [_rate("all", None, 83, 85), _rate("quarter", "2026Q1", 30, 30), _rate("quarter", "2026Q2", 25, 25),
            _rate("quarter", "2026Q3", 28, 30)]
    out = apply_rates(rows, period_quarters=["2026Q1", "2026Q2", "2026Q3"])
    assert [o["suppression"] for o in out] == ["small", None, None, "small"]
    eqs = [_total(["2026Q1", "2026Q2", "2026Q3"], total="all")]
    assert _numerator_ranges(rows, out, eqs) == {"all": (55, 85), "2026Q3": (0, 30)}


def test_c_level_group_by_quarter_inside_the_period_is_the_level_group_row():
    # period 2026Q3; trend 2026Q2..2026Q3. The level-group rows (the period) are the 2026Q3
    # cells of the level_group,quarter family:
    #                 2026Q2   2026Q3 | level_group row (period)
    #   iop            3/12    40/80  |  40/80
    #   residential   50/110   60/120 |  60/120
    #   all (period)                  | 100/200
    # iop|2026Q2 (3, complement 9) is small. Its iop line (43, taken as published) needs a
    # second cell: iop|2026Q3; its quarter line (53) needs residential|2026Q2. iop|2026Q3 is
    # the iop row, which must go too; the level-group line (iop + residential = all, shown)
    # then needs residential (60), which is residential|2026Q3: that goes as well (and the
    # 2026Q3 line, 100, then has two hidden). Denominators are all large.
    lq = "level_group,quarter"
    rows = [_rate("all", None, 100, 200), _rate("level_group", "iop", 40, 80),
            _rate("level_group", "residential", 60, 120), _rate(lq, "iop|2026Q2", 3, 12),
            _rate(lq, "iop|2026Q3", 40, 80), _rate(lq, "residential|2026Q2", 50, 110),
            _rate(lq, "residential|2026Q3", 60, 120)]
    out = apply_rates(rows, period_quarters={"2026Q3"})
    assert {_name(o): o["suppression"] for o in out} == {
        "all": None, "iop": "complementary", "residential": "complementary",
        "iop|2026Q2": "small", "iop|2026Q3": "complementary", "residential|2026Q2": "complementary",
        "residential|2026Q3": "complementary"}
    # Attacker, with b = iop|2026Q3: iop|2026Q2 = 43 - b <= 12 gives b >= 31, so b in [31, 43]
    # and every hidden numerator ranges over 12 values (iop|2026Q2 in [0, 12]).
    eqs = [_total(["iop|2026Q2", "iop|2026Q3"], known=43), _total(["residential|2026Q2", "residential|2026Q3"],
                                                                  known=110),
           _total(["iop|2026Q2", "residential|2026Q2"], known=53),
           _total(["iop|2026Q3", "residential|2026Q3"], known=100),
           _total(["iop|2026Q3"], total="iop"), _total(["residential|2026Q3"], total="residential"),
           _total(["iop", "residential"], total="all")]
    ranges = _numerator_ranges(rows, out, eqs)
    assert ranges == {"iop|2026Q2": (0, 12), "iop|2026Q3": (31, 43), "iop": (31, 43),
                      "residential|2026Q2": (41, 53), "residential|2026Q3": (57, 69), "residential": (57, 69)}
    _assert_nothing_recoverable(rows, out, eqs)
    # without the period, the iop row (40) stays shown beside the hidden iop|2026Q3 (40)
    before = {_name(o): o["numerator"] for o in apply_rates(rows)}
    assert before["iop|2026Q3"] is None and before["iop"] == 40


def _trend_rows(cells, groups, quarters, period):
    """The rows analyze discloses together: all, level_group (the period), quarter and
    level_group,quarter (the trend window), from cells {(group, quarter): (numerator, denominator)}."""
    def add(keys):
        return sum(cells[k][0] for k in keys), sum(cells[k][1] for k in keys)

    rows = [_rate("all", None, *add([(g, q) for g in groups for q in period]))]
    rows += [_rate("level_group", g, *add([(g, q) for q in period])) for g in groups]
    rows += [_rate("quarter", q, *add([(g, q) for g in groups])) for q in quarters]
    rows += [_rate("level_group,quarter", f"{g}|{q}", *cells[(g, q)]) for g in groups for q in quarters]
    return rows


def test_c_a_small_quarter_of_the_trend_costs_neither_the_headline_nor_the_period():
    # period 2026Q4, trend 2026Q1..2026Q4:
    #                 2026Q1   2026Q2   2026Q3   2026Q4 | level_group row (period)
    #   iop           40/100    3/50    45/90   50/110  |  50/110
    #   residential   60/130    4/60    70/150  80/170  |  80/170
    #   quarter row  100/230    7/110  115/240 130/280  |  all 130/280
    # 2026Q2's numerators (3, 4 and the quarter row 7) are small. Each quarter row is the total
    # of its column of cells (tied to it, hidden or not); the trend's total (352) and each
    # group's (iop 138, residential 214) are taken as published. The trend line needs a second
    # hidden quarter: the smallest, 2026Q1 (100); its column then one cell (iop|2026Q1, 40);
    # the residential line (4 hidden) one more: residential|2026Q1 (60). Every line now holds
    # two hidden cells or none, with sums 107, 43, 64. The all row, the level-group rows and
    # 2026Q3..Q4 stay shown.
    groups, quarters = ["iop", "residential"], ["2026Q1", "2026Q2", "2026Q3", "2026Q4"]
    cells = {("iop", "2026Q1"): (40, 100), ("iop", "2026Q2"): (3, 50), ("iop", "2026Q3"): (45, 90),
             ("iop", "2026Q4"): (50, 110), ("residential", "2026Q1"): (60, 130), ("residential", "2026Q2"): (4, 60),
             ("residential", "2026Q3"): (70, 150), ("residential", "2026Q4"): (80, 170)}
    rows = _trend_rows(cells, groups, quarters, ["2026Q4"])
    out = apply_rates(rows, period_quarters=["2026Q4"])
    reasons = {_name(o): o["suppression"] for o in out if o["suppression"]}
    assert reasons == {"2026Q2": "small", "iop|2026Q2": "small", "residential|2026Q2": "small",
                       "2026Q1": "complementary", "iop|2026Q1": "complementary",
                       "residential|2026Q1": "complementary"}
    assert all(o["denominator"] == r["denominator"] for o, r in zip(out, rows))
    # With x = iop|2026Q2 and y = residential|2026Q2: iop|2026Q1 = 43 - x, residential|2026Q1
    # = 64 - y, 2026Q2 = x + y, 2026Q1 = 107 - x - y; x in [0, 43], y in [0, 60] (60 is
    # residential|2026Q2's denominator): every hidden numerator ranges over 43 values or more.
    eqs = [_total([f"{g}|{q}" for g in groups], total=q) for q in quarters] + [
        _total(quarters, known=352), _total([f"iop|{q}" for q in quarters], known=138),
        _total([f"residential|{q}" for q in quarters], known=214), _total(["2026Q4"], total="all"),
        _total(["iop|2026Q4"], total="iop"), _total(["residential|2026Q4"], total="residential"),
        _total(groups, total="all")]
    assert _numerator_ranges(rows, out, eqs) == {
        "2026Q1": (107 - 43 - 60, 107), "2026Q2": (0, 43 + 60), "iop|2026Q1": (0, 43), "iop|2026Q2": (0, 43),
        "residential|2026Q1": (4, 64), "residential|2026Q2": (0, 60)}
    _assert_nothing_recoverable(rows, out, eqs)


# Generative: random trend tables; the attacker knows every shown count and the identities the
# rows obey (all = level groups = the period's quarters; a level group = its cells in the
# period; a quarter = its cells). No total is assumed published: the engine assumes more
# (the trend's totals), which only ever hides more.
_cell = st.one_of(st.integers(0, 12), st.integers(11, 300))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 3), st.integers(2, 4), st.integers(1, 2), st.data())
def test_c_trend_and_period_nothing_small_shown_and_nothing_recoverable(n_groups, n_quarters, n_period, data):
    groups = ["iop", "residential", "php"][:n_groups]
    quarters = [f"2026Q{i + 1}" for i in range(n_quarters)]
    period = quarters[-min(n_period, n_quarters):]
    pairs = {(g, q): data.draw(st.tuples(_cell, _cell)) for g in groups for q in quarters}
    cells = {k: (a, a + b) for k, (a, b) in pairs.items()}
    rows = _trend_rows(cells, groups, quarters, period)
    out = apply_rates(rows, period_quarters=set(period))
    eqs = [_total(groups, total="all"), _total(period, total="all")]
    eqs += [_total([f"{g}|{q}" for q in period], total=g) for g in groups]
    eqs += [_total([f"{g}|{q}" for g in groups], total=q) for q in quarters]
    for col in ("numerator", "denominator"):
        values = {_name(r): r[col] for r in rows}
        hidden = {_name(o): o[col] is None for o in out}
        for c, v in values.items():
            assert hidden[c] or (v == out[[_name(o) for o in out].index(c)][col] and not 1 <= v <= 10)
        unknown = sorted(c for c in values if hidden[c])
        pos = {c: k for k, c in enumerate(unknown)}
        a, b = [], []
        for coefs, const in eqs:
            row, rhs = np.zeros(len(unknown)), float(const)
            for c, k in coefs.items():
                if hidden[c]:
                    row[pos[c]] += k
                else:
                    rhs -= k * values[c]
            if row.any():
                a.append(row)
                b.append(rhs)
        for c in unknown:
            if not a or values[c] == 0:
                continue
            obj = np.zeros(len(unknown))
            obj[pos[c]] = 1
            lo = linprog(obj, A_eq=np.array(a), b_eq=np.array(b), bounds=(0, None), method="highs")
            hi = linprog(-obj, A_eq=np.array(a), b_eq=np.array(b), bounds=(0, None), method="highs")
            assert lo.status == 0
            width = -hi.fun - lo.fun if hi.status == 0 else np.inf
            assert width > 10, (col, c, values[c], lo.fun, period)
    for o in out:  # a shown rate has both counts shown and no small complement
        if o["rate"] is not None:
            assert o["numerator"] is not None and o["denominator"] is not None
            assert not 1 <= o["denominator"] - o["numerator"] <= 10
