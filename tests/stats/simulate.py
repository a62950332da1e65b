"""Data with known truth for the statistics tests and benchmarks (no code under test used here).

``confounded`` draws the small data set of the coverage study: confounders, treatment from a
logistic model with strong confounding (sicker people go residential, arm 0), and a binary
outcome from potential outcomes under a logistic model, so the true ATE, ATT and ATO risk
differences are known (computed from the potential-outcome probabilities of a large draw).

``analysis_frame`` draws a polars frame shaped like the analysis frame of docs/interfaces.md
(baseline columns of mart_episodes, one Int8 column per definition, follow-up reached
columns) for the comparison tests and the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import expit

TREAT = (0.2, -1.0, -0.8, 0.5, -0.3)  # intercept, x1 (severity), x2 (co-occurring), x3==1, x3==2
OUTCOME = (0.3, 0.4, -0.8, -0.5, 0.3, -0.2)  # intercept, arm, x1, x2, x3==1, x3==2


@dataclass(frozen=True)
class Truth:
    ate: float
    att: float
    ato: float


def _covariates(n: int, rng: np.random.Generator):
    x1 = rng.normal(size=n)
    x2 = rng.binomial(1, 0.4, n)
    x3 = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    return x1, x2, x3


def _probs(x1, x2, x3):
    t = TREAT
    e = expit(t[0] + t[1] * x1 + t[2] * x2 + t[3] * (x3 == 1) + t[4] * (x3 == 2))
    o = OUTCOME
    lin = o[0] + o[2] * x1 + o[3] * x2 + o[4] * (x3 == 1) + o[5] * (x3 == 2)
    return e, expit(lin + o[1]), expit(lin)


@lru_cache(maxsize=1)
def truth() -> Truth:
    """True ATE / ATT / ATO risk differences from 4 million draws (Monte Carlo error ~1e-4)."""
    rng = np.random.default_rng(20260101)
    e, p1, p0 = _probs(*_covariates(4_000_000, rng))
    d = p1 - p0
    return Truth(
        float(d.mean()), float((e * d).sum() / e.sum()), float((e * (1 - e) * d).sum() / (e * (1 - e)).sum())
    )


def confounded(n: int, rng: np.random.Generator):
    """(polars frame with x1, x2, x3, arm (1 = iop), y) for one replicate."""
    import polars as pl

    x1, x2, x3 = _covariates(n, rng)
    e, p1, p0 = _probs(x1, x2, x3)
    a = rng.binomial(1, e)
    y = rng.binomial(1, np.where(a == 1, p1, p0))
    return pl.DataFrame(
        {
            "x1": x1,
            "x2": x2.astype(bool),
            "x3": np.array(["a", "b", "c"])[x3],
            "arm": a.astype(np.int8),
            "y": y.astype(np.int8),
        }
    )


SUBSTANCES = np.array(["alcohol", "opioids", "stimulants", "cannabis", "other"])
AGE_BANDS = np.array(["18-20", "21-24", "25-29", "30-34", "35-39", "40-44", "45-49", "50-54", "55-64"])
PAYERS = np.array(["medicaid", "private", "medicare", "self", "none"])
REFERRALS = np.array(["self", "court", "provider", "community", "other"])
LEVELS = np.array(["iop", "php", "residential_short", "residential_long", "outpatient"])
GROUPS = np.array(["iop", "php", "residential", "residential", "outpatient"])


def analysis_frame(n: int, n_definitions: int = 25, seed: int = 7, n_sites: int = 40):
    """A synthetic analysis frame: baseline covariates, levels of care, outcome columns d01.. .

    Levels depend on severity (use days, co-occurring, homelessness); outcomes depend on the
    covariates and the level. Every fifth definition is a 90-day follow-up outcome (null
    when not reached, i.e. ``missing="exclude"``), the others are defined for everyone but
    for a few (null for 2% of rows in every third definition, a population restriction).
    """
    import polars as pl

    rng = np.random.default_rng(seed)
    use_days = rng.integers(0, 31, n)
    co = rng.random(n) < 0.45
    homeless = rng.random(n) < 0.12
    employed = rng.random(n) < 0.4
    sev = (use_days - 15) / 10 + 0.6 * co + 0.5 * homeless - 0.3 * employed
    logits = np.column_stack(
        [0.3 - 0.6 * sev, -0.6 + 0.0 * sev, -0.2 + 0.7 * sev, -0.9 + 0.8 * sev, -0.2 - 0.5 * sev]
    )
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(n)[:, None]
    level = (u > p.cumsum(axis=1)).sum(axis=1)
    phq = np.clip(np.round(10 + 4 * sev + rng.normal(0, 4, n)), 0, 27)
    phq_missing = rng.random(n) < 0.3
    site = rng.integers(0, n_sites, n)
    cols = {
        "episode_key": np.char.add("s:", np.arange(n).astype(str)) if n <= 300_000 else np.arange(n),
        "site_id": np.char.add("site-", site.astype(str)),
        "level_of_care": LEVELS[level],
        "level_group": GROUPS[level],
        "age_band": AGE_BANDS[rng.integers(0, AGE_BANDS.size, n)],
        "sex": np.where(rng.random(n) < 0.6, "male", "female"),
        "primary_substance": SUBSTANCES[rng.choice(5, n, p=[0.35, 0.3, 0.15, 0.12, 0.08])],
        "co_occurring_mh": co,
        "prior_episodes": rng.poisson(1.2, n),
        "use_days_admit": use_days,
        "homeless_admit": homeless,
        "employed_admit": employed,
        "payer": PAYERS[rng.integers(0, PAYERS.size, n)],
        "referral_source": REFERRALS[rng.integers(0, REFERRALS.size, n)],
    }
    df = pl.DataFrame(cols).with_columns(
        pl.Series("phq9_admit", np.where(phq_missing, np.nan, phq), nan_to_null=True).cast(pl.Int64)
    )
    reached = rng.random(n) < expit(1.0 - 0.5 * sev + 0.3 * (level == 2))
    outs = {"fu90_reached": reached}
    for k in range(1, n_definitions + 1):
        lin = -0.2 + 0.1 * k % 1.0 - 0.5 * sev + 0.15 * (level == 0) + 0.05 * (site % 5 - 2)
        y = (rng.random(n) < expit(lin)).astype(np.float64)
        if k % 5 == 0:
            y[~reached] = np.nan
        elif k % 3 == 0:
            y[rng.random(n) < 0.02] = np.nan
        outs[f"d{k:02d}"] = y
    return df.with_columns(
        pl.Series("fu90_reached", reached),
        *[pl.Series(k, v, nan_to_null=True).cast(pl.Int8) for k, v in outs.items() if k != "fu90_reached"],
    )


@dataclass(frozen=True)
class Definition:
    """A stand-in with the attributes comparisons.compare reads."""

    id: str
    version: int = 1
    window_days: int | None = None
    missing: str | None = "failure"


def definitions(n_definitions: int = 25) -> list[Definition]:
    return [
        Definition(f"d{k:02d}", 1, 90 if k % 5 == 0 else None, "exclude" if k % 5 == 0 else "failure")
        for k in range(1, n_definitions + 1)
    ]
