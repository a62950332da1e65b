"""Follow-up estimates, non-inferiority / equivalence, E-values and multiplicity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from pipelines.stats.followup import followup_estimates
from pipelines.stats.noninferiority import noninferiority
from pipelines.stats.results import Estimate, NotEstimable
from pipelines.stats.sensitivity import adjust_pvalues, e_value, e_value_rr


def test_itt_and_complete_case_by_hand():
    a = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    reached = np.array([1, 1, 1, 0, 1, 1, 0, 0], bool)
    y = np.array([1, 0, 1, np.nan, 1, 0, np.nan, np.nan])
    X = np.ones((8, 1), order="F")
    fe = followup_estimates(y, reached, a, X)
    assert fe.itt.rd.estimate == pytest.approx(2 / 4 - 1 / 4)
    assert fe.complete_case.rd.estimate == pytest.approx(2 / 3 - 1 / 2)
    # follow-up model with arm only: 1/P(reached | arm) is constant within arm, so IPFW = CC
    assert fe.ipw_followup.rd.estimate == pytest.approx(fe.complete_case.rd.estimate)
    assert fe.share_reached_arm == pytest.approx(3 / 4) and fe.share_reached_reference == pytest.approx(2 / 4)


def test_ipw_followup_removes_missing_at_random_bias():
    # Follow-up depends on a covariate that also drives the outcome: CC is biased, IPFW is not.
    rng = np.random.default_rng(8)
    n = 200_000
    x = rng.normal(size=n)
    a = rng.random(n) < 0.5
    y = (rng.random(n) < expit(-0.2 + 0.5 * a + 1.0 * x)).astype(float)
    reached = rng.random(n) < expit(0.3 + 1.5 * x - 0.8 * a)
    truth = np.mean(expit(-0.2 + 0.5 + x)) - np.mean(expit(-0.2 + x))
    X = np.asfortranarray(np.column_stack([np.ones(n), x]))
    fe = followup_estimates(np.where(reached, y, np.nan), reached, a, X)
    assert abs(fe.complete_case.rd.estimate - truth) > 0.02
    assert fe.ipw_followup.rd.estimate == pytest.approx(truth, abs=0.006)
    assert fe.ipw_followup.rd.ci_low < truth < fe.ipw_followup.rd.ci_high


def _rd(est, se):
    return Estimate(est, est - 1.96 * se, est + 1.96 * se, 1000, "aipw", "rd", "ate", se=se)


def test_noninferiority_and_equivalence_by_hand():
    z95, z90 = stats.norm.ppf(0.975), stats.norm.ppf(0.95)
    # RD -1 pp, se 1.5 pp: 95% lower -3.94 > -5 (non-inferior); 90% CI -3.47 .. 1.47 (equivalent)
    r = noninferiority(_rd(-0.01, 0.015), "d", 5.0)
    assert r.ci95_low == pytest.approx(-0.01 - z95 * 0.015) and r.ci90_high == pytest.approx(
        -0.01 + z90 * 0.015
    )
    assert r.noninferior and r.equivalent and "equivalent" in r.conclusion
    assert r.p_noninferiority == pytest.approx(stats.norm.sf((-0.01 + 0.05) / 0.015))
    # RD -3 pp, se 1.5 pp: 95% lower -5.94 < -5: inconclusive
    r = noninferiority(_rd(-0.03, 0.015), "d", 5.0)
    assert not r.noninferior and not r.equivalent and r.conclusion.startswith("inconclusive")
    # RD -10 pp, se 1 pp: worse by more than the margin
    r = noninferiority(_rd(-0.10, 0.01), "d", 5.0)
    assert "worse" in r.conclusion
    # RD +4 pp, se 1 pp, margin 3: better (lower 95% > 0) but not equivalent (upper 90% > 3)
    r = noninferiority(_rd(0.04, 0.01), "d", 3.0)
    assert r.noninferior and not r.equivalent and "better" in r.conclusion
    r = noninferiority(NotEstimable("too few"), "d")
    assert r.noninferior is None and "not estimable" in r.conclusion


def test_e_value_published_example():
    # VanderWeele & Ding 2017: RR 3.9 (95% CI 1.8 to 8.7) -> E-values 7.26 and 3.0
    ev = e_value_rr(3.9, 1.8, 8.7)
    assert ev.e_value == pytest.approx(3.9 + np.sqrt(3.9 * 2.9)) and round(ev.e_value, 2) == 7.26
    assert ev.e_value_ci == pytest.approx(3.0)
    # protective estimates use the inverse; an interval containing 1 gives 1
    assert e_value_rr(0.5, 0.3, 0.8).e_value == pytest.approx(2 + np.sqrt(2))
    assert e_value_rr(0.5, 0.3, 0.8).e_value_ci == pytest.approx(1.25 + np.sqrt(1.25 * 0.25))
    assert e_value_rr(1.2, 0.9, 1.6).e_value_ci == 1.0


def test_e_value_from_rd_uses_arm_risks():
    est = Estimate(0.1, 0.02, 0.18, 500, "aipw", "rd", "ate", risk_arm=0.5, risk_reference=0.4)
    ev = e_value(est)
    assert ev.rr == pytest.approx(1.25)
    assert ev.e_value == pytest.approx(1.25 + np.sqrt(1.25 * 0.25))
    assert ev.e_value_ci == pytest.approx(1.05 + np.sqrt(1.05 * 0.05))  # (0.4 + 0.02) / 0.4


def test_holm_and_bh_by_hand():
    p = [0.01, 0.04, 0.03, None, 0.005]
    r = adjust_pvalues(p)
    # Holm on sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 0.02, 0.03, 0.06, 0.06
    assert r.p_holm[4] == pytest.approx(0.02) and r.p_holm[0] == pytest.approx(0.03)
    assert r.p_holm[2] == pytest.approx(0.06) and r.p_holm[1] == pytest.approx(0.06)
    # BH: p * m / rank = 0.02, 0.02, 0.04, 0.04, then the running minimum from the top
    assert r.p_bh[4] == pytest.approx(0.02) and r.p_bh[0] == pytest.approx(0.02)
    assert r.p_bh[2] == pytest.approx(0.04) and r.p_bh[1] == pytest.approx(0.04)
    assert np.isnan(r.p_holm[3]) and r.n == 4


def test_holm_matches_statsmodels_on_random_p_values():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(2)
    for m in (1, 2, 7, 25):
        p = rng.random(m) ** 3
        np.testing.assert_allclose(adjust_pvalues(list(p)).p_holm, multipletests(p, method="holm")[1])
