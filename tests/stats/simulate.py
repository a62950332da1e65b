"""Data with known truth for the statistics tests and benchmarks (no code under test used here).

``confounded`` draws the small data set of the coverage study: confounders, treatment from a
logistic model with strong confounding (sicker people go residential, arm 0), and a binary
outcome from potential outcomes under a logistic model, so the true ATE, ATT and ATO risk
differences are known (computed from the potential-outcome probabilities of a large draw).

``severity_scenario``, ``sites_scenario``, ``followup_scenario`` and ``three_arms_scenario``
(``SCENARIOS``) are the data-generating processes of the coverage benchmark
(benchmarks/coverage_stats.py): covariates with finitely many values, so each scenario's true
ATE / ATT / ATO is an exact sum over its covariate cells.

``analysis_frame`` draws a polars frame shaped like the analysis frame of docs/interfaces.md
(baseline columns of mart_episodes, one Int8 column per definition, follow-up reached
columns) for the comparison tests and the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

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
    followup: str | None = None


def definitions(n_definitions: int = 25) -> list[Definition]:
    """Every fifth definition a follow-up interview outcome at 90 days (complete case)."""
    return [
        Definition(f"d{k:02d}", 1, 90 if k % 5 == 0 else None, "exclude" if k % 5 == 0 else "failure",
                   "interview" if k % 5 == 0 else None)
        for k in range(1, n_definitions + 1)
    ]


# -- scenarios of the coverage benchmark -------------------------------------------------------
#
# Each scenario's covariates take finitely many values (severity category, co-occurring mental
# health, homelessness, days of use 0-30, site), so the data-generating process is a table of
# covariate *cells* with their probabilities, treatment probabilities and potential-outcome
# risks per cell and arm. Replicates draw cells, then the arm, then the outcome (and whether the
# follow-up interview reached the person); the true effects are exact sums over the cells (no
# Monte-Carlo error). Every model is logistic and linear in the covariates as levelcare's design
# codes them (numbers as they are, categories as indicators), per arm, so the propensity,
# follow-up and per-arm outcome models of the library are correctly specified.

SEVERITY = np.array(["mild", "moderate", "severe"])
SITE_SHARES = (0.40, 0.25, 0.12, 0.08, 0.06, 0.05, 0.03, 0.01)


@dataclass(frozen=True)
class Scenario:
    """A data-generating process over covariate cells.

    ``cells``: covariate columns (one value per cell, as the frame holds them); ``prob``:
    P(cell); ``assign`` (cells x arms): P(arm | cell), arms in ``arms`` order with the
    reference (residential) last; ``risk`` (cells x arms): P(Y(arm) = 1 | cell); ``reach``
    (cells x arms, or None): P(follow-up interview reached | cell, arm), independent of Y given
    both (missing at random).
    """

    name: str
    description: str
    covariates: tuple[str, ...]
    arms: tuple[str, ...]
    cells: dict[str, np.ndarray]
    prob: np.ndarray
    assign: np.ndarray
    risk: np.ndarray
    reach: np.ndarray | None = None

    @property
    def reference(self) -> str:
        return self.arms[-1]

    def draw(self, n: int, rng: np.random.Generator):
        """One replicate: a polars frame with the covariates, ``level_group`` (the arm), ``y``
        (Int8: the outcome; null when the follow-up did not reach the person) and, for a
        follow-up scenario, ``fu90_reached``."""
        import polars as pl

        cell = rng.choice(self.prob.size, size=n, p=self.prob)
        u = rng.random(n)[:, None]
        arm = (u > self.assign[cell].cumsum(axis=1)[:, :-1]).sum(axis=1)
        y = (rng.random(n) < self.risk[cell, arm]).astype(np.float64)
        cols = {k: v[cell] for k, v in self.cells.items()}
        cols["level_group"] = np.asarray(self.arms)[arm]
        frame = pl.DataFrame(cols)
        if self.reach is None:
            return frame.with_columns(pl.Series("y", y).cast(pl.Int8))
        reached = rng.random(n) < self.reach[cell, arm]
        y[~reached] = np.nan
        return frame.with_columns(
            pl.Series("y", y, nan_to_null=True).cast(pl.Int8), pl.Series("fu90_reached", reached)
        )

    def truth(self) -> dict[tuple[str, str], float]:
        """True risk differences per (arm, target) against the reference (exact over the cells).

        Binary comparisons (the arm's and the reference's people only, as levelcare's pairwise
        estimators see them; with two arms that is everyone): ``ate``, ``att`` (the arm's
        people), ``ato`` (overlap weights e(1 - e), e = P(arm | cell, arm or reference)). With
        three arms, ``ate_all``: the ATE over everyone (what multinomial IPTW targets). With a
        follow-up: ``itt`` (success *and* reached, what unreached-as-failure estimates) and
        ``cc`` (the ATE among the people the interview reached, what a complete-case analysis
        with its own propensity model estimates); the follow-up estimator (ipw_followup)
        targets ``ate``.
        """
        return _truth(self)


def _truth(s: Scenario) -> dict[tuple[str, str], float]:
    p = s.prob
    ref = len(s.arms) - 1
    out = {}
    for k, arm in enumerate(s.arms[:-1]):
        d = s.risk[:, k] - s.risk[:, ref]
        q = s.assign[:, k] + s.assign[:, ref]  # P(in the binary comparison | cell)
        e = s.assign[:, k] / q
        out[(arm, "ate")] = float((p * q * d).sum() / (p * q).sum())
        out[(arm, "att")] = float((p * s.assign[:, k] * d).sum() / (p * s.assign[:, k]).sum())
        h = p * q * e * (1 - e)
        out[(arm, "ato")] = float((h * d).sum() / h.sum())
        if len(s.arms) > 2:
            out[(arm, "ate_all")] = float((p * d).sum())
        if s.reach is not None:
            r1, r0 = s.reach[:, k], s.reach[:, ref]
            out[(arm, "itt")] = float((p * q * (r1 * s.risk[:, k] - r0 * s.risk[:, ref])).sum() / (p * q).sum())
            # the reached people's ATE: P(reached | cell, in the comparison) = e r1 + (1 - e) r0
            reached = p * q * (e * r1 + (1 - e) * r0)
            out[(arm, "cc")] = float((reached * d).sum() / reached.sum())
    return out


def _people(sites: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Covariate cells of a program's admissions and their probabilities: severity (mild /
    moderate / severe), co-occurring mental health and homelessness (more common when severe),
    days of use in the 30 before admission (Binomial(30, q) with q rising with severity) and,
    with ``sites``, one of 8 sites of SITE_SHARES (the severe share differs by site)."""
    from scipy.stats import binom

    n_sites = len(SITE_SHARES) if sites else 1
    site, sev, co, hl, days = (
        a.ravel()
        for a in np.meshgrid(np.arange(n_sites), np.arange(3), [0, 1], [0, 1], np.arange(31), indexing="ij")
    )
    sev_mix = np.array([[0.45, 0.35, 0.20]] * n_sites)
    if sites:  # case mix by site: severe shares 0.12-0.30
        severe = np.array([0.20, 0.16, 0.26, 0.12, 0.30, 0.22, 0.18, 0.25])
        sev_mix = np.column_stack([(1 - severe) * 0.56, (1 - severe) * 0.44, severe])
    p_site = np.asarray(SITE_SHARES)[site] if sites else np.ones(site.size)
    p = (
        p_site
        * sev_mix[site, sev]
        * np.where(co == 1, np.array([0.30, 0.45, 0.60])[sev], 1 - np.array([0.30, 0.45, 0.60])[sev])
        * np.where(hl == 1, np.array([0.06, 0.11, 0.20])[sev], 1 - np.array([0.06, 0.11, 0.20])[sev])
        * binom.pmf(days, 30, np.array([0.35, 0.50, 0.70])[sev])
    )
    cells = {
        "severity": SEVERITY[sev],
        "co_occurring_mh": co.astype(bool),
        "homeless_admit": hl.astype(bool),
        "use_days_admit": days.astype(np.int64),
    }
    if sites:
        cells["site_id"] = np.char.add("site-", (site + 1).astype(str))
    return cells, p / p.sum()


def _lin(
    cells: dict[str, np.ndarray],
    intercept: float,
    moderate: float,
    severe: float,
    co: float,
    homeless: float,
    days: float,
) -> np.ndarray:
    """A linear predictor in the design's terms (days per 10 around 15)."""
    sev = cells["severity"]
    return (
        intercept + moderate * (sev == "moderate") + severe * (sev == "severe")
        + co * cells["co_occurring_mh"] + homeless * cells["homeless_admit"]
        + days * (cells["use_days_admit"] - 15) / 10
    )  # fmt: skip


def _binary(e: np.ndarray) -> np.ndarray:
    return np.column_stack([e, 1 - e])


COVARIATES = ("severity", "co_occurring_mh", "homeless_admit", "use_days_admit")


@cache
def severity_scenario() -> Scenario:
    """IOP vs residential; sicker people go residential more often, and IOP helps the mild
    (+0.4 on the logit) but harms the severe (-1.6): the effect changes sign with severity,
    true ATE -2.1 pp, ATT (mostly mild people) +3.6 pp. One outcome model with the arm as a
    main effect (shared covariate slopes) standardizes to about -0.1 pp here (+2 pp of bias)."""
    cells, p = _people(sites=False)
    e = expit(_lin(cells, 0.8, -1.2, -2.2, -0.4, -0.4, -0.3))
    base = _lin(cells, 0.3, -0.3, -0.7, -0.3, -0.3, -0.25)
    sev = cells["severity"]
    tau = np.select([sev == "mild", sev == "moderate"], [0.4, -0.2], -1.6)
    risk = np.column_stack([expit(base + tau), expit(base)])
    return Scenario(
        "severity", "IOP effect changes sign with severity (helps mild, harms severe); confounded",
        COVARIATES, ("iop", "residential"), cells, p, _binary(e), risk,
    )  # fmt: skip


SITE_IOP = np.array([0.0, 0.7, -0.5, 0.4, -0.7, 0.8, 0.3, -0.4])  # propensity shift by site
SITE_OUTCOME = np.array([0.0, 0.3, -0.4, 0.5, -0.3, 0.6, -0.5, 0.2])  # outcome shift by site
SITE_EFFECT = np.array([0.0, 0.1, -0.2, 0.2, -0.1, 0.3, -0.2, 0.1])  # IOP effect shift by site


@cache
def sites_scenario() -> Scenario:
    """IOP vs residential at 8 sites of very different sizes (SITE_SHARES: 40% to 1%), with
    site-level differences in case mix, IOP share, outcome and IOP effect; site enters the
    models as a fixed effect (``site_id`` a covariate)."""
    cells, p = _people(sites=True)
    site = np.char.replace(cells["site_id"], "site-", "").astype(int) - 1
    e = expit(_lin(cells, 0.4, -0.8, -1.4, -0.3, -0.3, -0.2) + SITE_IOP[site])
    base = _lin(cells, 0.2, -0.3, -0.7, -0.3, -0.3, -0.2) + SITE_OUTCOME[site]
    risk = np.column_stack([expit(base - 0.1 + SITE_EFFECT[site]), expit(base)])
    return Scenario(
        "sites", "8 sites of 40% to 1% of admissions; site shifts in IOP share, outcome and effect",
        (*COVARIATES, "site_id"), ("iop", "residential"), cells, p, _binary(e), risk,
    )  # fmt: skip


@cache
def followup_scenario() -> Scenario:
    """IOP vs residential, outcome measured at a 90-day follow-up interview that reaches ~70%:
    reaching depends on severity, homelessness, co-occurring, days of use and the arm (IOP
    people are easier to reach), not on the outcome given those (missing at random)."""
    cells, p = _people(sites=False)
    e = expit(_lin(cells, 0.8, -0.8, -1.7, -0.4, -0.5, -0.3))
    base = _lin(cells, -0.2, -0.3, -0.6, -0.3, -0.4, -0.3)
    sev = cells["severity"]
    tau = np.select([sev == "mild", sev == "moderate"], [0.3, 0.0], -0.5)
    risk = np.column_stack([expit(base + tau), expit(base)])
    r = _lin(cells, 1.4, -0.5, -1.2, -0.3, -1.0, -0.4)
    reach = np.column_stack([expit(r + 0.4), expit(r)])
    return Scenario(
        "followup", "90-day follow-up outcome, ~30% not reached depending on covariates and arm (MAR)",
        COVARIATES, ("iop", "residential"), cells, p, _binary(e), risk, reach,
    )  # fmt: skip


@cache
def three_arms_scenario() -> Scenario:
    """IOP, PHP and residential, assignment from a multinomial logit (sicker people to
    residential, PHP in between); the IOP effect changes sign with severity, PHP helps a little."""
    cells, p = _people(sites=False)
    eta_iop = _lin(cells, 0.5, -1.0, -2.0, -0.4, -0.4, -0.3)
    eta_php = _lin(cells, -0.2, -0.3, -0.8, 0.0, -0.2, -0.1)
    ex = np.column_stack([np.exp(eta_iop), np.exp(eta_php), np.ones(p.size)])
    assign = ex / ex.sum(axis=1, keepdims=True)
    base = _lin(cells, 0.3, -0.3, -0.7, -0.3, -0.3, -0.25)
    sev = cells["severity"]
    tau = np.select([sev == "mild", sev == "moderate"], [0.4, -0.3], -1.2)
    risk = np.column_stack([expit(base + tau), expit(base + 0.15 - 0.1 * (sev == "severe")), expit(base)])
    return Scenario(
        "three_arms", "IOP, PHP, residential; multinomial confounded assignment",
        COVARIATES, ("iop", "php", "residential"), cells, p, assign, risk,
    )  # fmt: skip


SCENARIOS = {
    "severity": severity_scenario,
    "sites": sites_scenario,
    "followup": followup_scenario,
    "three_arms": three_arms_scenario,
}
