"""Rates and 2x2 tables against statsmodels / scipy / hand arithmetic and Newcombe (1998)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pipelines.stats.proportions import (
    clopper_pearson,
    odds_ratio,
    risk_difference,
    risk_ratio,
    wilson,
)
from pipelines.stats.proportions import (
    test_2x2 as table_test,
)
from pipelines.stats.results import NotEstimable

REF = json.loads((Path(__file__).parent / "results" / "proportions.json").read_text())
TOL = REF["tolerance"]


@pytest.mark.parametrize("row", REF["rates"], ids=lambda r: f"{r['events']}/{r['n']}")
def test_rate_intervals_match_statsmodels(row):
    w = wilson(row["events"], row["n"])
    cp = clopper_pearson(row["events"], row["n"])
    assert (w.ci_low, w.ci_high) == pytest.approx(row["wilson"], abs=TOL)
    assert (cp.ci_low, cp.ci_high) == pytest.approx(row["clopper_pearson"], abs=TOL)
    assert w.estimate == row["events"] / row["n"] and w.method == "wilson"


def test_wilson_by_hand():
    # 5/10, z = 1.959964: centre 0.5, half-width z*sqrt(0.025 + z^2/400)/(1 + z^2/10)
    z = 1.959963984540054
    half = z * math.sqrt(0.25 / 10 + z * z / 400) / (1 + z * z / 10)
    w = wilson(5, 10)
    assert w.ci_low == pytest.approx(0.5 - half, abs=1e-12)
    assert w.ci_high == pytest.approx(0.5 + half, abs=1e-12)


@pytest.mark.parametrize(
    "row", REF["newcombe1998_method10"], ids=lambda r: f"{r['e1']}/{r['n1']}-{r['e0']}/{r['n0']}"
)
def test_newcombe_hybrid_score_matches_published_table(row):
    r = risk_difference(row["e1"], row["n1"], row["e0"], row["n0"])
    assert r.method == "newcombe-hybrid-score"
    assert r.estimate == pytest.approx(row["rd"], abs=5e-5)
    # published to 4 decimals
    assert r.ci_low == pytest.approx(row["ci"][0], abs=5e-5)
    assert r.ci_high == pytest.approx(row["ci"][1], abs=5e-5)


@pytest.mark.parametrize("row", REF["tables"], ids=lambda r: f"{r['e1']}/{r['n1']}-{r['e0']}/{r['n0']}")
def test_ratios_and_tests_match_statsmodels_table2x2(row):
    args = (row["e1"], row["n1"], row["e0"], row["n0"])
    rr, orr, t = risk_ratio(*args), odds_ratio(*args), table_test(*args)
    assert rr.estimate == pytest.approx(row["rr"], rel=1e-9)
    assert (rr.ci_low, rr.ci_high) == pytest.approx(row["rr_ci"], rel=1e-9)
    assert orr.estimate == pytest.approx(row["or"], rel=1e-9)
    assert (orr.ci_low, orr.ci_high) == pytest.approx(row["or_ci"], rel=1e-9)
    if row["min_expected"] < 5:
        assert t.method == "fisher-exact"
        assert t.p_value == pytest.approx(row["fisher_p"], rel=1e-9)
    else:
        assert t.method == "pearson-chi-square"
        assert t.statistic == pytest.approx(row["chi2"], rel=1e-9)
        assert t.p_value == pytest.approx(row["chi2_p"], rel=1e-9)
    assert (rr.note is not None) == (0 in (args[0], args[1] - args[0], args[2], args[3] - args[2]))


def test_ratios_by_hand():
    # 15/40 vs 8/45: RR = 0.375/0.17778 = 2.109375; se(log RR) = sqrt(1/15 - 1/40 + 1/8 - 1/45)
    rr = risk_ratio(15, 40, 8, 45)
    assert rr.estimate == pytest.approx((15 / 40) / (8 / 45))
    assert rr.se == pytest.approx(math.sqrt(1 / 15 - 1 / 40 + 1 / 8 - 1 / 45))
    orr = odds_ratio(15, 40, 8, 45)
    assert orr.estimate == pytest.approx((15 * 37) / (25 * 8))
    assert orr.se == pytest.approx(math.sqrt(1 / 15 + 1 / 25 + 1 / 8 + 1 / 37))


def test_haldane_correction_with_a_zero_cell():
    rr = risk_ratio(0, 25, 6, 30)
    assert rr.estimate == pytest.approx((0.5 / 26) / (6.5 / 31))
    assert "Haldane" in rr.note


def test_not_estimable_cases():
    assert isinstance(wilson(0, 0), NotEstimable)
    assert isinstance(risk_ratio(0, 10, 0, 12), NotEstimable)
    assert isinstance(odds_ratio(10, 10, 12, 12), NotEstimable)
    assert isinstance(risk_difference(1, 0, 2, 5), NotEstimable)
