"""Non-inferiority with a relative (risk-ratio) margin beside the absolute one, and the rule
choosing which gives the headline. Expected values are worked out here from the definitions
(one-sided tests on log RR with its standard error, scipy's normal and t distributions), never
read back from the code under test."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from pipelines.stats.noninferiority import margin_basis, noninferiority
from pipelines.stats.results import Estimate, NotEstimable


def _rd(est, se, p0=None, df=None):
    return Estimate(
        est,
        est - 1.96 * se,
        est + 1.96 * se,
        1000,
        "aipw",
        "rd",
        "ate",
        se=se,
        risk_reference=p0,
        risk_arm=None if p0 is None else p0 + est,
        df=df,
    )


def _rr(ratio, se_log, p0=None, df=None):
    lr = math.log(ratio)
    return Estimate(
        ratio,
        math.exp(lr - 1.96 * se_log),
        math.exp(lr + 1.96 * se_log),
        1000,
        "aipw",
        "rr",
        "ate",
        se=se_log,
        risk_reference=p0,
        df=df,
    )


def _pair(ratio, se_log, p0, se_rd=0.01, df=None):
    return _rd(p0 * ratio - p0, se_rd, p0, df), _rr(ratio, se_log, p0, df)


def test_relative_noninferior_and_equivalent_by_hand():
    # RR 1.10, se(log RR) 0.06, margin 0.8 (equivalence band 0.8 .. 1.25)
    z95, z90 = stats.norm.ppf(0.975), stats.norm.ppf(0.95)
    lr, se = math.log(1.10), 0.06
    rd, rr = _pair(1.10, se, 0.5)
    r = noninferiority(rd, "d", 5.0, rr=rr, margin_ratio=0.8, basis="relative")
    assert r.rr == pytest.approx(1.10)
    assert r.rr_ci95_low == pytest.approx(math.exp(lr - z95 * se))
    assert r.rr_ci95_high == pytest.approx(math.exp(lr + z95 * se))
    assert r.rr_ci90_low == pytest.approx(math.exp(lr - z90 * se))
    assert r.rr_ci90_high == pytest.approx(math.exp(lr + z90 * se))  # 1.214 < 1.25
    assert r.noninferior_relative is True and r.equivalent_relative is True
    p_lower = stats.norm.sf((lr - math.log(0.8)) / se)  # H0: RR <= 0.8
    p_upper = stats.norm.sf((math.log(1.25) - lr) / se)  # H0: RR >= 1.25 (the larger here)
    assert r.p_noninferiority_relative == pytest.approx(p_lower)
    assert r.p_equivalence_relative == pytest.approx(max(p_lower, p_upper))
    assert r.p_equivalence_relative == pytest.approx(p_upper)
    assert r.margin_basis == "relative" and r.conclusion == r.conclusion_relative
    assert "equivalent" in r.conclusion_relative and "0.8" in r.conclusion_relative


@pytest.mark.parametrize(
    ("ratio", "se", "ni", "eq", "word"),
    [
        # lower 95% exp(log .85 - 1.96 * .08) = 0.727 < 0.8 < upper 0.994: inconclusive
        (0.85, 0.08, False, False, "inconclusive"),
        # upper 95% exp(log(1/3) + 1.96 * .25) = 0.544 < 0.8: worse
        (1 / 3, 0.25, False, False, "worse"),
        # lower 95% exp(log 1.5 - 1.96 * .1) = 1.23 > 1: better; upper 90% 1.77 > 1.25: not equivalent
        (1.5, 0.10, True, False, "better"),
        # lower 95% exp(log .95 - 1.96 * .05) = 0.861 > 0.8; 90% 0.875 .. 1.031 inside (0.8, 1.25)
        (0.95, 0.05, True, True, "equivalent"),
        # lower 95% exp(log .93 - 1.96 * .07) = 0.811, just above 0.8; 90% 0.829 .. 1.04: equivalent
        (0.93, 0.07, True, True, "equivalent"),
        # lower 95% exp(log .93 - 1.96 * .08) = 0.797, just below 0.8; 90% 0.815 .. 1.06 inside the band:
        # equivalent (two one-sided tests at 5%) though not non-inferior (one-sided at 2.5%), as on the RD scale
        (0.93, 0.08, False, True, "equivalent"),
    ],
)
def test_relative_verdicts(ratio, se, ni, eq, word):
    lr, z95, z90 = math.log(ratio), stats.norm.ppf(0.975), stats.norm.ppf(0.95)
    assert bool(lr - z95 * se > math.log(0.8)) == ni  # the expectation itself, worked from the definition
    assert bool(lr - z90 * se > math.log(0.8) and lr + z90 * se < math.log(1.25)) == eq
    rd, rr = _pair(ratio, se, 0.10)
    r = noninferiority(rd, "d", rr=rr)
    assert r.noninferior_relative is ni and r.equivalent_relative is eq
    assert word in r.conclusion_relative
    assert r.p_noninferiority_relative == pytest.approx(stats.norm.sf((lr - math.log(0.8)) / se))


def test_auto_basis_switches_at_a_reference_rate_of_20_percent():
    # 19.99% is not rounded to "20.0%" where 20% is the line
    for p0, basis, shown in (
        (0.05, "relative", "5.0%"),
        (0.1999, "relative", "19.99%"),
        (0.20, "absolute", "20.0%"),
        (0.45, "absolute", "45.0%"),
    ):
        rd, rr = _pair(1.0, 0.05, p0)
        r = noninferiority(rd, "d", rr=rr)
        assert r.margin_basis == basis, p0
        assert r.conclusion == (r.conclusion_relative if basis == "relative" else r.conclusion_absolute)
        assert (
            r.margin_basis_reason.startswith(basis)
            and f"adjusted residential rate {shown} " in r.margin_basis_reason
        )
    # asked explicitly, the basis is what was asked whatever the rate
    rd, rr = _pair(1.0, 0.05, 0.05)
    assert noninferiority(rd, "d", rr=rr, basis="absolute").margin_basis == "absolute"
    rd, rr = _pair(1.0, 0.05, 0.60)
    r = noninferiority(rd, "d", rr=rr, basis="relative")
    assert r.margin_basis == "relative" and "set in the analysis" in r.margin_basis_reason
    # no reference rate known: absolute, saying why
    assert margin_basis(None)[0] == "absolute"
    assert margin_basis(0.10)[0] == "relative" and margin_basis(0.30)[0] == "absolute"
    # at 5%, a 5-point margin is every success; at 10% it is half of them
    assert "losing all of its successes" in margin_basis(0.05)[1]
    assert "losing 50% of its successes" in margin_basis(0.10)[1]


def test_rare_success_a_third_as_often_is_worse_not_equivalent():
    """A worked example: retained 90 days 1.7% (IOP) vs 5.1% (residential), 2,000 people an
    arm. On ±5 points the 90% interval of the difference lies inside the margin ('equivalent');
    on the risk ratio IOP keeps a third of the successes, far below 0.8: worse."""
    n, p1, p0 = 2000, 0.017, 0.051
    se_rd = math.sqrt(p1 * (1 - p1) / n + p0 * (1 - p0) / n)  # 0.0057
    se_log = math.sqrt((1 - p1) / (p1 * n) + (1 - p0) / (p0 * n))  # delta method: 0.195
    rd = Estimate(p1 - p0, 0, 0, 2 * n, "crude", "rd", "crude", se=se_rd, risk_arm=p1, risk_reference=p0)
    rr = Estimate(p1 / p0, 0, 0, 2 * n, "crude", "rr", "crude", se=se_log, risk_arm=p1, risk_reference=p0)
    r = noninferiority(rd, "retained_90d", 5.0, "iop", "residential", rr=rr)
    z90 = stats.norm.ppf(0.95)
    assert -0.05 < p1 - p0 - z90 * se_rd and p1 - p0 + z90 * se_rd < 0.05  # inside ±5 pp
    assert r.equivalent is True and "equivalent" in r.conclusion_absolute  # the misleading reading
    assert math.exp(math.log(p1 / p0) + stats.norm.ppf(0.975) * se_log) < 0.8  # 0.49
    assert r.noninferior_relative is False and r.equivalent_relative is False
    assert r.margin_basis == "relative"
    assert r.margin_basis_reason.startswith(
        "relative: the residential rate 5.1% is below 20%"
    )  # crude: no "adjusted"
    assert "losing 98% of its successes" in r.margin_basis_reason  # 5 / 5.1
    assert "5.1%" in r.margin_basis_reason and "below 20%" in r.margin_basis_reason
    assert r.conclusion == r.conclusion_relative and r.conclusion.startswith("iop is worse than residential")
    assert "equivalent" not in r.conclusion


def test_t_quantiles_when_the_estimate_has_degrees_of_freedom():
    df = 5.0
    t95, t90 = stats.t.ppf(0.975, df), stats.t.ppf(0.95, df)
    rd, rr = _rd(-0.01, 0.015, 0.5, df=df), _rr(0.97, 0.04, 0.5, df=df)
    r = noninferiority(rd, "d", 5.0, rr=rr)
    assert r.ci95_low == pytest.approx(-0.01 - t95 * 0.015) and r.ci90_high == pytest.approx(
        -0.01 + t90 * 0.015
    )
    assert r.p_noninferiority == pytest.approx(stats.t.sf((-0.01 + 0.05) / 0.015, df))
    assert r.p_equivalence == pytest.approx(
        max(stats.t.sf((-0.01 + 0.05) / 0.015, df), stats.t.sf((0.05 + 0.01) / 0.015, df))
    )
    lr = math.log(0.97)
    assert r.rr_ci95_low == pytest.approx(math.exp(lr - t95 * 0.04))
    assert r.rr_ci90_high == pytest.approx(math.exp(lr + t90 * 0.04))
    assert r.p_noninferiority_relative == pytest.approx(stats.t.sf((lr - math.log(0.8)) / 0.04, df))
    # wider than the normal interval: a t(5) quantile is 2.57, not 1.96
    assert r.ci95_low < -0.01 - stats.norm.ppf(0.975) * 0.015
    # a verdict the t quantile changes: RD -2 pp, se 1.4 pp. Normal: -2 - 1.96 * 1.4 = -4.74 > -5;
    # t(5): -2 - 2.571 * 1.4 = -5.6 < -5
    assert noninferiority(_rd(-0.02, 0.014), "d").noninferior is True
    assert noninferiority(_rd(-0.02, 0.014, df=df), "d").noninferior is False


def test_a_huge_standard_error_gives_an_unbounded_interval_not_an_error():
    rr = Estimate(1.0, 0.0, math.inf, 1000, "aipw", "rr", "ate", se=400.0, risk_reference=0.1)
    r = noninferiority(_rd(0.0, 0.01, 0.1), "d", rr=rr)
    assert r.rr_ci95_high == math.inf and r.rr_ci95_low == 0.0
    assert r.noninferior_relative is False and r.conclusion.startswith("inconclusive")


def test_not_estimable_ratio_and_bad_margins():
    rd = _rd(-0.01, 0.01, 0.05)
    r = noninferiority(rd, "d", rr=NotEstimable("a risk of zero: the ratio is undefined"))
    assert r.margin_basis == "relative" and r.noninferior_relative is None and r.rr is None
    assert r.conclusion.startswith("not estimable") and r.noninferior is True  # the absolute verdict stays
    r = noninferiority(NotEstimable("too few"), "d", rr=NotEstimable("too few"))
    assert r.conclusion == "not estimable: too few" and r.conclusion_relative.startswith("not estimable")
    with pytest.raises(ValueError, match="risk-ratio margin"):
        noninferiority(rd, "d", rr=_rr(1.0, 0.1), margin_ratio=1.25)
    with pytest.raises(ValueError, match="margin basis"):
        noninferiority(rd, "d", basis="both")
    with pytest.raises(ValueError, match="absolute margin"):
        noninferiority(rd, "d", margin_pp=0)
