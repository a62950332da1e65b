"""Produce the reference values in this folder by a second route (never pipelines.stats).

Run from the repository root:  uv run --frozen python tests/stats/results/make_reference.py

* ``proportions.json``: Wilson and Clopper–Pearson intervals from statsmodels
  ``proportion_confint``; risk ratio / odds ratio with log intervals from statsmodels
  ``Table2x2`` (given the table with 0.5 added to every cell when one is zero: Haldane); Pearson chi-square by
  the textbook formula sum (O - E)^2 / E; Fisher's exact p from scipy; and the published
  values of Newcombe (1998), Table II, method 10, typed in from the paper.
* ``estimators.json``: on ``confounded_2000.csv`` (drawn once by tests/stats/simulate.py),
  IPTW ATE and ATT (Hájek) with their M-estimation standard errors from statsmodels
  ``TreatmentEffect.ipw``; g-computation (regression adjustment with one outcome model per
  arm) and its standard error from statsmodels ``TreatmentEffect.ra`` with a ``Logit`` outcome
  model; overlap-weighted and AIPW estimates from statsmodels ``Logit`` fits (one outcome
  model per arm) and the closed-form formulas; g-computation standard error also by the delta
  method with each arm model's HC0 covariance; AIPW standard error from its influence
  function; and nonparametric bootstrap standard errors (500 resamples) of every estimator
  for checking the sandwich variances.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def proportions() -> dict:
    import statsmodels.api as sm
    from scipy import stats
    from statsmodels.stats.proportion import proportion_confint

    rates = []
    for e, n in [(0, 10), (1, 10), (5, 10), (56, 70), (48, 80), (3, 250), (999, 1000)]:
        w = proportion_confint(e, n, alpha=0.05, method="wilson")
        cp = proportion_confint(e, n, alpha=0.05, method="beta")
        rates.append({"events": e, "n": n, "wilson": list(w), "clopper_pearson": list(cp)})
    tables = []
    for e1, n1, e0, n0 in [(56, 70, 48, 80), (15, 40, 8, 45), (0, 25, 6, 30), (12, 20, 3, 18)]:
        obs = np.array([[e1, n1 - e1], [e0, n0 - e0]], dtype=float)
        # Haldane-Anscombe: 0.5 added to every cell when any is zero (statsmodels' own
        # shift_zeros replaces only the zero cells, a different correction).
        t = sm.stats.Table2x2(obs + 0.5 if obs.min() == 0 else obs, shift_zeros=False)
        exp = obs.sum(1)[:, None] * obs.sum(0)[None, :] / obs.sum()
        chi2 = float(((obs - exp) ** 2 / exp).sum())
        tables.append({
            "e1": e1, "n1": n1, "e0": e0, "n0": n0,
            "rr": float(t.riskratio), "rr_ci": [float(x) for x in t.riskratio_confint()],
            "or": float(t.oddsratio), "or_ci": [float(x) for x in t.oddsratio_confint()],
            "min_expected": float(exp.min()),
            "chi2": chi2, "chi2_p": float(stats.chi2.sf(chi2, 1)),
            "fisher_p": float(stats.fisher_exact(obs.astype(int)).pvalue),
        })  # fmt: skip
    # Newcombe RG. Stat Med 1998;17:873-890, Table II, method 10 (score, no continuity correction).
    newcombe = [
        {"e1": 56, "n1": 70, "e0": 48, "n0": 80, "rd": 0.2, "ci": [0.0524, 0.3339]},
        {"e1": 9, "n1": 10, "e0": 3, "n0": 10, "rd": 0.6, "ci": [0.1705, 0.8090]},
        {"e1": 5, "n1": 56, "e0": 0, "n0": 29, "rd": 0.0893, "ci": [-0.0381, 0.1926]},
        {"e1": 0, "n1": 10, "e0": 0, "n0": 20, "rd": 0.0, "ci": [-0.1611, 0.2775]},
        {"e1": 0, "n1": 10, "e0": 0, "n0": 10, "rd": 0.0, "ci": [-0.2775, 0.2775]},
        {"e1": 10, "n1": 10, "e0": 0, "n0": 20, "rd": 1.0, "ci": [0.6791, 1.0]},
        {"e1": 10, "n1": 10, "e0": 0, "n0": 10, "rd": 1.0, "ci": [0.6075, 1.0]},
    ]
    return {"rates": rates, "tables": tables, "newcombe1998_method10": newcombe, "tolerance": 1e-9}


def _design(df) -> np.ndarray:
    x3 = df["x3"].to_numpy()
    return np.column_stack([
        np.ones(len(df)), df["x1"].to_numpy(), df["x2"].to_numpy().astype(float),
        (x3 == "b").astype(float), (x3 == "c").astype(float),
    ])  # fmt: skip


def _point_estimates(X: np.ndarray, a: np.ndarray, y: np.ndarray) -> dict:
    import statsmodels.api as sm

    e = sm.Logit(a, X).fit(disp=0, tol=1e-12).predict(X)
    out = {}
    w = a / e + (1 - a) / (1 - e)
    out["iptw_ate"] = np.average(y[a == 1], weights=w[a == 1]) - np.average(y[a == 0], weights=w[a == 0])
    wt = np.where(a == 1, 1.0, e / (1 - e))
    out["iptw_att"] = y[a == 1].mean() - np.average(y[a == 0], weights=wt[a == 0])
    wo = np.where(a == 1, 1 - e, e)
    out["overlap"] = np.average(y[a == 1], weights=wo[a == 1]) - np.average(y[a == 0], weights=wo[a == 0])
    # one outcome model per arm (regression adjustment: statsmodels TreatmentEffect.ra, teffects ra)
    fits = [sm.GLM(y[a == k], X[a == k], family=sm.families.Binomial()).fit(tol=1e-12) for k in (0, 1)]
    m0, m1 = (f.predict(X) for f in fits)
    out["gcomp"] = m1.mean() - m0.mean()
    out["aipw"] = np.mean(m1 - m0 + a * (y - m1) / e - (1 - a) * (y - m0) / (1 - e))
    return {k: float(v) for k, v in out.items()}, e, fits, m1, m0


def estimators() -> dict:
    import polars as pl
    import statsmodels.api as sm
    from statsmodels.treatment.treatment_effects import TreatmentEffect

    df = pl.read_csv(HERE / "confounded_2000.csv")
    X = _design(df)
    a = df["arm"].to_numpy().astype(float)
    y = df["y"].to_numpy().astype(float)
    n = len(y)
    point, e, _fits, m1, m0 = _point_estimates(X, a, y)
    te = TreatmentEffect(sm.OLS(y, X), a.astype(int), results_select=sm.Logit(a, X).fit(disp=0, tol=1e-12))
    ate = te.ipw()
    att = te.ipw(effect_group=1)
    se = {
        "iptw_ate": float(ate.summary_frame().iloc[0, 1]),
        "iptw_att": float(att.summary_frame().iloc[0, 1]),
    }
    ipw_point = {
        "iptw_ate": float(ate.summary_frame().iloc[0, 0]),
        "iptw_att": float(att.summary_frame().iloc[0, 0]),
    }
    # g-computation: statsmodels' regression adjustment (GMM over both arm models and the means)
    ps = sm.Logit(a, X).fit(disp=0, tol=1e-12)  # the constructor wants one; RA does not use it
    ra = TreatmentEffect(sm.Logit(y, X), a.astype(int), results_select=ps).ra().summary_frame()
    ra_point, ra_se = float(ra.iloc[0, 0]), float(ra.iloc[0, 1])
    # and by the delta method: gradient of mean(m1) - mean(m0) in each arm's coefficients, each
    # arm model's HC0 covariance (the arms' models are independent: disjoint rows)
    d = m1 - m0
    var = d.var() / n
    for k, m, sign in ((1, m1, 1.0), (0, m0, -1.0)):
        grad = sign * (X * (m * (1 - m))[:, None]).mean(0)
        cov = sm.GLM(y[a == k], X[a == k], family=sm.families.Binomial()).fit(tol=1e-12, cov_type="HC0").cov_params()
        var += grad @ cov @ grad
    se["gcomp"] = float(math.sqrt(var))
    phi = m1 - m0 + a * (y - m1) / e - (1 - a) * (y - m0) / (1 - e)
    se["aipw"] = float(phi.std() / math.sqrt(n))
    rng = np.random.default_rng(12345)
    boots = {k: [] for k in point}
    for _ in range(500):
        i = rng.integers(0, n, n)
        p, *_ = _point_estimates(X[i], a[i], y[i])
        for k, v in p.items():
            boots[k].append(v)
    boot_se = {k: float(np.std(v, ddof=1)) for k, v in boots.items()}
    return {
        "data": "confounded_2000.csv",
        "point": point,
        "statsmodels_ipw": {"point": ipw_point, "se": {k: se[k] for k in ("iptw_ate", "iptw_att")}},
        "statsmodels_ra": {"point": ra_point, "se": ra_se},
        "se_second_route": se,
        "bootstrap_se": boot_se,
        "bootstrap_reps": 500,
        "tolerance": {"point": 1e-6, "se_statsmodels": 1e-6, "se_closed_form": 0.02, "se_bootstrap": 0.12},
    }


def main() -> None:
    if not (HERE / "confounded_2000.csv").exists():
        import simulate

        simulate.confounded(2000, np.random.default_rng(2000)).write_csv(HERE / "confounded_2000.csv")
    (HERE / "proportions.json").write_text(json.dumps(proportions(), indent=1) + "\n")
    (HERE / "estimators.json").write_text(json.dumps(estimators(), indent=1) + "\n")


if __name__ == "__main__":
    main()
