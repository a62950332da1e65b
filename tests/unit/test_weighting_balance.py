"""Weights, effective sample size and balance against hand arithmetic."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.stats.balance import balance_table
from pipelines.stats.design import build_design
from pipelines.stats.results import LogisticFit, PropensityModel
from pipelines.stats.weighting import iptw_weights, kish_ess, multinomial_weights, overlap_weights


def _model(ps, treated):
    ps, treated = np.asarray(ps, float), np.asarray(treated, np.int8)
    fit = LogisticFit(np.zeros(1), ps, treated - ps, np.eye(1), True, 1, 0.0, ps.size, "test")
    return PropensityModel(fit, ps, treated, ("iop", "residential"), None, None, None, ps.size, "test")


PS = [0.5, 0.25, 0.05, 0.8, 0.4, 0.9]
A = [1, 1, 1, 0, 0, 0]


def test_ate_weights_stabilized_and_truncated_by_hand():
    w = iptw_weights(_model(PS, A), "ate", max_weight=None)
    # share treated 1/2: arm 0.5/e, reference 0.5/(1-e)
    np.testing.assert_allclose(w.weights, [1.0, 2.0, 10.0, 2.5, 0.5 / 0.6, 5.0])
    t = iptw_weights(_model(PS, A), "ate", max_weight=4.0)
    np.testing.assert_allclose(t.weights, [1.0, 2.0, 4.0, 2.5, 0.5 / 0.6, 4.0])
    assert t.share_truncated == pytest.approx(2 / 6)
    assert t.dlogw[2, 0] == 0 and t.dlogw[5, 0] == 0 and t.dlogw[0, 0] == pytest.approx(-0.5)


def test_att_and_overlap_weights_by_hand():
    att = iptw_weights(_model(PS, A), "att", stabilize=False, max_weight=None)
    np.testing.assert_allclose(att.weights, [1, 1, 1, 4.0, 0.4 / 0.6, 9.0])
    ato = overlap_weights(_model(PS, A))
    np.testing.assert_allclose(ato.weights, [0.5, 0.75, 0.95, 0.8, 0.4, 0.9])
    assert ato.ess["iop"] == pytest.approx((0.5 + 0.75 + 0.95) ** 2 / (0.25 + 0.5625 + 0.9025))


def test_percentile_truncation():
    w = iptw_weights(_model(PS, A), "ate", max_weight=None, percentile=50)
    cap = np.percentile([1.0, 2.0, 10.0, 2.5, 0.5 / 0.6, 5.0], 50)
    assert w.max_weight == pytest.approx(cap) and w.weights.max() == pytest.approx(cap)


def test_kish_ess():
    assert kish_ess(np.ones(10)) == pytest.approx(10)
    assert kish_ess(np.array([1.0, 3.0])) == pytest.approx(16 / 10)


def test_multinomial_weights_by_hand():
    P = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.1, 0.8, 0.1], [0.25, 0.25, 0.5]])
    codes = np.array([0, 2, 1, 2], dtype=np.int8)
    fit = LogisticFit(np.zeros((2, 1)), P, np.zeros((4, 2)), np.eye(2), True, 1, 0.0, 4, "test")
    pm = PropensityModel(fit, P, codes, ("res", "iop", "php"), None, None, None, 4, "test")
    w = multinomial_weights(pm, stabilize=False, max_weight=None)
    np.testing.assert_allclose(w.weights, [2.0, 1 / 0.6, 1.25, 2.0])
    ws = multinomial_weights(pm, max_weight=None)  # arm shares 1/4, 1/4, 2/4
    np.testing.assert_allclose(ws.weights, [0.5, 1 / 1.2, 0.3125, 1.0])


def test_smd_and_variance_ratio_by_hand():
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 2.0, 6.0], "g": ["a", "a", "b", "a", "b", "b"]})
    d = build_design(frame, ("x", "g"))
    a = np.array([1, 1, 1, 0, 0, 0], bool)
    w = np.array([1.0, 1.0, 2.0, 1.0, 1.0, 1.0])
    b = {r.covariate: r for r in balance_table(d, a, w, "test").rows}
    # x: arm 1,2,3 (mean 2, var 2/3), reference 4,2,6 (mean 4, var 8/3); pooled sd sqrt(5/3)
    sd = np.sqrt((2 / 3 + 8 / 3) / 2)
    assert b["x"].smd_before == pytest.approx((2 - 4) / sd)
    # weighted arm mean (1 + 2 + 6)/4 = 2.25, weighted var (1 + 4 + 18)/4 - 2.25^2
    assert b["x"].smd_after == pytest.approx((2.25 - 4) / sd)
    assert b["x"].variance_ratio_after == pytest.approx(((1 + 4 + 18) / 4 - 2.25**2) / (8 / 3))
    # g: reference level ("b" and "a" tie at 3; the reference is the first most frequent) shown too
    levels = {k for k in b if k.startswith("g=")}
    assert levels == {"g=a", "g=b"}
    pa_arm, pa_ref = 2 / 3, 1 / 3
    sd_g = np.sqrt((pa_arm * (1 - pa_arm) + pa_ref * (1 - pa_ref)) / 2)
    assert abs(b["g=a"].smd_before) == pytest.approx((pa_arm - pa_ref) / sd_g)
    assert b["g=a"].smd_before == pytest.approx(-b["g=b"].smd_before)


def test_overlap_weights_balance_exactly_and_pass():
    rng = np.random.default_rng(5)
    n = 4000
    frame = pl.DataFrame({"x": rng.normal(size=n), "g": rng.choice(["a", "b", "c"], n)})
    from pipelines.stats.adjusted import prepare

    d = build_design(frame, ("x", "g"))
    lin = 1.2 * frame["x"].to_numpy() + (frame["g"].to_numpy() == "b")
    a = rng.random(n) < 1 / (1 + np.exp(-lin))
    pop = prepare(d, a)
    bal = balance_table(d, a, pop.weights["overlap"].weights, "overlap")
    assert bal.max_abs_smd_before > 0.3  # confounded before
    assert bal.max_abs_smd_after < 1e-8 and bal.passed  # Li et al. 2018: exact mean balance


def test_balance_moments_by_hand():
    # the same data as the SMD test: the moments the SMDs are made of, per arm, before and after
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 2.0, 6.0], "g": ["a", "a", "b", "a", "b", "b"],
                          "z": [0.0, 1.0, 1.0, 0.0, 0.0, 1.0]})
    d = build_design(frame, ("x", "g", "z"))
    a = np.array([1, 1, 1, 0, 0, 0], bool)
    w = np.array([1.0, 1.0, 2.0, 1.0, 1.0, 1.0])
    b = {r.covariate: r for r in balance_table(d, a, w, "test").rows}
    x = b["x"]
    assert (x.mean_arm_before, x.mean_reference_before) == (pytest.approx(2.0), pytest.approx(4.0))
    assert x.sd_arm_before == pytest.approx(np.sqrt(2 / 3)) and x.sd_reference_before == pytest.approx(np.sqrt(8 / 3))
    assert x.mean_arm_after == pytest.approx(9 / 4) and x.mean_reference_after == pytest.approx(4.0)
    assert x.sd_arm_after == pytest.approx(np.sqrt(23 / 4 - (9 / 4) ** 2))
    assert (x.weight_arm, x.weight_reference) == (pytest.approx(4.0), pytest.approx(3.0))
    assert not x.binary and b["z"].binary and b["g=a"].binary and b["g=b"].binary
    # g=a: arm a,a,b (2/3), reference a,b,b (1/3); weighted arm (1 + 1 + 0)/4; the reference level too
    assert b["g=a"].mean_arm_before == pytest.approx(2 / 3) and b["g=a"].mean_reference_before == pytest.approx(1 / 3)
    assert b["g=a"].mean_arm_after == pytest.approx(2 / 4) and b["g=b"].mean_arm_after == pytest.approx(2 / 4)
    assert b["g=b"].sd_arm_before == pytest.approx(np.sqrt(1 / 3 * 2 / 3))
    # z: arm 0,1,1 weighted (0 + 1 + 2)/4
    assert b["z"].mean_arm_after == pytest.approx(3 / 4) and b["z"].sd_arm_after == pytest.approx(np.sqrt(3 / 16))


def test_balance_moments_agree_between_dense_and_compact_designs():
    rng = np.random.default_rng(8)
    n = 3000
    frame = pl.DataFrame({"x": rng.normal(size=n), "g": rng.choice(["a", "b", "c"], n),
                          "k": rng.integers(0, 2, n).astype(float)})
    a = rng.random(n) < 0.4
    w = rng.uniform(0.5, 3.0, n)
    dense = {r.covariate: r for r in balance_table(build_design(frame, ("x", "g", "k"), compact=False), a, w, "t").rows}
    compact = {r.covariate: r for r in balance_table(build_design(frame, ("x", "g", "k"), compact=True), a, w, "t").rows}
    for name, r in dense.items():
        # and against numpy's weighted average on the raw column
        col = (frame["g"] == name[2:]).to_numpy().astype(float) if name.startswith("g=") else frame[name].to_numpy()
        assert r.mean_arm_after == pytest.approx(np.average(col[a], weights=w[a]))
        assert r.sd_reference_after == pytest.approx(np.sqrt(np.cov(col[~a], aweights=w[~a], ddof=0)))
        assert r.mean_reference_before == pytest.approx(col[~a].mean())
        assert r.binary == (name != "x")
        for f in ("mean_arm_before", "sd_arm_before", "mean_reference_after", "sd_arm_after", "weight_arm"):
            assert getattr(compact[name], f) == pytest.approx(getattr(r, f), rel=1e-9), (name, f)
