"""g-computation and AIPW fit one outcome model per arm: unbiased when the arm's effect changes with
severity, where one model with shared slopes is not."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy.special import expit

from pipelines.stats.adjusted import estimate, fit_outcome, prepare
from pipelines.stats.design import build_design


@pytest.fixture(scope="module")
def severity_data():
    # 60,000 episodes; sicker people go residential; IOP helps the mild (+1.0 on the log-odds)
    # and harms the severe (-1.6): the effect changes sign with severity.
    rng = np.random.default_rng(27)
    n = 60_000
    sev = rng.choice(3, size=n, p=[0.4, 0.35, 0.25])
    x = rng.normal(size=n)
    a = rng.random(n) < expit(1.6 - 1.8 * sev + 0.3 * x)
    base = -0.3 + 0.4 * x - 0.5 * sev
    p0, p1 = expit(base), expit(base + 1.0 - 1.3 * sev)
    y = (rng.random(n) < np.where(a, p1, p0)).astype(float)
    truth = float((p1 - p0).mean())  # the sample's average effect, from the true risks
    frame = pl.DataFrame({"x": x, "severity": np.array(["mild", "moderate", "severe"])[sev]})
    return frame, a, y, truth


def test_per_arm_models_recover_an_effect_that_changes_with_severity(severity_data):
    frame, a, y, truth = severity_data
    pop = prepare(build_design(frame, ("x", "severity")), a)
    out = fit_outcome(pop, y)
    for method in ("gcomp", "aipw"):
        e = estimate(pop, y, method, outcome=out).rd
        assert abs(e.estimate - truth) < 2.5 * e.se, method
        assert e.ci_low < truth < e.ci_high

    # the check has power: g-computation with one shared-slope model (statsmodels GLM, the arm
    # as one more term) misses the same truth by more than 2.5 of its standard errors
    x = frame["x"].to_numpy()
    sev = frame["severity"].to_numpy()
    X = np.column_stack([np.ones(x.size), x, sev == "moderate", sev == "severe"]).astype(float)
    shared = sm.GLM(y, np.column_stack([X, a]), family=sm.families.Binomial()).fit()
    d = shared.predict(np.column_stack([X, np.ones(x.size)])) - shared.predict(np.column_stack([X, np.zeros(x.size)]))
    se = estimate(pop, y, "gcomp", outcome=out).rd.se
    assert abs(d.mean() - truth) > 2.5 * se


def test_per_arm_models_match_statsmodels_fitted_per_arm(severity_data):
    frame, a, y, _ = severity_data
    pop = prepare(build_design(frame, ("x", "severity")), a)
    out = fit_outcome(pop, y)
    X = np.asarray(pop.Xa[:, :-1])
    for k, rows in enumerate((~a, a)):  # fits[0]: the reference arm's model, fits[1]: the arm's
        ref = sm.Logit(y[rows], X[rows]).fit(disp=0, tol=1e-12).params
        np.testing.assert_allclose(out.fits[k].params, ref, atol=1e-7)
    # standardized risks: each arm's model predicted for everyone and averaged
    e = estimate(pop, y, "gcomp", outcome=out).rd
    m1 = expit(X @ out.fits[1].params).mean()
    m0 = expit(X @ out.fits[0].params).mean()
    assert (e.risk_arm, e.risk_reference) == pytest.approx((m1, m0), abs=1e-12)


def test_a_level_missing_from_an_arm_is_said_on_the_row():
    # a site with no IOP episodes: the IOP model predicts its people at the IOP reference level
    rng = np.random.default_rng(5)
    n = 4_000
    site = rng.choice(["a", "b", "c"], size=n)
    a = (rng.random(n) < 0.5) & (site != "c")
    y = (rng.random(n) < 0.4 + 0.1 * a).astype(float)
    pop = prepare(build_design(pl.DataFrame({"site_id": site}), ("site_id",)), a)
    out = fit_outcome(pop, y)
    assert out.extrapolated == (0, int((site == "c").sum()))
    e = estimate(pop, y, "gcomp", outcome=out).rd
    assert f"{int((site == 'c').sum())} people predicted under arm" in e.note


def test_a_small_extrapolated_count_is_not_written_exactly():
    from types import SimpleNamespace

    from pipelines.stats.gcomp import extrapolation_note

    note = extrapolation_note(SimpleNamespace(extrapolated=(3, 0, 25)), ("residential", "iop", "php"))
    assert note == ("1-10 people predicted under residential from levels with no residential episodes; "
                    "25 people predicted under php from levels with no php episodes")
