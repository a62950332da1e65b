"""Disclosure rules on small hand-worked tables (expected values worked out by hand)."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.disclosure import (
    DisclosureError,
    apply_rates,
    check_artifact,
    shown_count,
    suppress_table,
)


def _rate(group, num, den, group_by="level_group", definition="completion"):
    return {
        "definition_id": definition, "definition_version": "1", "group_by": group_by, "group": group,
        "numerator": num, "denominator": den, "rate": num / den if den else None,
        "ci_low": 0.0, "ci_high": 1.0, "ci_method": "wilson", "suppressed": False,
    }


def _by_group(rows):
    return {r["group"]: r for r in rows}


def test_cms_small_numerator_hides_numerator_rate_and_interval_and_a_complement():
    # iop 5/40 is small; the family total of numerators (5 + 30 + 60) is derivable elsewhere,
    # so the next-smallest numerator (30, php) must go too: 5 + 30 = 35 > 10.
    rows = [_rate("iop", 5, 40), _rate("php", 30, 80), _rate("residential", 60, 200)]
    out = _by_group(apply_rates(rows))
    assert out["iop"]["numerator"] is None and out["iop"]["rate"] is None
    assert out["iop"]["ci_low"] is None and out["iop"]["ci_high"] is None
    assert out["iop"]["denominator"] == 40 and out["iop"]["suppressed"] is True
    assert out["php"]["numerator"] is None and out["php"]["suppressed"] is True
    assert out["residential"] == {**rows[2], "suppressed": False, "suppression": None}
    # iop's own numerator is small; php's is withheld only to protect it
    assert (out["iop"]["suppression"], out["php"]["suppression"]) == ("small", "complementary")


def test_cms_small_complement_is_hidden_because_den_minus_num_is_recoverable():
    rows = [_rate("iop", 35, 40), _rate("residential", 100, 200), _rate("php", 50, 90)]
    out = _by_group(apply_rates(rows))
    # 40 - 35 = 5 failures: the numerator goes, and one more numerator (smallest: php 50).
    assert out["iop"]["numerator"] is None and out["iop"]["suppressed"]
    assert out["php"]["numerator"] is None
    assert out["residential"]["numerator"] == 100


def test_cms_small_denominator_hides_the_row_and_a_complementary_denominator():
    rows = [_rate("detox", 0, 7), _rate("iop", 20, 40), _rate("residential", 50, 300)]
    out = _by_group(apply_rates(rows))
    assert out["detox"]["denominator"] is None and out["detox"]["numerator"] is None
    assert out["detox"]["rate"] is None and out["detox"]["suppressed"]
    # 7 + 40 = 47: the denominator total no longer gives 7 back, and the iop rate (which with
    # its numerator would give 40 back) is hidden with it.
    assert out["iop"]["denominator"] is None and out["iop"]["rate"] is None
    assert out["residential"]["denominator"] == 300 and out["residential"]["rate"] == 50 / 300


def test_cms_zero_is_shown_and_large_rows_untouched():
    rows = [_rate("iop", 0, 40), _rate("residential", 200, 300)]
    out = _by_group(apply_rates(rows))
    assert out["iop"]["numerator"] == 0 and not out["iop"]["suppressed"]
    assert out["residential"]["numerator"] == 200


def test_cms_families_are_separate():
    rows = [_rate("iop", 5, 40), _rate("residential", 60, 200), _rate("iop", 20, 40, definition="retention")]
    out = apply_rates(rows)
    assert out[2]["numerator"] == 20 and not out[2]["suppressed"]


def test_cms_two_dimensional_family_protects_both_lines():
    # level x quarter; iop|Q1 = 3 small. Its quarter line (iop, res in Q1) and its level line
    # (iop over Q1, Q2) both need a second hidden cell.
    rows = [
        _rate("iop|2026Q1", 3, 50, group_by="level_group,discharge_quarter"),
        _rate("iop|2026Q2", 30, 50, group_by="level_group,discharge_quarter"),
        _rate("residential|2026Q1", 40, 100, group_by="level_group,discharge_quarter"),
        _rate("residential|2026Q2", 45, 100, group_by="level_group,discharge_quarter"),
    ]
    out = _by_group(apply_rates(rows))
    hidden = {g for g, r in out.items() if r["numerator"] is None}
    assert hidden == {"iop|2026Q1", "iop|2026Q2", "residential|2026Q1", "residential|2026Q2"}


def test_opensafely_redacts_rounds_and_recomputes_the_rate():
    rows = [_rate("iop", 6, 40), _rate("residential", 123, 301), _rate("detox", 3, 4)]
    out = _by_group(apply_rates(rows, rule="opensafely"))
    assert out["iop"]["numerator"] is None and out["iop"]["denominator"] == 40
    assert out["residential"]["numerator"] == 125 and out["residential"]["denominator"] == 300
    assert out["residential"]["rate"] == pytest.approx(125 / 300)
    assert out["residential"]["ci_low"] < 125 / 300 < out["residential"]["ci_high"]
    assert out["detox"]["denominator"] is None and out["detox"]["suppressed"]


def test_suppress_table_hand_worked_cross_table():
    # rows: categories of one covariate; columns: levels of care. Cell (b, iop) = 4 is small.
    df = pd.DataFrame({
        "covariate": ["sex"] * 3,
        "category": ["a", "b", "c"],
        "iop": [50, 4, 60],
        "residential": [70, 30, 80],
    })
    shown, hidden = suppress_table(df, ["iop", "residential"], groups="covariate")
    assert list(shown["category"]) == ["a", "b", "c", "total"]
    assert shown.loc[3, "iop"] == 114 and shown.loc[3, "residential"] == 180
    assert shown.loc[3, "total"] == 294
    # (b, iop) hidden; its row needs a second cell (residential 30); the column of iop needs a
    # second cell (50, the smallest other), and the residential column then another (70).
    assert hidden.loc[1, "iop"] and hidden.loc[1, "residential"]
    assert hidden.loc[0, "iop"]
    assert hidden.sum().sum() >= 4
    assert shown.loc[1, "iop"] is None
    assert not hidden.loc[2, "total"]


def test_suppress_table_small_margin_is_hidden():
    df = pd.DataFrame({"category": ["a", "b"], "iop": [3, 2], "residential": [40, 50]})
    shown, _ = suppress_table(df, ["iop", "residential"])
    assert shown.loc[2, "iop"] is None  # the iop total, 5, is itself a small count
    for col in ("iop", "residential", "total"):
        for v in shown[col]:
            assert v is None or not (1 <= v <= 10)


def test_suppress_table_opensafely_totals_are_sums_of_rounded_cells():
    df = pd.DataFrame({"category": ["a", "b", "c"], "iop": [12, 6, 23], "residential": [0, 33, 47]})
    shown, _ = suppress_table(df, ["iop", "residential"], rule="opensafely")
    assert list(shown["iop"]) == [10, None, 25, 35]
    assert list(shown["residential"]) == [0, 35, 45, 80]
    assert list(shown["total"]) == [10, 35, 70, 115]


def test_check_artifact_refuses_small_counts_and_complements():
    with pytest.raises(DisclosureError):
        check_artifact([{"group": "iop", "n": 7}])
    with pytest.raises(DisclosureError):
        check_artifact([{"numerator": 35, "denominator": 40}])
    with pytest.raises(DisclosureError):
        check_artifact(pd.DataFrame({"iop": ["12", "3"]}), count_cols=["iop"])
    with pytest.raises(DisclosureError):
        check_artifact([{"n": 12}], rule="opensafely")  # not rounded to 5
    check_artifact([{"n": 0, "numerator": None, "denominator": 40, "rate": 0.05}])
    check_artifact([{"n": 11, "mean": 3.0}])


def test_markers_and_stand_alone_counts():
    from pipelines.disclosure import get_rule

    assert get_rule("cms").marker == "*" and get_rule("opensafely").marker == "[REDACTED]"
    assert shown_count(4) is None and shown_count(0) == 0 and shown_count(11) == 11
    assert shown_count(12, "opensafely") == 10


def test_cms_level_of_care_rows_cannot_be_recovered_through_their_level_group_row():
    # residential = short + long + hospital = 5 + 100 + 40 = 145; the iop/detox rows are large.
    rows = [
        _rate(None, 245, 500, group_by="all"),
        _rate("iop", 100, 200), _rate("residential", 145, 300),
        _rate("iop", 100, 200, group_by="level_of_care"),
        _rate("residential_short", 5, 50, group_by="level_of_care"),
        _rate("residential_long", 100, 150, group_by="level_of_care"),
        _rate("residential_hospital", 40, 100, group_by="level_of_care"),
    ]
    out = apply_rates(rows)
    loc = {r["group"]: r["numerator"] for r in out if r["group_by"] == "level_of_care"}
    assert loc["residential_short"] is None
    # Hiding only short (and, for the family total, iop) would leave residential 145 - 100 - 40
    # = 5: a second residential_* numerator has to go as well.
    assert loc["residential_hospital"] is None or loc["residential_long"] is None


def test_kaplan_meier_points_stand_for_zero_or_many_events_and_stop_when_few_at_risk():
    from pipelines.disclosure import apply_km

    # 100 at risk; one event on day 20 (survival 0.99), then 20 events on day 40 (0.99 * 79/99),
    # then the number at risk falls to 9 after day 40.
    time = [20, 40, 60]
    surv = [0.99, 0.99 * 79 / 99, 0.99 * 79 / 99 * 8 / 9]
    at_risk = [100, 99, 9]
    pts = apply_km(time, surv, at_risk, grid_days=15)
    times = [p["time"] for p in pts]
    # day 15: before the first step, nothing to read; day 30: one event since day 0 (not shown:
    # it would give 1 back); day 45: 21 events since day 0 (shown); then 9 at risk: the curve stops.
    assert times == [0.0, 45.0]
    assert pts[-1]["survival"] == surv[1]


def test_comparisons_follow_the_disclosed_rates():
    from pipelines.disclosure import apply_comparative

    rates = apply_rates([_rate("iop", 5, 40), _rate("php", 30, 80), _rate("residential", 60, 200),
                         _rate("iop", 20, 40, definition="retention"),
                         _rate("residential", 100, 200, definition="retention")])
    comparative = {
        "comparisons": [
            {"definition_id": "completion", "arm": "iop", "reference": "residential", "method": "crude",
             "estimate": 5 / 40 - 60 / 200, "ci_low": -0.3, "ci_high": 0.0, "risk_arm": 5 / 40,
             "risk_reference": 0.3, "n_arm": 40, "n_reference": 200},
            {"definition_id": "retention", "arm": "iop", "reference": "residential", "method": "crude",
             "estimate": 0.0, "ci_low": -0.1, "ci_high": 0.1, "risk_arm": 0.5, "risk_reference": 0.5,
             "n_arm": 40, "n_reference": 200},
        ],
        "noninferiority": [{"definition_id": "completion", "method": "crude", "estimate": -0.175,
                            "ci95_low": -0.3, "ci95_high": 0.0, "conclusion": "inconclusive"}],
    }
    out = apply_comparative(comparative, rates)
    hidden, shown = out["comparisons"]
    # iop completion's rate (5/40) is hidden: the difference, its interval and the arm's risk
    # would each give it back.
    assert hidden["suppressed"] and hidden["estimate"] is None and hidden["risk_arm"] is None
    assert hidden["ci_low"] is None and hidden["n_arm"] is None
    assert out["noninferiority"][0]["estimate"] is None and out["noninferiority"][0]["ci95_low"] is None
    # retention is shown whole; the arm sizes equal the shown denominators (40, 200)
    assert not shown["suppressed"] and shown["estimate"] == 0.0 and shown["risk_arm"] == 0.5
    assert (shown["n_arm"], shown["n_reference"]) == (40, 200)


def test_applying_the_rule_twice_changes_nothing():
    # analyze discloses rates.csv; the report applies the rule again to the same rows
    rows = [_rate(None, 215, 549, group_by="all"), _rate("detox", 0, 9), _rate("iop", 35, 40),
            _rate("php", 30, 80), _rate("residential", 150, 420)]
    once = apply_rates(rows)
    twice = apply_rates(once)
    assert twice == once
