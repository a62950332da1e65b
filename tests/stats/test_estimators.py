"""Adjusted estimators against reference values computed by a second route (results/make_reference.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.stats.adjusted import ADJUSTED_METHODS, estimate, fit_outcome, prepare
from pipelines.stats.design import build_design

RESULTS = Path(__file__).parent / "results"
REF = json.loads((RESULTS / "estimators.json").read_text())
TOL = REF["tolerance"]


@pytest.fixture(scope="module")
def effects():
    df = pl.read_csv(RESULTS / REF["data"])
    design = build_design(df, ("x1", "x2", "x3"))
    a = df["arm"].to_numpy().astype(bool)
    y = df["y"].to_numpy().astype(float)
    pop = prepare(design, a, max_weight=None)  # the references are untruncated
    out = fit_outcome(pop, y)
    return {m: estimate(pop, y, m, outcome=out) for m in ADJUSTED_METHODS}


@pytest.mark.parametrize("method", ADJUSTED_METHODS)
def test_point_estimates_match_closed_forms(effects, method):
    assert effects[method].rd.estimate == pytest.approx(REF["point"][method], abs=TOL["point"])


@pytest.mark.parametrize("method", ["iptw_ate", "iptw_att"])
def test_ipw_sandwich_matches_statsmodels_treatment_effect(effects, method):
    ref = REF["statsmodels_ipw"]
    assert effects[method].rd.estimate == pytest.approx(ref["point"][method], abs=TOL["point"])
    assert effects[method].rd.se == pytest.approx(ref["se"][method], rel=TOL["se_statsmodels"])


@pytest.mark.parametrize("method", ["gcomp", "aipw"])
def test_sandwich_close_to_closed_form_variance(effects, method):
    # gcomp: delta method with HC0 coefficients; AIPW: influence function without nuisance terms.
    assert effects[method].rd.se == pytest.approx(REF["se_second_route"][method], rel=TOL["se_closed_form"])


@pytest.mark.parametrize("method", ADJUSTED_METHODS)
def test_sandwich_close_to_bootstrap(effects, method):
    assert effects[method].rd.se == pytest.approx(REF["bootstrap_se"][method], rel=TOL["se_bootstrap"])


def test_rr_is_ratio_of_the_same_arm_risks(effects):
    for e in effects.values():
        assert e.rr.estimate == pytest.approx(e.rd.risk_arm / e.rd.risk_reference)
        assert e.rd.estimate == pytest.approx(e.rd.risk_arm - e.rd.risk_reference)
        assert e.rr.ci_low < e.rr.estimate < e.rr.ci_high


def test_cluster_robust_variance_by_hand():
    # With every person their own cluster the cluster variance is n/(n-1) times the HC0 one.
    from pipelines.stats.inference import variance

    rng = np.random.default_rng(0)
    c = rng.normal(size=50)
    assert variance(c, np.arange(50)) == pytest.approx(50 / 49 * np.sum(c**2))
    # Two clusters: G/(G-1) * (sum_1^2 + sum_2^2)
    cl = np.repeat([0, 1], 25)
    assert variance(c, cl) == pytest.approx(2 * (c[:25].sum() ** 2 + c[25:].sum() ** 2))


def test_single_cluster_falls_back_to_person_level_variance():
    from pipelines.stats.inference import cluster_codes

    assert cluster_codes(np.array(["site-1"] * 5)) is None
    np.testing.assert_array_equal(cluster_codes(np.array(["b", "a", "b"])), [1, 0, 1])


def test_wald_p_value_by_hand_and_none_for_rounding_noise():
    from pipelines.stats.inference import wald

    lo, hi, p = wald(0.1, 0.05)
    # z = 1.959964; 2 * (1 - Phi(2)) = 0.0455003 (standard normal table)
    assert abs(lo - (0.1 - 1.959964 * 0.05)) < 1e-6 and abs(hi - (0.1 + 1.959964 * 0.05)) < 1e-6
    assert abs(p - 0.0455003) < 1e-6
    # a difference that is 0 by construction, computed with rounding error: no p-value
    assert math.isnan(wald(-1.1e-16, 6e-17)[2])
    assert math.isnan(wald(0.0, 0.0)[2])
