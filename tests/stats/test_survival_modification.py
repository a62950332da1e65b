"""Survival (KM, Cox, log-rank) against statsmodels, and effect modification."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy.special import expit
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import SurvfuncRight

from pipelines.stats.design import build_design, start_from, subset, with_column
from pipelines.stats.gcomp import outcome_model
from pipelines.stats.modification import effect_modification, whole_population_starts
from pipelines.stats.propensity import fit_propensity
from pipelines.stats.survival import cox_ph, kaplan_meier, logrank


@pytest.fixture(scope="module")
def surv():
    rng = np.random.default_rng(3)
    n = 800
    z = rng.binomial(1, 0.5, n)
    t = np.round(rng.exponential(100 * np.exp(-0.4 * z))) + 1
    c = np.round(rng.uniform(20, 200, n))
    return np.minimum(t, c), (t <= c).astype(float), z, rng.integers(1, 4, n).astype(float)


def test_kaplan_meier_matches_statsmodels(surv):
    t, d, _, w = surv
    for weights in (None, w):
        km = kaplan_meier(t, d, weights)
        ref = SurvfuncRight(t, d, freq_weights=weights)
        np.testing.assert_allclose(km.time, ref.surv_times)
        np.testing.assert_allclose(km.survival, ref.surv_prob, atol=1e-12)
    km = kaplan_meier(t, d, at=(30,))
    assert km.at_times[30.0]["at_risk"] == int((t >= 30).sum())
    assert km.ci_low[5] < km.survival[5] < km.ci_high[5]


def test_cox_matches_phreg_with_robust_covariance(surv):
    t, d, z, _w = surv
    r = cox_ph(t, d, z)
    ref = PHReg(t, z[:, None].astype(float), status=d, ties="breslow").fit(groups=np.arange(t.size))
    assert np.log(r.hr.estimate) == pytest.approx(ref.params[0], abs=1e-8)
    assert r.hr.se == pytest.approx(ref.bse[0], rel=1e-6)


def test_weighted_cox_equals_phreg_on_replicated_rows(surv):
    t, d, z, w = surv
    r = cox_ph(t, d, z, w)
    rep = np.repeat(np.arange(t.size), w.astype(int))
    ref = PHReg(t[rep], z[rep][:, None].astype(float), status=d[rep], ties="breslow").fit()
    assert np.log(r.hr.estimate) == pytest.approx(ref.params[0], abs=1e-8)


def test_ph_check_flags_crossing_hazards():
    rng = np.random.default_rng(9)
    n = 4000
    z = rng.binomial(1, 0.5, n)
    # arm 1: Weibull shape 3 (hazard rising), arm 0: exponential, similar medians
    t = np.where(z == 1, 80 * rng.weibull(3.0, n), rng.exponential(100, n))
    t = np.ceil(np.minimum(t, 365))
    d = (t < 365).astype(float)
    assert cox_ph(t, d, z).ph_test.p_value < 0.001
    t2 = np.ceil(rng.exponential(100 * np.exp(-0.3 * z)))
    assert cox_ph(t2, np.ones(n), z).ph_test.p_value > 0.001


def test_logrank_detects_difference(surv):
    t, d, z, _ = surv
    assert logrank(t, d, z).p_value < 0.01


def test_effect_modification_detects_and_tests_by_hand():
    rng = np.random.default_rng(21)
    n = 12000
    x = rng.normal(size=n)
    severe = rng.random(n) < 0.5
    a = rng.random(n) < expit(0.3 * x - 0.5 * severe)
    # IOP helps the less severe (+0.8 log-odds) and harms the severe (-0.8)
    y = (rng.random(n) < expit(0.2 * x + np.where(severe, -0.8, 0.8) * a)).astype(float)
    frame = pl.DataFrame({"x": x, "severe": severe})
    res = effect_modification(
        y, a, build_design(frame, ("x", "severe")), np.where(severe, "yes", "no"), "severe"
    )
    ests = dict(res.subgroups)
    d_yes, d_no = ests["yes"].rd, ests["no"].rd
    assert d_yes.estimate < 0 < d_no.estimate
    q = (d_yes.estimate - d_no.estimate) ** 2 / (d_yes.se**2 + d_no.se**2)  # two groups: Wald
    assert res.test.statistic == pytest.approx(q, rel=1e-9) and res.test.p_value < 1e-6


def test_effect_modification_from_whole_population_starts_gives_the_same_subgroups():
    # the subgroups' fits start from the whole population's models (comparative tables do
    # this); a start changes Newton's path, not the MLE, so every subgroup estimate is the same
    rng = np.random.default_rng(8)
    n = 6000
    x = rng.normal(size=n)
    sub = rng.integers(0, 3, n)
    a = rng.random(n) < expit(0.4 * x - 0.3 * sub)
    y = (rng.random(n) < expit(-0.2 + 0.5 * x + 0.3 * a * (sub - 1))).astype(float)
    design = build_design(pl.DataFrame({"x": x, "sub": sub.astype(str)}), ("x", "sub"))
    starts = whole_population_starts(y, a, design)
    assert starts is not None
    # each subgroup's started fits are its own MLEs (statsmodels on the subgroup's rows)
    for level in ("0", "1", "2"):
        rows = sub.astype(str) == level
        part = subset(design, rows)
        ps = fit_propensity(part.matrix, a[rows], start=start_from(starts[0], design.columns, part.columns))
        ref = sm.Logit(a[rows].astype(float), part.matrix).fit(disp=0, tol=1e-12)
        np.testing.assert_allclose(ps.fit.params, ref.params, atol=1e-6)
        Xa = with_column(part.matrix, a[rows].astype(float))
        out_start = start_from(starts[1], design.columns, part.columns)  # per arm: (2, p)
        out = outcome_model(y[rows], Xa, start=out_start)
        X, yy, arm = np.asarray(part.matrix), y[rows], a[rows]
        for k, in_arm in enumerate((~arm, arm)):  # reference's model first, then the arm's
            ref = sm.Logit(yy[in_arm], X[in_arm]).fit(disp=0, tol=1e-12).params
            np.testing.assert_allclose(out.params[k], ref, atol=1e-6)
    cold = effect_modification(y, a, design, sub.astype(str), "sub")
    warm = effect_modification(y, a, design, sub.astype(str), "sub", starts=starts)
    for (level, c), (level_w, w) in zip(cold.subgroups, warm.subgroups, strict=True):
        assert level == level_w
        assert w.rd.estimate == pytest.approx(c.rd.estimate, abs=1e-9)
        assert w.rd.se == pytest.approx(c.rd.se, rel=1e-5)
    assert warm.test.p_value == pytest.approx(cold.test.p_value, rel=1e-5)


def test_outcomes_on_the_same_rows_share_each_subgroups_propensity_model(monkeypatch):
    # two outcomes, three subgroups: one propensity model a subgroup (3 fits, not 6), and each
    # outcome's subgroup effect is the AIPW of that subgroup's rows computed directly
    from pipelines.stats import modification
    from pipelines.stats.adjusted import estimate, fit_outcome, prepare

    rng = np.random.default_rng(12)
    n = 6000
    x = rng.normal(size=n)
    sub = rng.integers(0, 3, n).astype(str)
    a = rng.random(n) < expit(0.4 * x)
    y1 = (rng.random(n) < expit(0.5 * x + 0.3 * a)).astype(float)
    y2 = (rng.random(n) < expit(-0.5 * x - 0.4 * a)).astype(float)
    design = build_design(pl.DataFrame({"x": x}), ("x",))
    calls = []
    monkeypatch.setattr(modification, "prepare", lambda *args, **kw: calls.append(1) or prepare(*args, **kw))
    both = modification.effect_modifications([y1, y2], a, design, sub, "sub")
    assert len(calls) == 3
    for y, result in zip((y1, y2), both, strict=True):
        assert [level for level, _ in result.subgroups] == list(dict.fromkeys(sub.tolist()))
        for level, effect in result.subgroups:
            rows = sub == level
            pop = prepare(subset(design, rows), a[rows])
            direct = estimate(pop, y[rows], "aipw", outcome=fit_outcome(pop, y[rows]))
            assert effect.rd.estimate == pytest.approx(direct.rd.estimate, rel=1e-12)
            assert effect.rd.se == pytest.approx(direct.rd.se, rel=1e-12)
    starts = [whole_population_starts(y, a, design) for y in (y1, y2)]
    with pytest.raises(ValueError, match="share one propensity start"):
        modification.effect_modifications([y1, y2], a, design, sub, "sub", starts=[starts[0], None])
