"""The generative model behind ``levelcare synth``: episodes with potential outcomes.

Everything is drawn from one ``numpy.random.Generator`` (PCG64) seeded once, in a fixed
order, with array operations only (no Python loop per row), so the same seed gives the same
data. :func:`generate` returns a :class:`SynthData`: the observed episodes *and* every
episode's potential outcomes under IOP and under group residential, the follow-up contact
attempts, and ``truth`` (the dictionary written to ``truth.json``).

Units
-----
An *episode* is one admission-to-discharge stay at one level of care (one discharge row).
A *person* has one index episode and possibly later episodes: a step-down and readmissions.

Sites and time
--------------
``sites`` sites (default 8, ``site-a`` ...). Site sizes are skewed: the big sites' weights
fall geometrically (ratio 0.7) and, with 4 or more sites, the last two are tiny (0.10% and
0.06% of index episodes: about 10-20 episodes each at 20,000 records), as new or small
programs are. Each site has a random preference for residential care (normal, sd 0.4 on the
log-odds of every residential level) and a random effect on outcomes (sd 0.15 on the
log-odds). The fourth site (``site-d``, ~10% of episodes) does no follow-up interviews at
all. ``quarters`` calendar quarters (default 10) end with ``end_quarter`` (default 2026Q3);
or, with ``start`` (``synth --start``), ``quarters`` 3-month quarters begin on that day (see
:func:`period_bounds`). Index discharge dates are uniform
over the period and admit date = discharge date - length of stay (so an admission can precede
the period: the episode was open at its start). The data end date is the
last day of the last quarter: later episodes (still open) and later contacts are not written.

Follow-on periods: each run is self-contained. A run for the next quarter (``start`` the day
after the previous data end, a new seed, ``synth --id-prefix`` for ids that cannot collide)
has persons of its own: nobody from the earlier run comes back, so a warehouse holding both
shows no readmission across them, and each run's truth.json stays exactly its own. For
readmissions across quarters, draw the quarters in one run (``quarters`` 2 or more): persons,
readmissions and truth then span them. (The same seed over a period of the same length draws
the same episodes again, shifted in time.)

Baseline covariates (index episodes; TEDS-like marginals, teds-d.md)
--------------------------------------------------------------------
Age band (TEDS-like: 30-34 most common, 2% aged 65+); sex (66% male, 33.5% female, 0.3%
other, 0.2% unknown); race and ethnicity (62% white, 19% black, 14% hispanic); primary
substance by age (overall ~30% alcohol, ~30% opioids, ~22% stimulants, ~12% cannabis;
cannabis among the young, alcohol among the old). A latent severity ``s ~ N(0, 1)`` that is
*not* written drives the observed severity markers so they correlate: use days in the 30
days before admission (0 for ~20%, daily for ~40%), prior episodes (negative binomial;
none for ~half of index episodes, ~30% of all), homelessness (~13%), co-occurring mental
health disorder (~40%, more for women and opioid/sedative use), employment (~27%), arrests
(~7%, mostly court referrals), PHQ-9 at admission (mean ~7 without and ~13 with a
co-occurring disorder) and GAD-7 (0.55 x PHQ-9 + noise). Payer (Medicaid ~50%, Medicare
for 65+) and referral source (~36% self, ~22% court).
Scores and some fields are missing in small shares (``MISSING`` and
``MISSING_SCORE_BY_REASON`` below: discharge scores are missing more after a dropout).

Observed severity score ``z`` (the confounder)
----------------------------------------------
``z = (0.035 (use_days - 15) + 0.55 homeless + 0.45 co_occurring + 0.15 min(prior, 6)
+ 0.3 opioids + 0.15 stimulants + 0.3 arrested + 0.3 unemployed + 0.03 (phq9 - 9)
- Z_CENTER) / Z_SCALE`` — approximately standardized. It is a function of columns written to
``discharges.csv`` only, so with ``unmeasured = 0`` (default) there is no unmeasured
confounding: an analysis adjusting for those columns (arrests_admit included) can recover the
truth. z uses the *true* values, and 3-10% of PHQ-9, GAD-7, use days and prior episodes are
blank in the files, so a missing-indicator adjustment keeps a small residual bias (at
100,000 records, AIPW on levelcare's default covariates plus arrests_admit gave -0.100 for a
true completion ATE of -0.106; crude +0.004).

Level of care (confounding by indication)
-----------------------------------------
Multinomial logit over outpatient, iop, php, residential_short, residential_long,
residential_hospital, detox, inpatient. Utilities relative to outpatient grow with ``z``
(0.5 for IOP up to 1.5 for long-term residential and inpatient), co-occurring disorders
(hospital residential, inpatient), homelessness and prior episodes (residential), alcohol or
opioids (detox), court referral (long-term residential), plus the site preference and
``unmeasured * u`` for residential levels (``u ~ N(0,1)``, not written). Intercepts are
calibrated on (up to 50,000 of) the index episodes so the level mix matches ``level_mix``
(native default: outpatient 22%, iop 24%, php 6%, residential short/long/hospital 15/9/3%,
detox 16%, inpatient 5%; for teds-d a mix that lands near the 2019 SERVICES_D shares).
Sicker people therefore go residential, and crude IOP-residential differences favour IOP
by several percentage points. Everyone also has a *potential residential subtype* R (the
residential level they would get if sent to residential, from the same model restricted to
residential levels; equal to the actual level for those in residential). Readmissions use
the same model. A readmission within 14 days of a residential
discharge is never IOP (that would be a step-down by definition): its level becomes R.

Potential outcomes (IOP vs group residential)
---------------------------------------------
For each binary outcome o the probability under the potential residential subtype is
``p_res = expit(a_o + b_o z + site + offset_o[R] - unmeasured u / 2)`` and under IOP
``p_iop = clip(p_res + delta_o + gamma_o z, 0.005, 0.995)``: the true effect ``delta_o`` is a
shift on the **probability scale** (a risk difference at average severity z = 0; ``gamma_o``
is effect modification per unit of z, negative for abstinence: severe users do better in
residential care, Rychtarik 2000). Other levels use ``expit(a_o + b_o z + offset_o[level])``.
Both potential outcomes are drawn with **common random numbers**: one uniform ``U`` per
episode and outcome, ``Y(a) = [U < p_a]``, and the observed outcome is the one of the
assigned level. The uniforms come from a Gaussian copula with an episode *engagement* latent
(and a *relapse* latent for abstinence and readmission), so completers tend to be abstinent
and not readmitted, in either arm; the latents are independent of the level given the
covariates, so they do not confound.

* discharge_reason: death during the episode first (~0.15%, more for opioids and age 55+,
  the same in every arm), then completed with ``p_c`` (setting shares of the TEDS-D 2019
  joint table: detox 62%, hospital residential 65%, short residential 54%, long 39%,
  outpatient 35%), transferred with ``p_ct - p_c``, and the rest dropped_out / terminated /
  incarcerated / other by covariate-dependent shares drawn with a second uniform that is
  common to both arms. Effects ``completion`` and ``completion_or_transfer``.
* use_days_discharge: 0 (abstinent at discharge, effect ``abstinent_discharge``; residential
  settings control use, so the default effect is -15 points) or ``1 + f * use_days_admit``
  with ``f ~ 1.3 Beta(2, 2)`` common to both arms (capped at 30).
* phq9/gad7 at discharge: ``round(0.5 admit + mu[setting] + 0.8 z + e)``, ``e ~ N(0, 3)``
  common to both arms (correlated with engagement); IOP adds ``phq9_points`` /
  ``gad7_points`` points (the truth for phq9_remission, phq9_response, ... follows).
* employed / homeless / arrests at discharge: transition probabilities from the admission
  state (effects ``employment_gain`` (also applied to keeping a job), ``housing_stable``,
  ``no_arrests``).
* readmission: a time ``T`` to the next admission from a piecewise-uniform distribution
  with cumulative probabilities at 30/90/180/365 days (logistic in z; IOP shifts them by
  ``-delta`` of ``no_readmission_30d`` and ``no_readmission_90d``, the latter for 90, 180 and
  365 days). The next episode is written for every ``T`` that falls inside the period.
  *Counted* readmission follows the levelcare convention: after a 'transferred' discharge the
  first admission within 14 days is continuity, not readmission. (levelcare's SQL then also
  counts the admission after the transfer destination; the model looks at the next
  admission only: ~0.1% of episodes at 30 days, ~0.3% at 90.)
* abstinence at 30/90/180/365 days after discharge, full data: alive and ``[U_w < p_w]``;
  effects ``abstinent_30d`` ... ``abstinent_365d``. Death after discharge (~1.2% per year,
  more for opioids and age 55+) is the same in both arms.

Pathways
--------
*Step-down*: a residential discharge that completed (40%), transferred (50%) or otherwise
ended (8%) is followed 1-14 days later by an IOP episode of the same person (a separate row,
own episode_id), unless the person is readmitted first; about 25-30% of residential
discharges. The step-down episode's length of stay is cut at the parent's readmission
(reason then dropped_out), and its readmission is the parent's (the same next episode); its
potential readmission times are coupled to that observed time through its own CDFs.
*Readmissions* chain: each episode's next admission is a new episode (generation after
generation) as long as it is discharged inside the period. ``person_id`` links them.

Follow-up (native only)
-----------------------
80% of episodes are enrolled in follow-up (none at ``site-d``); each window
(30/90/180/365 days) is attempted with probability 50/70/50/30%. Attempt 1 is at
window +- 7 days, later attempts 3-10 days apart, at most 3 attempts, stopping at reached,
refused or deceased, and never beyond the window tolerance (45/120/240/425 days) or the data
end date. The chance to reach someone falls with homelessness at discharge, an unfavourable
discharge (dropped out, terminated, incarcerated), daily use at admission and **the outcome
itself** (not abstinent), so complete-case abstinence is biased upwards. People who died
before the contact are found 'deceased'. About 1.5-2 follow-up rows per episode. Being
reached is itself a potential outcome (contact days and uniforms common to both arms, reach
probability from each arm's discharge outcomes and abstinence), which gives the truth of the
missing-as-failure definitions ``abstinent_<w>d_itt`` (reached, abstinence item answered
(97%) and abstinent, among episodes discharged at least w days before the data end).
``abstinent_<w>d_cc`` in truth.json repeats the full-data effect that complete-case analysis
aims at.

``asam_level``: ~30% of rows carry it beside ``level_of_care``; 3% of the rows whose level
has an unambiguous ASAM code (~2% of all rows) carry only ``asam_level`` (outpatient 1,
iop 2.1, php 2.5, residential_short 3.1/3.3/3.5, residential_hospital 3.7, inpatient 4;
never residential_long, which would need planned_los_days, nor detox).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

LEVELS = ["outpatient", "iop", "php", "residential_short", "residential_long",
          "residential_hospital", "detox", "inpatient"]
OUTPATIENT, IOP, PHP, RES_SHORT, RES_LONG, RES_HOSP, DETOX, INPATIENT = range(8)
RESIDENTIAL = (RES_SHORT, RES_LONG, RES_HOSP)
REASONS = ["completed", "transferred", "dropped_out", "terminated", "incarcerated", "death", "other"]
COMPLETED, TRANSFERRED, DROPPED, TERMINATED, INCARCERATED, DEATH, OTHER = range(7)
AGE_BANDS = ["12-14", "15-17", "18-20", "21-24", "25-29", "30-34", "35-39", "40-44", "45-49",
             "50-54", "55-64", "65+"]
AGE_P = [0.005, 0.025, 0.035, 0.08, 0.15, 0.17, 0.15, 0.11, 0.085, 0.075, 0.095, 0.02]
SEXES = ["male", "female", "other", "unknown"]
SEX_P = [0.66, 0.335, 0.003, 0.002]
RACES = ["white", "black", "other", "multiple", "american_indian", "asian", "alaska_native",
         "pacific_islander", "unknown"]
RACE_P = [0.62, 0.19, 0.06, 0.04, 0.025, 0.012, 0.005, 0.003, 0.045]
ETHNICITIES = ["not_hispanic", "hispanic", "unknown"]
ETHNICITY_P = [0.83, 0.14, 0.03]
SUBSTANCES = ["alcohol", "opioids", "stimulants", "cannabis", "sedatives", "other", "none"]
ALCOHOL, OPIOIDS, STIMULANTS, CANNABIS, SEDATIVES, OTHER_SUB, NO_SUB = range(7)
# primary substance by age: under 21, 21-49, 50 and older
SUBSTANCE_BY_AGE = np.array([
    [0.20, 0.08, 0.14, 0.50, 0.02, 0.05, 0.01],
    [0.25, 0.34, 0.25, 0.09, 0.015, 0.05, 0.005],
    [0.55, 0.25, 0.13, 0.04, 0.01, 0.015, 0.005],
])
PAYERS = ["medicaid", "medicare", "private", "self", "other", "none", "unknown"]
PAYER_P = [0.52, 0.03, 0.14, 0.08, 0.08, 0.12, 0.03]
REFERRALS = ["self", "court", "provider", "school", "employer", "community", "other"]
REFERRAL_P = [0.36, 0.22, 0.22, 0.01, 0.01, 0.14, 0.04]
COURT = 1
WINDOWS = (30, 90, 180, 365)
WINDOW_TOLERANCE = {30: (23, 45), 90: (83, 120), 180: (173, 240), 365: (358, 425)}
FOLLOWUP_STATUSES = ["reached", "unreachable", "refused", "deceased"]
ASAM_CODES = ["1", "2.1", "2.5", "3.1", "3.3", "3.5", "3.7", "4"]
# ASAM code index by level (-1: none); residential_short is 3.1/3.3/3.5, drawn per row
ASAM_OF_LEVEL = [0, 1, 2, 5, 5, 6, -1, 7]

Z_CENTER, Z_SCALE = 1.10, 0.75
NO_FOLLOWUP_SITE = 3  # site-d runs no follow-up interviews

NATIVE_MIX = {"outpatient": 0.22, "iop": 0.24, "php": 0.06, "residential_short": 0.15,
              "residential_long": 0.09, "residential_hospital": 0.03, "detox": 0.16,
              "inpatient": 0.05}
# Assignment-model mix for TEDS-D: SERVICES_D 2019 shares (teds-d.md), corrected for the
# step-downs (IOP) and the more intensive readmissions the pathway model adds, so the
# written SERVICES_D shares land near 2019.
TEDS_MIX = {"outpatient": 0.592, "iop": 0.094, "php": 0.0, "residential_short": 0.096,
            "residential_long": 0.063, "residential_hospital": 0.0023, "detox": 0.167,
            "inpatient": 0.0}

# True effects of IOP vs group residential (risk differences at z = 0, probability scale),
# keyed by levelcare definition id; phq9/gad7 in score points.
DEFAULT_EFFECTS: dict[str, float] = {
    "completion": -0.10,
    "completion_or_transfer": -0.06,
    "abstinent_discharge": -0.15,
    "employment_gain": 0.05,
    "housing_stable": -0.03,
    "no_arrests": -0.01,
    "no_readmission_30d": -0.02,
    "no_readmission_90d": -0.03,
    "abstinent_30d": -0.02,
    "abstinent_90d": -0.02,
    "abstinent_180d": -0.02,
    "abstinent_365d": -0.02,
    "phq9_points": 0.5,
    "gad7_points": 0.4,
}
POINT_EFFECTS = ("phq9_points", "gad7_points")
# effect modification per unit of z (probability scale)
DEFAULT_MODIFICATION: dict[str, float] = {
    "completion": -0.02, "completion_or_transfer": -0.02,
    "abstinent_30d": -0.03, "abstinent_90d": -0.03, "abstinent_180d": -0.03, "abstinent_365d": -0.03,
}

# Outcome models: intercept (log-odds at z = 0 in residential_short), slope on z, and log-odds
# offsets by level (iop is never used: IOP is residential + delta).
OUTCOME_MODELS: dict[str, dict[str, Any]] = {
    # completion: offsets from the TEDS-D 2019 setting shares (hospital 65%, detox 62%,
    # short 54%, long 39%, ambulatory 35%)
    "completion": {"a": 0.07, "b": -0.45, "off": [-0.78, 0, -0.36, 0, -0.61, 0.48, 0.34, 0.46]},
    # transferred as a share of the non-completed
    "transfer_share": {"a": -0.47, "b": 0.0, "off": [-0.1, 0, 0.0, 0, 0.0, -0.05, 0.35, 0.1]},
    "abstinent_discharge": {"a": 1.27, "b": -0.5, "off": [-1.6, 0, -0.8, 0, 0.3, 0.2, -0.5, 0.0]},
    "gain_job": {"a": -2.6, "b": -0.3, "off": [0.9, 0, 0.3, 0, 0.4, -0.3, -0.8, -0.5]},
    "keep_job": {"a": 2.0, "b": -0.3, "off": [0.5, 0, 0.2, 0, -0.5, 0.0, 0.5, 0.0]},
    "get_housed": {"a": -0.6, "b": -0.3, "off": [-0.8, 0, -0.4, 0, 0.5, 0.0, -1.0, -0.3]},
    "stay_housed": {"a": 3.9, "b": -0.4, "off": [-0.3, 0, -0.1, 0, 0.0, 0.0, -0.3, 0.0]},
    "no_arrests": {"a": 3.2, "b": -0.4, "off": [-0.4, 0, -0.2, 0, 0.0, 0.0, -0.2, 0.0]},
    "abstinent_30d": {"a": 0.49, "b": -0.5, "off": [-0.2, 0, 0.0, 0, 0.1, 0.0, -0.5, -0.2]},
    "abstinent_90d": {"a": 0.0, "b": -0.5, "off": [-0.2, 0, 0.0, 0, 0.1, 0.0, -0.5, -0.2]},
    "abstinent_180d": {"a": -0.24, "b": -0.5, "off": [-0.2, 0, 0.0, 0, 0.1, 0.0, -0.5, -0.2]},
    "abstinent_365d": {"a": -0.41, "b": -0.5, "off": [-0.2, 0, 0.0, 0, 0.1, 0.0, -0.5, -0.2]},
    # cumulative readmission by 30/90/180/365 days (log-odds), bad outcome: slope positive
    "readmit": {"a": [-2.2, -1.39, -0.94, -0.58], "b": 0.4,
                "off": [-0.3, 0, 0.0, 0, -0.2, 0.0, 0.6, 0.3]},
}
# PHQ-9 / GAD-7 at discharge: score points by setting (added to 0.5 x admission score)
SCORE_MU = {"phq9": [1.0, 0, 0.0, 0.0, -0.5, -0.5, 1.5, -0.5],
            "gad7": [0.8, 0, 0.0, 0.0, -0.4, -0.4, 1.2, -0.4]}
LOS_MEDIAN = [75, 42, 24, 24, 75, 16, 5, 8]
COST_PER_DAY = [15, 90, 350, 450, 280, 900, 700, 1400]
HOURS_RANGE = [(1.5, 8), (9, 19), (20, 35), (25, 40), (20, 35), (30, 45), (30, 50), (35, 60)]
SESSIONS_PER_WEEK = [1.5, 3.5, 5, 10, 8, 12, 7, 14]
# the dose and family effects on completion (log-odds; see _extras and truth.json "services")
DOSE_LOG_ODDS_PER_HOUR = 0.06
FAMILY_LOG_ODDS_RATIO = [0.4, 0.6, 0.4, 0.2, 0.2, 0.2, 0.4, 0.4]

MISSING = {"phq9_admit": 0.08, "gad7_admit": 0.10, "use_days_admit": 0.03, "prior_episodes": 0.04,
           "days_waiting": 0.15, "employed_discharge": 0.05, "homeless_discharge": 0.05,
           "arrests_discharge": 0.05, "item": 0.03}
# share of discharge PHQ-9/GAD-7 not recorded, by discharge reason
MISSING_SCORE_BY_REASON = [0.10, 0.20, 0.55, 0.45, 0.80, 1.0, 0.40]

DEFAULTS: dict[str, Any] = {
    "sites": 8, "quarters": 10, "end_quarter": "2026Q3", "start": None, "level_mix": None,
    "unmeasured": 0.0, "asam_both_share": 0.30, "asam_only_share": 0.03,
    "followup_enrolled": 0.80, "window_attempt": {30: 0.50, 90: 0.70, 180: 0.50, 365: 0.30},
    "stepdown": {"completed": 0.40, "transferred": 0.50, "other": 0.08},
}


@dataclass
class SynthData:
    """Episodes (observed columns plus ``po_*`` potential outcomes and internals), follow-up
    attempts, and the truth dictionary."""

    episodes: dict[str, np.ndarray]
    followups: dict[str, np.ndarray]
    truth: dict[str, Any]
    data_end_day: int


# ----------------------------------------------------------------------------- helpers

def _expit(x):
    from scipy.special import expit  # one pass, no overflow warnings

    return expit(x)


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of an (n, k) probability matrix (rows need not be normalized)."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), probs.shape[1] - 1)


def _copula(rng: np.random.Generator, loadings: list[tuple[float, np.ndarray]]) -> np.ndarray:
    """Uniforms Phi(sum l_k x_k + sqrt(1 - sum l_k^2) e): common random numbers correlated
    through the given latent normals."""
    from scipy.special import ndtr

    n = loadings[0][1].shape[0]
    rest = 1.0 - sum(lam * lam for lam, _ in loadings)
    x = rng.standard_normal(n) * math.sqrt(rest)
    for lam, latent in loadings:
        x += lam * latent
    return ndtr(x)


def quarter_bounds(end_quarter: str, quarters: int) -> tuple[date, date, list[str]]:
    """First day, last day and labels of ``quarters`` quarters ending with ``end_quarter``."""
    year, q = int(end_quarter[:4]), int(end_quarter[-1])
    labels = []
    for _ in range(quarters):
        labels.append(f"{year}Q{q}")
        q -= 1
        if q == 0:
            year, q = year - 1, 4
    labels.reverse()
    y0, q0 = int(labels[0][:4]), int(labels[0][-1])
    start = date(y0, 3 * q0 - 2, 1)
    ye, qe = int(labels[-1][:4]), int(labels[-1][-1])
    end = date(ye + 1, 1, 1) if qe == 4 else date(ye, 3 * qe + 1, 1)
    return start, date.fromordinal(end.toordinal() - 1), labels


def start_bounds(start: date, quarters: int) -> tuple[date, date, list[str]]:
    """First day, last day and labels of ``quarters`` 3-month quarters from ``start``.

    The period ends the day before the same day of the month ``3 * quarters`` months later
    (2026-10-01 and 1 quarter: 2026-12-31; 2026-01-31: 2026-04-30). A start on the first
    day of a calendar quarter gives the same period as ``end_quarter``; the labels are the
    calendar quarters the period touches.
    """
    months = start.month - 1 + 3 * quarters
    first = date(start.year + months // 12, months % 12 + 1, 1)
    end = date.fromordinal(first.toordinal() + start.day - 2)
    labels = []
    year, q = start.year, (start.month - 1) // 3 + 1
    while (year, q) <= (end.year, (end.month - 1) // 3 + 1):
        labels.append(f"{year}Q{q}")
        year, q = (year + 1, 1) if q == 4 else (year, q + 1)
    return start, end, labels


def period_bounds(params: dict[str, Any]) -> tuple[date, date, list[str]]:
    """The synthetic period: ``start`` and ``quarters`` if a start is given, else
    ``quarters`` calendar quarters ending with ``end_quarter``."""
    start = params.get("start")
    if start is None:
        return quarter_bounds(params["end_quarter"], int(params["quarters"]))
    if isinstance(start, date):
        start = date(start.year, start.month, start.day)  # a datetime's time of day is dropped
    else:
        try:
            start = date.fromisoformat(str(start))
        except ValueError:
            raise ValueError(f"start '{start}' is not a date YYYY-MM-DD") from None
    return start_bounds(start, int(params["quarters"]))


def site_weights(k: int) -> np.ndarray:
    """Skewed site sizes: geometric for the big sites, the last two tiny (k >= 4)."""
    if k < 4:
        w = 0.7 ** np.arange(k)
        return w / w.sum()
    big = 0.7 ** np.arange(k - 2)
    big = big / big.sum() * (1 - 0.0010 - 0.0006)
    return np.concatenate([big, [0.0010, 0.0006]])


def site_names(k: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [f"site-{letters[i]}" if i < 26 else f"site-{letters[i // 26 - 1]}{letters[i % 26]}"
            for i in range(k)]


# ----------------------------------------------------------------------------- covariates

def _index_covariates(rng, n, n_sites, site_w) -> dict[str, np.ndarray]:
    c: dict[str, np.ndarray] = {}
    c["site"] = rng.choice(n_sites, size=n, p=site_w).astype(np.int16)
    c["age"] = rng.choice(12, size=n, p=AGE_P).astype(np.int8)
    c["sex"] = rng.choice(4, size=n, p=SEX_P).astype(np.int8)
    c["race"] = rng.choice(len(RACES), size=n, p=RACE_P).astype(np.int8)
    c["ethnicity"] = rng.choice(3, size=n, p=ETHNICITY_P).astype(np.int8)
    age_group = np.where(c["age"] <= 2, 0, np.where(c["age"] <= 8, 1, 2))
    c["substance"] = _categorical(rng, SUBSTANCE_BY_AGE[age_group]).astype(np.int8)
    s = rng.standard_normal(n)  # latent severity, not written
    female = c["sex"] == 1
    sub = c["substance"]
    c["co_occurring"] = rng.random(n) < _expit(
        -0.75 + 0.5 * female + 0.35 * np.isin(sub, [OPIOIDS, SEDATIVES]) + 0.35 * s)
    opi_stim = np.isin(sub, [OPIOIDS, STIMULANTS])
    p_zero = _expit(-1.5 - 0.7 * s)
    p_daily = _expit(-0.45 + 0.9 * s + 0.7 * (sub == OPIOIDS) + 0.3 * (sub == ALCOHOL))
    u = rng.random(n)
    some = 1 + np.floor(28.999 * rng.beta(1.3, 1.3, n))
    use = np.where(u < p_zero, 0, np.where(rng.random(n) < p_daily, 30, some))
    c["use_days_admit"] = use.astype(np.int16)
    older = c["age"] >= 7
    lam = np.exp(-0.1 + 0.55 * s + 0.35 * older - 0.8 * (c["age"] <= 2))
    c["prior_episodes"] = np.minimum(rng.poisson(lam * rng.gamma(1.2, 1 / 1.2, n)), 30).astype(np.int16)
    c["homeless"] = rng.random(n) < _expit(-2.55 + 0.8 * s + 0.45 * c["co_occurring"] + 0.4 * opi_stim)
    young_old = (c["age"] <= 1) | (c["age"] == 11)
    c["employed"] = rng.random(n) < _expit(
        -0.7 - 0.45 * s - 1.2 * c["homeless"] - 0.45 * c["co_occurring"] - 1.5 * young_old)
    ref_p = np.tile(np.array(REFERRAL_P), (n, 1))
    ref_p[:, COURT] *= np.where(c["sex"] == 0, 1.25, 0.7) * np.where(np.isin(sub, [ALCOHOL, CANNABIS]), 1.3, 0.9)
    ref_p[:, REFERRALS.index("school")] *= np.where(c["age"] <= 1, 25.0, 0.3)
    ref_p[:, REFERRALS.index("employer")] *= np.where(c["employed"], 3.0, 0.3)
    c["referral"] = _categorical(rng, ref_p).astype(np.int8)
    court = c["referral"] == COURT
    arrested = rng.random(n) < _expit(-3.4 + 1.9 * court + 0.4 * s)
    c["arrests_admit"] = np.where(arrested, np.where(rng.random(n) < 0.25, 2, 1), 0).astype(np.int8)
    phq = 6.5 + 6.0 * c["co_occurring"] + 1.5 * s + 1.0 * female + 4.5 * rng.standard_normal(n)
    c["phq9_admit"] = np.clip(np.rint(phq), 0, 27).astype(np.int8)
    gad = 0.55 * c["phq9_admit"] + 1.0 + 3.0 * rng.standard_normal(n)
    c["gad7_admit"] = np.clip(np.rint(gad), 0, 21).astype(np.int8)
    pay_p = np.tile(np.array(PAYER_P), (n, 1))
    pay_p[:, PAYERS.index("medicare")] *= np.where(c["age"] == 11, 60.0, np.where(c["age"] >= 10, 3.0, 1.0))
    pay_p[:, PAYERS.index("private")] *= np.where(c["employed"], 3.0, 0.6)
    c["payer"] = _categorical(rng, pay_p).astype(np.int8)
    wait = np.where(rng.random(n) < 0.55, 0, 1 + rng.geometric(1 / 8.0, n))
    c["days_waiting"] = np.minimum(wait, 120).astype(np.int16)
    c["u"] = rng.standard_normal(n)  # unmeasured confounder (used only when unmeasured > 0)
    return c


def severity(c: dict[str, np.ndarray]) -> np.ndarray:
    """The observed severity score z (documented in the module docstring)."""
    raw = (0.035 * (c["use_days_admit"] - 15.0) + 0.55 * c["homeless"] + 0.45 * c["co_occurring"]
           + 0.15 * np.minimum(c["prior_episodes"], 6) + 0.3 * (c["substance"] == OPIOIDS)
           + 0.15 * (c["substance"] == STIMULANTS) + 0.3 * (c["arrests_admit"] > 0)
           + 0.3 * (~c["employed"]) + 0.03 * (c["phq9_admit"] - 9.0))
    return (raw - Z_CENTER) / Z_SCALE


# ----------------------------------------------------------------------------- assignment

def _utilities(c, z, site_pref, unmeasured) -> np.ndarray:
    n = z.shape[0]
    co, hl = c["co_occurring"].astype(float), c["homeless"].astype(float)
    prior2 = (c["prior_episodes"] >= 2).astype(float)
    alc_opi = np.isin(c["substance"], [ALCOHOL, OPIOIDS]).astype(float)
    court = (c["referral"] == COURT).astype(float)
    pref = site_pref[c["site"]]
    um = unmeasured * c["u"]
    v = np.zeros((n, 8))
    v[:, IOP] = 0.5 * z + 0.2 * co
    v[:, PHP] = 0.8 * z + 0.6 * co
    v[:, RES_SHORT] = 1.3 * z + 0.7 * hl + 0.3 * co + 0.3 * prior2 + pref + um
    v[:, RES_LONG] = 1.5 * z + 1.0 * hl + 0.8 * court + 0.4 * prior2 + pref + um
    v[:, RES_HOSP] = 1.3 * z + 0.9 * co + pref + um
    v[:, DETOX] = 1.1 * z + 1.2 * alc_opi + 0.5 * hl
    v[:, INPATIENT] = 1.5 * z + 1.0 * co + 0.5 * um
    return v


def _softmax(v, alpha):
    w = v + alpha
    w = np.exp(w - w.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def calibrate_intercepts(v: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """Intercepts that make the mean assignment probabilities equal ``mix`` (fixed point)."""
    alpha = np.where(mix > 0, 0.0, -np.inf)
    alpha[0] = 0.0
    for _ in range(200):
        p = _softmax(v, alpha).mean(axis=0)
        step = np.where(mix > 0, np.log(np.where(mix > 0, mix, 1) / np.maximum(p, 1e-12)), 0.0)
        alpha = alpha + step
        alpha = alpha - alpha[0]
        if np.abs(step).max() < 1e-7:
            break
    return alpha


def _assign(rng, v, alpha):
    p = _softmax(v, alpha)
    level = _categorical(rng, p).astype(np.int8)
    pres = p[:, list(RESIDENTIAL)]
    pres = np.where(pres.sum(axis=1, keepdims=True) > 0, pres, np.array([[0.6, 0.35, 0.05]]))
    res_sub = np.array(RESIDENTIAL, dtype=np.int8)[_categorical(rng, pres)]
    res_sub = np.where(np.isin(level, RESIDENTIAL), level, res_sub).astype(np.int8)
    return level, res_sub


# ----------------------------------------------------------------------------- outcomes

def _arm_probs(model, z, level, res_sub, base_shift, delta, gamma, extra=0.0):
    """(p_iop, p_res, p_obs) for one binary outcome (see module docstring)."""
    off = np.asarray(model["off"], dtype=float)
    lin = model["a"] + model["b"] * z + base_shift + extra
    p_res = _expit(lin + off[res_sub])
    p_iop = np.clip(p_res + delta + gamma * z, 0.005, 0.995)
    p_obs = np.where(level == IOP, p_iop, _expit(lin + off[level]))
    return p_iop, p_res, p_obs


def _readmit_cdf(z, level_arr, base_shift, params):
    """Cumulative readmission probabilities at 30/90/180/365 days, shape (n, 4)."""
    m = OUTCOME_MODELS["readmit"]
    off = np.asarray(m["off"], dtype=float)
    a = np.asarray(m["a"])[None, :]
    lin = a + (m["b"] * z + base_shift + off[level_arr])[:, None]
    return np.maximum.accumulate(_expit(lin), axis=1)


def _readmit_iop(F_res, z, params):
    d30 = params["effects"]["no_readmission_30d"]
    d90 = params["effects"]["no_readmission_90d"]
    g30 = params["modification"].get("no_readmission_30d", 0.0)
    g90 = params["modification"].get("no_readmission_90d", 0.0)
    shift = np.stack([-(d30 + g30 * z)] + [-(d90 + g90 * z)] * 3, axis=1)
    return np.maximum.accumulate(np.clip(F_res + shift, 0.002, 0.99), axis=1)


_W = np.array([0.0, 30.0, 90.0, 180.0, 365.0])


def _time_from_u(F, u):
    """Inverse of the piecewise-uniform CDF (F at 30/90/180/365 days); inf = none in a year."""
    Fz = np.concatenate([np.zeros((F.shape[0], 1)), F], axis=1)
    j = (Fz[:, 1:] <= u[:, None]).sum(axis=1)  # interval index 0..4
    jj = np.minimum(j, 3)
    lo, hi = Fz[np.arange(len(u)), jj], Fz[np.arange(len(u)), jj + 1]
    frac = np.clip((u - lo) / np.maximum(hi - lo, 1e-12), 0, 1)
    t = _W[jj] + frac * (_W[jj + 1] - _W[jj])
    return np.where(j >= 4, np.inf, np.maximum(t, 1e-6))


def _u_from_time(F, t, v):
    """The CDF of the piecewise-uniform distribution at continuous time t; for t = inf (no
    readmission within a year) a uniform point of the remaining mass, from uniforms ``v``."""
    Fz = np.concatenate([np.zeros((F.shape[0], 1)), F], axis=1)
    tt = np.minimum(t, 365.0)
    j = np.clip(np.searchsorted(_W, tt, side="left") - 1, 0, 3)
    lo, hi = Fz[np.arange(len(t)), j], Fz[np.arange(len(t)), j + 1]
    u = lo + (hi - lo) * (tt - _W[j]) / (_W[j + 1] - _W[j])
    return np.where(np.isinf(t), F[:, 3] + (1 - F[:, 3]) * v, u)


def _gap_days(t):
    return np.where(np.isinf(t), 10_000, np.ceil(t)).astype(np.int32)


def _outcomes(rng, c, params, site_eff):
    """Potential and observed outcomes for one batch of episodes (dict updated in place)."""
    eff, mod = params["effects"], params["modification"]
    n = c["z"].shape[0]
    z, level, res_sub = c["z"], c["level"], c["res_sub"]
    shift = site_eff[c["site"]] - 0.5 * params["unmeasured"] * c["u"]
    engage = rng.standard_normal(n)
    relapse = rng.standard_normal(n)
    out = c
    # --- discharge reason
    older = c["age"] >= 10
    opi = c["substance"] == OPIOIDS
    death = rng.random(n) < 0.0015 * np.exp(0.5 * opi + 0.6 * older + 0.3 * z)
    # a step-down child whose parent is readmitted later is alive at that readmission
    death &= ~(~np.isnan(c["forced_t"]) & np.isfinite(c["forced_t"]))
    u_reason = _copula(rng, [(0.5, engage)])
    pc_i, pc_r, pc_o = _arm_probs(OUTCOME_MODELS["completion"], z, level, res_sub, shift,
                                  eff["completion"], mod.get("completion", 0.0))
    ts = OUTCOME_MODELS["transfer_share"]
    ts_off = np.asarray(ts["off"])
    share_r = _expit(ts["a"] + ts_off[res_sub])
    share_o = _expit(ts["a"] + ts_off[level])
    pct_r = pc_r + (1 - pc_r) * share_r
    pct_i = np.clip(pct_r + eff["completion_or_transfer"] + mod.get("completion_or_transfer", 0.0) * z,
                    0.005, 0.995)
    pct_i = np.maximum(pct_i, pc_i)
    pct_o = np.where(level == IOP, pct_i, pc_o + (1 - pc_o) * share_o)
    court = c["referral"] == COURT
    rest_p = np.tile(np.array([0.694, 0.152, 0.042, 0.113]), (n, 1))
    rest_p[:, 1] *= 1 + 0.5 * c["homeless"]
    rest_p[:, 2] *= 0.6 * (1 + 1.5 * court + 1.0 * (c["arrests_admit"] > 0))
    rest = np.array([DROPPED, TERMINATED, INCARCERATED, OTHER], dtype=np.int8)[_categorical(rng, rest_p)]

    def reason(pc, pct):
        r = np.where(u_reason < pc, COMPLETED, np.where(u_reason < pct, TRANSFERRED, rest))
        return np.where(death, DEATH, r).astype(np.int8)

    out["po_reason_iop"], out["po_reason_res"] = reason(pc_i, pct_i), reason(pc_r, pct_r)
    out["reason"] = reason(pc_o, pct_o)
    out["pe_completion"] = pc_i - pc_r
    out["pe_completion_or_transfer"] = pct_i - pct_r
    out["death_in_episode"] = death
    # --- use days at discharge
    u_abs = _copula(rng, [(0.5, engage), (0.3, relapse)])
    was_abstinent = 1.0 * (c["use_days_admit"] == 0)
    pa = _arm_probs(OUTCOME_MODELS["abstinent_discharge"], z, level, res_sub, shift,
                    eff["abstinent_discharge"], mod.get("abstinent_discharge", 0.0), extra=was_abstinent)
    f = 1.3 * rng.beta(2.0, 2.0, n)  # fraction of admission use days; > 1 means more use
    using = 1 + np.floor(f * np.where(c["use_days_admit"] > 0, c["use_days_admit"], 10))
    using = np.minimum(using, 30)
    for arm, p in zip(("iop", "res", "obs"), pa):
        out[f"po_use_days_discharge_{arm}"] = np.where(u_abs < p, 0, using).astype(np.int16)
    out["use_days_discharge"] = out.pop("po_use_days_discharge_obs")
    out["pe_abstinent_discharge"] = pa[0] - pa[1]
    # --- PHQ-9 / GAD-7 at discharge
    for score, top, pts, sd in (("phq9", 27, "phq9_points", 3.0), ("gad7", 21, "gad7_points", 2.5)):
        mu = np.asarray(SCORE_MU[score])
        noise = sd * (0.3 * engage + math.sqrt(0.91) * rng.standard_normal(n))
        base = 0.5 * c[f"{score}_admit"] + 0.8 * z + noise
        res = base + mu[res_sub]
        iop = res + eff[pts]
        obs = np.where(level == IOP, iop, base + mu[level])
        for arm, v in (("iop", iop), ("res", res), ("obs", obs)):
            out[f"po_{score}_discharge_{arm}"] = np.clip(np.rint(v), 0, top).astype(np.int8)
        out[f"{score}_discharge"] = out.pop(f"po_{score}_discharge_obs")
    # --- employment, housing, arrests at discharge
    u_job = _copula(rng, [(0.3, engage)])
    emp = c["employed"]
    g = _arm_probs(OUTCOME_MODELS["gain_job"], z, level, res_sub, shift, eff["employment_gain"], 0.0)
    k = _arm_probs(OUTCOME_MODELS["keep_job"], z, level, res_sub, shift, eff["employment_gain"], 0.0)
    for arm, pg, pk in zip(("iop", "res", "obs"), g, k):
        out[f"po_employed_discharge_{arm}"] = u_job < np.where(emp, pk, pg)
    out["employed_discharge"] = out.pop("po_employed_discharge_obs")
    out["pe_employment_gain"] = g[0] - g[1]
    u_house = _copula(rng, [(0.3, engage)])
    hl = c["homeless"]
    gh = _arm_probs(OUTCOME_MODELS["get_housed"], z, level, res_sub, shift, eff["housing_stable"], 0.0)
    sh = _arm_probs(OUTCOME_MODELS["stay_housed"], z, level, res_sub, shift, eff["housing_stable"], 0.0)
    for arm, pg, ps in zip(("iop", "res", "obs"), gh, sh):
        out[f"po_housed_discharge_{arm}"] = u_house < np.where(hl, pg, ps)
    out["homeless_discharge"] = ~out.pop("po_housed_discharge_obs")
    out["pe_housing_stable"] = np.where(hl, gh[0] - gh[1], sh[0] - sh[1])
    u_arr = _copula(rng, [(0.3, engage)])
    na = _arm_probs(OUTCOME_MODELS["no_arrests"], z, level, res_sub, shift, eff["no_arrests"], 0.0,
                    extra=-1.5 * (c["arrests_admit"] > 0))
    count = np.where(rng.random(n) < 0.75, 1, 2)
    for arm, p in zip(("iop", "res", "obs"), na):
        out[f"po_arrests_discharge_{arm}"] = np.where(u_arr < p, 0, count).astype(np.int8)
    out["arrests_discharge"] = out.pop("po_arrests_discharge_obs")
    out["pe_no_arrests"] = na[0] - na[1]
    # --- length of stay (observed level only)
    stay = np.exp(0.45 * rng.standard_normal(n))
    fractions = (rng.uniform(0.85, 1.1, n), rng.uniform(0.3, 1.0, n), rng.beta(1.5, 3.0, n))

    def length_of_stay(lv, r):
        """LOS at level ``lv`` with discharge reason ``r``, from the same draws: observed, and the
        potential LOS under IOP and under the residential subtype (for the cost truth)."""
        planned = np.asarray(LOS_MEDIAN, dtype=float)[lv] * stay
        planned = np.where(lv == RES_SHORT, np.minimum(planned, 30), planned)
        planned = np.where(lv == RES_LONG, np.maximum(planned, 31), planned)
        frac = np.where(r == COMPLETED, fractions[0], np.where(r == TRANSFERRED, fractions[1], fractions[2]))
        min_los = np.where(np.isin(lv, [OUTPATIENT, IOP, PHP]), 0, 1)
        return np.maximum(np.rint(planned * frac), min_los).astype(np.int32)

    out["los"] = length_of_stay(level, out["reason"])
    out["po_los_iop"] = length_of_stay(np.full(n, IOP), out["po_reason_iop"])
    out["po_los_res"] = length_of_stay(res_sub, out["po_reason_res"])
    # step-down children: LOS cut at the parent's next admission (then reason dropped_out);
    # their readmission is the parent's, so its time is forced and the residential
    # potential time is coupled to it through the episode's own CDFs
    forced = ~np.isnan(c["forced_t"])
    room = np.where(forced, c["forced_t"], np.inf)
    cap = np.where(np.isfinite(room), np.floor(np.minimum(room, 1e6)), 1e9).astype(np.int64)
    cut = forced & (out["los"] > cap)
    out["los"] = np.where(cut, cap, out["los"]).astype(np.int32)
    for key in ("po_los_iop", "po_los_res"):
        out[key] = np.where(forced, np.minimum(out[key], cap), out[key]).astype(np.int32)
    for key in ("reason", "po_reason_iop"):
        out[key] = np.where(cut & (out[key] != DEATH), DROPPED, out[key]).astype(np.int8)
    # --- readmission time (continuous days; gap = ceil), death after discharge (same in both arms)
    u_t = 1.0 - _copula(rng, [(0.4, engage), (0.4, relapse)])
    F_res = _readmit_cdf(z, res_sub, shift, params)
    F_iop = _readmit_iop(F_res, z, params)
    F_obs = np.where((level == IOP)[:, None], F_iop, _readmit_cdf(z, level, shift, params))
    t_iop, t_res, t_obs = _time_from_u(F_iop, u_t), _time_from_u(F_res, u_t), _time_from_u(F_obs, u_t)
    t_forced = np.where(np.isfinite(room), room - out["los"], np.inf)
    t_obs = np.where(forced, t_forced, t_obs)
    t_iop = np.where(forced, t_forced, t_iop)
    t_res = np.where(forced, _time_from_u(F_res, _u_from_time(F_iop, t_forced, u_t)), t_res)
    p_die = 0.012 * np.exp(0.7 * opi + 0.8 * older + 0.3 * z)
    raw_death = np.where(death, 0.0, np.where(rng.random(n) < p_die, 1 + 364 * rng.random(n), np.inf))
    raw_death = np.where(forced & np.isfinite(t_forced), np.inf, raw_death)
    # the dead are not readmitted; a readmitted person's death belongs to a later episode
    out["po_readmit_t_iop"] = np.where(raw_death <= t_iop, np.inf, t_iop)
    out["po_readmit_t_res"] = np.where(raw_death <= t_res, np.inf, t_res)
    out["readmit_t"] = np.where(raw_death <= t_obs, np.inf, t_obs)
    out["death_day"] = np.where(raw_death > _gap_days(out["readmit_t"]), np.inf, raw_death)
    out["death_day"] = np.where(death, 0.0, out["death_day"])
    out["pe_no_readmission_30d"] = F_res[:, 0] - F_iop[:, 0]
    out["pe_no_readmission_90d"] = F_res[:, 1] - F_iop[:, 1]
    # --- abstinence at follow-up windows (full data: alive and abstinent)
    for w in WINDOWS:
        key = f"abstinent_{w}d"
        u_w = _copula(rng, [(0.4, engage), (0.5, relapse)])
        pw = _arm_probs(OUTCOME_MODELS[key], z, level, res_sub, shift, eff[key], mod.get(key, 0.0))
        alive = out["death_day"] > w
        for arm, p in zip(("iop", "res", "obs"), pw):
            out[f"po_{key}_{arm}"] = alive & (u_w < p)
        out[key] = out.pop(f"po_{key}_obs")
        out[f"pe_{key}"] = np.where(alive, pw[0] - pw[1], 0.0)
    return out


# ----------------------------------------------------------------------------- pathways

def _inherit(rng, parent: dict[str, np.ndarray], idx: np.ndarray, stepdown: bool,
             wait: np.ndarray) -> dict[str, np.ndarray]:
    """Covariates of a later episode of the same person (admission state = parent's discharge)."""
    n = idx.shape[0]
    c = {k: parent[k][idx] for k in ("site", "age", "sex", "race", "ethnicity", "substance",
                                      "co_occurring", "referral", "payer", "u", "person")}
    c["prior_episodes"] = np.minimum(parent["prior_episodes"][idx] + 1, 30).astype(np.int16)
    c["employed"] = parent["employed_discharge"][idx]
    c["homeless"] = parent["homeless_discharge"][idx]
    c["phq9_admit"] = np.clip(parent["phq9_discharge"][idx] + rng.integers(-1, 3, n), 0, 27).astype(np.int8)
    c["gad7_admit"] = np.clip(parent["gad7_discharge"][idx] + rng.integers(-1, 3, n), 0, 21).astype(np.int8)
    if stepdown:
        c["use_days_admit"] = parent["use_days_discharge"][idx].astype(np.int16)
        c["arrests_admit"] = parent["arrests_discharge"][idx]
    else:
        # a readmission follows relapse: use days redrawn, skewed to daily
        relapse_use = np.where(rng.random(n) < 0.5, 30, 1 + np.floor(28.999 * rng.beta(1.5, 1.0, n)))
        c["use_days_admit"] = np.where(rng.random(n) < 0.12, 0, relapse_use).astype(np.int16)
        c["arrests_admit"] = np.where(rng.random(n) < 0.08, 1, parent["arrests_discharge"][idx]).astype(np.int8)
    c["generation"] = (parent["generation"][idx] + 1).astype(np.int16)
    c["days_waiting"] = wait.astype(np.int16)
    return c


def _chain(rng, index: dict[str, np.ndarray], params, site_pref, site_eff, alpha, start_day, end_day):
    """Outcomes for every generation of episodes; step-downs and readmissions spawn the next."""
    batches = []
    batch = index
    n_idx = index["z"].shape[0]
    batch["discharge_day"] = start_day + np.floor(rng.random(n_idx) * (end_day - start_day + 1)).astype(np.int32)
    batch["admit_from_parent"] = np.full(n_idx, -1, dtype=np.int32)
    batch["is_stepdown"] = np.zeros(n_idx, dtype=bool)
    batch["forced_t"] = np.full(n_idx, np.nan)
    sd = params["stepdown"]
    for _ in range(40):
        n = batch["z"].shape[0]
        if n == 0:
            break
        _outcomes(rng, batch, params, site_eff)
        # dates
        has_parent = batch["admit_from_parent"] >= 0
        admit = np.where(has_parent, batch["admit_from_parent"], batch["discharge_day"] - batch["los"])
        batch["admit_day"] = admit.astype(np.int32)
        batch["discharge_day"] = np.where(has_parent, admit + batch["los"], batch["discharge_day"]).astype(np.int32)
        # episodes still open at the data end are not written
        keep = batch["discharge_day"] <= end_day
        batch = {k: v[keep] for k, v in batch.items()}
        n = keep.sum()
        level, reason = batch["level"], batch["reason"]
        gap = _gap_days(batch["readmit_t"])
        # step-downs
        p_sd = np.where(reason == COMPLETED, sd["completed"],
                        np.where(reason == TRANSFERRED, sd["transferred"], sd["other"]))
        p_sd = np.where(reason == DEATH, 0.0, p_sd)
        s = (1 + np.floor(14 * rng.beta(1.2, 2.5, n))).astype(np.int32)
        want_sd = np.isin(level, RESIDENTIAL) & (rng.random(n) < p_sd) & (batch["death_day"] > s)
        is_sd = want_sd & (s < gap) & ~batch["is_stepdown"]
        batch["stepdown_realized"] = is_sd
        batches.append(batch)
        sd_idx = np.flatnonzero(is_sd & (batch["discharge_day"] + s <= end_day))
        child = _inherit(rng, batch, sd_idx, stepdown=True, wait=s[sd_idx])
        child["admit_from_parent"] = (batch["discharge_day"][sd_idx] + s[sd_idx]).astype(np.int32)
        child["is_stepdown"] = np.ones(sd_idx.shape[0], dtype=bool)
        pt = batch["readmit_t"][sd_idx]
        child["forced_t"] = np.where(np.isinf(pt), np.inf, pt - s[sd_idx])
        # readmissions (step-down children share their parent's: they spawn none)
        re = (np.isfinite(batch["readmit_t"]) & ~batch["is_stepdown"]
              & (batch["death_day"] > gap) & (batch["discharge_day"] + gap <= end_day))
        re_idx = np.flatnonzero(re)
        wait = np.where(rng.random(re_idx.shape[0]) < 0.6, 0, np.minimum(rng.geometric(1 / 6.0, re_idx.shape[0]), 60))
        readm = _inherit(rng, batch, re_idx, stepdown=False, wait=wait)
        readm["admit_from_parent"] = (batch["discharge_day"][re_idx] + gap[re_idx]).astype(np.int32)
        readm["is_stepdown"] = np.zeros(re_idx.shape[0], dtype=bool)
        readm["forced_t"] = np.full(re_idx.shape[0], np.nan)
        readm["z"] = severity(readm)
        lv, rs = _assign(rng, _utilities(readm, readm["z"], site_pref, params["unmeasured"]), alpha)
        after_res = np.isin(level[re_idx], RESIDENTIAL) & (gap[re_idx] <= 14)
        readm["level"] = np.where(after_res & (lv == IOP), rs, lv).astype(np.int8)
        readm["res_sub"] = rs
        child["z"] = severity(child)
        _, child["res_sub"] = _assign(rng, _utilities(child, child["z"], site_pref, params["unmeasured"]), alpha)
        child["level"] = np.full(sd_idx.shape[0], IOP, dtype=np.int8)
        child["discharge_day"] = np.zeros(sd_idx.shape[0], dtype=np.int32)
        readm["discharge_day"] = np.zeros(re_idx.shape[0], dtype=np.int32)
        batch = {k: np.concatenate([child[k], readm[k]]) for k in child}
    return batches


# ----------------------------------------------------------------------------- truth

def counted_readmission(t: np.ndarray, reason: np.ndarray, stepdown: np.ndarray, window: int) -> np.ndarray:
    """Readmission within ``window`` days as levelcare counts it: after a 'transferred'
    discharge the first admission within 14 days is continuity (unless a step-down came first)."""
    gap = _gap_days(t)
    continuity = (reason == TRANSFERRED) & (gap <= 14) & ~stepdown
    return (gap <= window) & ~continuity


def potential_outcome_table(ep: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per truth key: (Y(iop), Y(res), in-population mask) as 0/1 arrays over all episodes.

    Tests recompute truth.json from these arrays (the ``po_*`` columns) independently.
    """
    ri, rr = ep["po_reason_iop"], ep["po_reason_res"]
    n = ri.shape[0]
    everyone = np.ones(n, dtype=bool)
    table = {
        "completion": (ri == COMPLETED, rr == COMPLETED, everyone),
        "completion_or_transfer": (np.isin(ri, [COMPLETED, TRANSFERRED]), np.isin(rr, [COMPLETED, TRANSFERRED]),
                                   everyone),
    }
    alive = ~ep["death_in_episode"]
    table["abstinent_discharge"] = (ep["po_use_days_discharge_iop"] == 0, ep["po_use_days_discharge_res"] == 0,
                                    alive)
    using = ep["use_days_admit"] > 0
    table["use_reduction"] = (ep["po_use_days_discharge_iop"] < ep["use_days_admit"],
                              ep["po_use_days_discharge_res"] < ep["use_days_admit"], alive & using)
    p_ad, g_ad = ep["phq9_admit"].astype(int), ep["gad7_admit"].astype(int)
    pi, pr = ep["po_phq9_discharge_iop"].astype(int), ep["po_phq9_discharge_res"].astype(int)
    gi, gr = ep["po_gad7_discharge_iop"].astype(int), ep["po_gad7_discharge_res"].astype(int)
    table["phq9_remission"] = (pi < 5, pr < 5, alive & (p_ad >= 10))
    table["phq9_response"] = (2 * (p_ad - pi) >= p_ad, 2 * (p_ad - pr) >= p_ad, alive & (p_ad >= 10))
    table["phq9_reliable_improvement"] = (p_ad - pi >= 5, p_ad - pr >= 5, alive & (p_ad >= 10))
    table["gad7_reliable_improvement"] = (g_ad - gi >= 4, g_ad - gr >= 4, alive & (g_ad >= 8))
    table["employment_gain"] = (ep["po_employed_discharge_iop"], ep["po_employed_discharge_res"],
                                alive & ~ep["employed"])
    table["housing_stable"] = (ep["po_housed_discharge_iop"], ep["po_housed_discharge_res"], alive)
    table["no_arrests"] = (ep["po_arrests_discharge_iop"] == 0, ep["po_arrests_discharge_res"] == 0, alive)
    sd_res = ep["stepdown_realized"]  # a step-down exists only after residential care
    no_sd = np.zeros(n, dtype=bool)
    for w in (30, 90):
        table[f"no_readmission_{w}d"] = (
            ~counted_readmission(ep["po_readmit_t_iop"], ri, no_sd, w),
            ~counted_readmission(ep["po_readmit_t_res"], rr, sd_res, w), everyone)
    for w in WINDOWS:
        table[f"abstinent_{w}d"] = (ep[f"po_abstinent_{w}d_iop"], ep[f"po_abstinent_{w}d_res"], everyone)
        if f"po_reached_{w}d_iop" in ep:  # native only: TEDS-D has no follow-ups
            answered = ep[f"answered_{w}d"]
            table[f"abstinent_{w}d_itt"] = (
                ep[f"po_reached_{w}d_iop"] & ep[f"po_abstinent_{w}d_iop"] & answered,
                ep[f"po_reached_{w}d_res"] & ep[f"po_abstinent_{w}d_res"] & answered,
                ep["days_observed"] >= w)
    return {k: (a.astype(np.int8), b.astype(np.int8), m) for k, (a, b, m) in table.items()}


EFFECT_OF_KEY = {**{f"abstinent_{w}d_itt": None for w in WINDOWS}, "use_reduction": None, "phq9_remission": "phq9_points", "phq9_response": "phq9_points",
                 "phq9_reliable_improvement": "phq9_points", "gad7_reliable_improvement": "gad7_points"}

TRUTH_NOTES = {
    "completion": "discharge_reason == completed, over all discharges",
    "completion_or_transfer": "discharge_reason in (completed, transferred)",
    "abstinent_discharge": "use_days_discharge == 0 (full data: as if never missing); deaths in treatment excluded",
    "use_reduction": "use_days_discharge < use_days_admit among people using at admission (full data)",
    "phq9_remission": "PHQ-9 < 5 at discharge among phq9_admit >= 10 (full data, true admission score)",
    "phq9_response": "drop of at least 50% among phq9_admit >= 10 (full data)",
    "phq9_reliable_improvement": "drop of 5+ points among phq9_admit >= 10 (full data)",
    "gad7_reliable_improvement": "drop of 4+ points among gad7_admit >= 8 (full data)",
    "employment_gain": "employed at discharge among not employed at admission (full data)",
    "housing_stable": "not homeless at discharge (full data)",
    "no_arrests": "no arrests in the 30 days before discharge (full data)",
    "no_readmission_30d": "no counted readmission within 30 days, full data: includes readmissions whose "
                          "episode is still open at the data end and so not written; after a transfer the "
                          "model looks at the next admission only, while levelcare's SQL also counts the one "
                          "after the transfer destination (about 0.1% of episodes at 30 days)",
    "no_readmission_90d": "no counted readmission within 90 days, full data (see no_readmission_30d)",
}
for _w in WINDOWS:
    TRUTH_NOTES[f"abstinent_{_w}d_itt"] = (
        f"the composite 'reached in the {_w}-day window, answered and abstinent' (missing = failure), among "
        f"episodes discharged at least {_w} days before the data end: the estimand of abstinent_{_w}d_itt. "
        "Reaching people is itself a potential outcome (it depends on the discharge outcomes and on use)")
    TRUTH_NOTES[f"abstinent_{_w}d_cc"] = (
        f"complete-case analysis aims at the full-data effect, so these are the values of abstinent_{_w}d; "
        "reaching people depends on covariates and on the outcome, so the complete-case estimate is biased for them")
    TRUTH_NOTES[f"abstinent_{_w}d"] = (
        f"alive and abstinent at {_w} days, FULL DATA (as if everyone were reached; deaths count as not "
        f"abstinent). abstinent_{_w}d_cc and abstinent_{_w}d_itt estimate different quantities because "
        "reaching people depends on covariates and on the outcome itself")


def compute_truth(ep: dict[str, np.ndarray], params) -> dict[str, Any]:
    """Sample ATE (iop U residential) and ATT (iop) of IOP vs group residential, risk differences."""
    group = ep["level"]
    in_iop = group == IOP
    in_cmp = in_iop | np.isin(group, RESIDENTIAL)
    effects = {}
    for key, (yi, yr, mask) in potential_outcome_table(ep).items():
        m, mt = in_cmp & mask, in_iop & mask
        diff = yi.astype(np.float64) - yr
        param_key = EFFECT_OF_KEY.get(key, key)
        entry: dict[str, Any] = {
            "ate": round(float(diff[m].mean()), 6) if m.any() else None,
            "att": round(float(diff[mt].mean()), 6) if mt.any() else None,
            "n": int(m.sum()), "n_iop": int(mt.sum()),
            "mean_iop": round(float(yi[m].mean()), 6) if m.any() else None,
            "mean_residential": round(float(yr[m].mean()), 6) if m.any() else None,
            "scale": "risk difference (IOP minus group residential), mean of Y(iop) - Y(res)",
            "definition": TRUTH_NOTES[key],
        }
        pe = ep.get(f"pe_{key}")
        if pe is not None and m.any():
            entry["expected_ate"] = round(float(pe[m].mean()), 6)
            entry["expected_att"] = round(float(pe[mt].mean()), 6) if mt.any() else None
        if param_key is not None:
            scale = "score points" if param_key in POINT_EFFECTS else "probability (risk difference at z = 0)"
            entry["effect_parameter"] = {"name": param_key, "value": params["effects"][param_key],
                                         "scale": scale,
                                         "modification_per_z": params["modification"].get(param_key, 0.0)}
        effects[key] = entry
    for w in WINDOWS:
        full = effects[f"abstinent_{w}d"]
        effects[f"abstinent_{w}d_cc"] = {**full, "definition": TRUTH_NOTES[f"abstinent_{w}d_cc"],
                                         "same_as": f"abstinent_{w}d"}
    return effects


def service_truth(ep: dict[str, np.ndarray]) -> dict[str, Any]:
    """The dose, family and cost truths (truth.json "services")."""
    group = ep["level"]
    in_iop = group == IOP
    in_cmp = in_iop | np.isin(group, RESIDENTIAL)
    diff = ep["po_cost_iop"] - ep["po_cost_res"]

    def mean(x, m):
        return round(float(x[m].mean()), 4) if m.any() else None

    return {
        "dose": {"outcome": "completion", "level_of_care": "iop", "log_odds_per_hour": DOSE_LOG_ODDS_PER_HOUR,
                 "definition": "within IOP, logit P(completed | hours_per_week, covariates) = "
                 "logit P(completed | covariates) + log_odds_per_hour x hours + a constant by age group "
                 "(completed episodes' hours are exponentially tilted; hours are rounded to 0.1)"},
        "family": {"outcome": "completion",
                   "log_odds_ratio": {lv: FAMILY_LOG_ODDS_RATIO[i] for i, lv in enumerate(LEVELS)},
                   "definition": "within each level, the conditional log odds ratio of completion for "
                   "family involvement given the covariates"},
        "cost": {"ate": mean(diff, in_cmp), "att": mean(diff, in_iop), "n": int(in_cmp.sum()),
                 "n_iop": int(in_iop.sum()), "mean_iop": mean(ep["po_cost_iop"], in_cmp),
                 "mean_residential": mean(ep["po_cost_res"], in_cmp),
                 "scale": "dollars per episode, IOP minus group residential: mean of cost(iop) - cost(res)",
                 "definition": "cost = cost per day of the level x length of stay (at least 1 day) x a "
                 "lognormal factor; the potential length of stay follows the potential discharge reason"},
    }


# ----------------------------------------------------------------------------- follow-ups

def _followups(rng, ep, params, no_followup_site, end_day) -> dict[str, np.ndarray]:
    n = ep["level"].shape[0]
    enrolled = (rng.random(n) < params["followup_enrolled"]) & (ep["site"] != no_followup_site)
    daily = ep["use_days_admit"] == 30
    cols: dict[str, list[np.ndarray]] = {k: [] for k in
                                         ("episode", "window", "contact_day", "status", "attempt")}
    # Reaching someone is a potential outcome too (it depends on the discharge outcomes): the
    # contact days and uniforms are common to the arms, the reach probability is the arm's.
    arms = {"obs": (ep["homeless_discharge"], ep["reason"], ep["employed_discharge"])}
    if "po_reason_iop" in ep:
        for arm in ("iop", "res"):
            arms[arm] = (~ep[f"po_housed_discharge_{arm}"], ep[f"po_reason_{arm}"], ep[f"po_employed_discharge_{arm}"])
    for wi, w in enumerate(WINDOWS):
        attempted = enrolled & (rng.random(n) < params["window_attempt"][w]) & (ep["reason"] != DEATH)
        ep[f"answered_{w}d"] = rng.random(n) >= MISSING["item"]  # abstinence item answered if reached
        lo, hi = WINDOW_TOLERANCE[w]
        idx = np.flatnonzero(attempted)
        k_n = idx.shape[0]
        first = w + rng.integers(-7, 8, k_n)
        gaps = rng.integers(3, 11, (2, k_n))
        days = [first, first + gaps[0], first + gaps[0] + gaps[1]]
        u = rng.random((3, k_n))
        again = rng.random((3, k_n)) < 0.7  # only 'unreachable' leads to another try, not always
        for arm, (homeless, reason, employed) in arms.items():
            abst = ep[f"abstinent_{w}d"] if arm == "obs" else ep[f"po_abstinent_{w}d_{arm}"]
            bad = np.isin(reason[idx], [DROPPED, TERMINATED, INCARCERATED])
            q = _expit(np.array([1.2, 0.8, 0.45, 0.1])[wi] - 0.9 * homeless[idx] - 0.7 * bad
                       - 0.3 * daily[idx] - 0.8 * ~abst[idx] + 0.3 * employed[idx])
            active = np.ones(k_n, dtype=bool)
            reached = np.zeros(k_n, dtype=bool)
            for k in range(3):
                day = days[k]
                happen = active & (day <= hi) & (ep["discharge_day"][idx] + day <= end_day) & (day >= lo)
                status = np.where(ep["death_day"][idx] <= day, 3,
                                  np.where(u[k] < q, 0, np.where(u[k] < q + 0.05, 2, 1))).astype(np.int8)
                reached |= happen & (status == 0)
                if arm == "obs":
                    sel = np.flatnonzero(happen)
                    cols["episode"].append(idx[sel])
                    cols["window"].append(np.full(sel.shape[0], w, dtype=np.int16))
                    cols["contact_day"].append((ep["discharge_day"][idx[sel]] + day[sel]).astype(np.int32))
                    cols["status"].append(status[sel])
                    cols["attempt"].append(np.full(sel.shape[0], k, dtype=np.int8))
                active = happen & (status == 1) & again[k]
            full = np.zeros(n, dtype=bool)
            full[idx] = reached
            ep[f"po_reached_{w}d_{arm}"] = full
    f = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.lexsort((f["attempt"], f["window"], f["episode"]))
    f = {k: v[order] for k, v in f.items()}
    m = f["episode"].shape[0]
    e = f["episode"]
    wk = f["window"]
    reached = f["status"] == 0
    abst = np.zeros(m, dtype=bool)
    for w in WINDOWS:
        sel = wk == w
        abst[sel] = ep[f"abstinent_{w}d"][e[sel]]
    days_after = f["contact_day"] - ep["discharge_day"][e]
    use = np.where(abst, 0, np.where(rng.random(m) < 0.1, 0, 1 + np.floor(29.999 * rng.beta(0.9, 0.9, m))))
    readm = _gap_days(ep["readmit_t"][e]) <= days_after
    overdose = rng.random(m) < np.where(abst, 0.004, 0.03 + 0.05 * (ep["substance"][e] == OPIOIDS))
    employed = np.where(rng.random(m) < 0.88, ep["employed_discharge"][e], rng.random(m) < 0.3)
    employed = np.where(abst, employed | (rng.random(m) < 0.05), employed)
    homeless = np.where(rng.random(m) < 0.9, ep["homeless_discharge"][e], rng.random(m) < 0.15)
    arrests = np.where(rng.random(m) < np.where(abst, 0.02, 0.07), 1, 0)
    phq = np.clip(np.rint(ep["phq9_discharge"][e] + 2.5 * ~abst + 2.5 * rng.standard_normal(m)), 0, 27)
    gad = np.clip(np.rint(ep["gad7_discharge"][e] + 2.0 * ~abst + 2.0 * rng.standard_normal(m)), 0, 21)
    er = rng.poisson(np.where(abst, 0.1, 0.3), m)
    f.update({"abstinent_30d": abst, "use_days_30": use.astype(np.int16), "readmitted": readm,
              "overdose": overdose, "employed": employed, "homeless": homeless,
              "arrests_30": arrests.astype(np.int8), "phq9": phq.astype(np.int8), "gad7": gad.astype(np.int8),
              "er_visits_30": er.astype(np.int16), "reached": reached})
    # item non-response among reached; nothing recorded unless reached
    for k in ("use_days_30", "readmitted", "overdose", "employed", "homeless",
              "arrests_30", "phq9", "gad7", "er_visits_30"):
        f[f"{k}__valid"] = reached & (rng.random(m) >= MISSING["item"])
    answered = np.zeros(m, dtype=bool)
    for w in WINDOWS:
        sel = wk == w
        answered[sel] = ep[f"answered_{w}d"][e[sel]]
    f["abstinent_30d__valid"] = reached & answered
    return f


# ----------------------------------------------------------------------------- entry point

def resolve_params(effects: dict[str, float] | None = None, modification: dict[str, float] | None = None,
                   **options: Any) -> dict[str, Any]:
    """Defaults overridden by ``options``; unknown keys are an error (ValueError)."""
    params = copy.deepcopy(DEFAULTS)
    params["effects"] = dict(DEFAULT_EFFECTS)
    params["modification"] = dict(DEFAULT_MODIFICATION)
    for key, value in (effects or {}).items():
        if key not in params["effects"]:
            raise ValueError(f"unknown effect '{key}' (known: {', '.join(sorted(DEFAULT_EFFECTS))})")
        params["effects"][key] = float(value)
    for key, value in (modification or {}).items():
        if key not in params["effects"]:
            raise ValueError(f"unknown effect modification '{key}'")
        params["modification"][key] = float(value)
    for key, value in options.items():
        if key not in DEFAULTS:
            raise ValueError(f"unknown option '{key}'")
        if value is not None:
            params[key] = value
    return params


def generate(records: int, seed: int, fmt: str = "native", **options: Any) -> SynthData:
    """Draw ``records`` episodes (exactly) with potential outcomes and truth."""
    params = resolve_params(**options)
    if records < 1:
        raise ValueError("records must be at least 1")
    n_sites = int(params["sites"])
    if not 1 <= n_sites <= 100:
        raise ValueError("sites must be between 1 and 100")
    start, end, labels = period_bounds(params)
    start_day, end_day = (start - date(1970, 1, 1)).days, (end - date(1970, 1, 1)).days
    mix_d = params["level_mix"] or (TEDS_MIX if fmt == "teds-d" else NATIVE_MIX)
    mix = np.array([float(mix_d.get(lv, 0.0)) for lv in LEVELS])
    if mix[OUTPATIENT] <= 0 or mix.sum() <= 0:
        raise ValueError("level_mix needs a positive outpatient share")
    mix = mix / mix.sum()
    # episodes per person at the default parameters, by number of quarters (measured); a bit
    # less is assumed so one pass almost always suffices without drawing many spare episodes
    per_person = float(np.interp(int(params["quarters"]), [1, 2, 4, 8, 10, 16, 24, 40],
                                 [1.136, 1.257, 1.386, 1.53, 1.568, 1.634, 1.667, 1.688]))
    ratio = 1 + 0.85 * (per_person - 1) * (0.8 if fmt == "teds-d" else 1.0)
    for _attempt in range(6):
        rng = np.random.default_rng(np.random.PCG64(seed))
        site_w = site_weights(n_sites)
        site_pref = rng.normal(0, 0.4, n_sites)
        site_eff = rng.normal(0, 0.15, n_sites)
        n_index = math.ceil(records / ratio) + 50
        idx = _index_covariates(rng, n_index, n_sites, site_w)
        idx["person"] = np.arange(n_index, dtype=np.int64)
        idx["generation"] = np.zeros(n_index, dtype=np.int16)
        idx["z"] = severity(idx)
        v = _utilities(idx, idx["z"], site_pref, params["unmeasured"])
        alpha = calibrate_intercepts(v[:50_000], mix)
        idx["level"], idx["res_sub"] = _assign(rng, v, alpha)
        del v
        batches = _chain(rng, idx, params, site_pref, site_eff, alpha, start_day, end_day)
        keys = [k for k in batches[0] if k not in ("forced_t", "admit_from_parent")]
        ep = {}
        for key in keys:  # one column at a time, freeing the batches' copies as we go
            ep[key] = np.concatenate([b.pop(key) for b in batches])
            if key.startswith("pe_"):
                ep[key] = ep[key].astype(np.float32)
        del batches
        counts = np.bincount(ep["person"], minlength=n_index)
        cs = np.cumsum(counts)
        k = int(np.searchsorted(cs, records, side="right"))
        have = int(cs[k - 1]) if k > 0 else 0
        deficit = records - have
        singles = np.flatnonzero(counts[k:] == 1)[:deficit] + k
        if have + singles.shape[0] == records:
            break
        # too few: retry from the same seed with the ratio actually seen, minus a margin
        ratio = max(1.0, 0.9 * counts.sum() / n_index)
    else:  # pragma: no cover - the ratio adapts within a few attempts
        raise RuntimeError("could not draw the requested number of episodes")
    keep_person = np.zeros(n_index, dtype=bool)
    keep_person[:k] = True
    keep_person[singles] = True
    sel = np.flatnonzero(keep_person[ep["person"]])
    # output order: by discharge date, ties by a random key; ids follow that order
    tiebreak = rng.random(records)
    take = sel[np.lexsort((tiebreak, ep["discharge_day"][sel]))]
    for key in list(ep):
        ep[key] = ep[key][take]
    person_ids = rng.permutation(n_index)
    ep["person_code"] = person_ids[ep["person"]]
    n = records
    # asam_level: beside level_of_care for some rows, alone for a few (unambiguous codes only)
    u = rng.random(n)
    mappable = np.isin(ep["level"], [OUTPATIENT, IOP, PHP, RES_SHORT, RES_HOSP, INPATIENT])
    ep["asam_only"] = mappable & (u < params["asam_only_share"])
    code = np.asarray(ASAM_OF_LEVEL)[ep["level"]]
    short_code = rng.choice(np.array([3, 4, 5]), size=n, p=[0.3, 0.2, 0.5])
    ep["asam_code"] = np.where(ep["level"] == RES_SHORT, short_code, code).astype(np.int8)
    ep["asam_given"] = (code >= 0) & (u < params["asam_only_share"] + params["asam_both_share"])
    ep["asam_given"] |= ep["asam_only"]
    _extras(rng, ep)
    ep["days_observed"] = (end_day - ep["discharge_day"]).astype(np.int32)
    fu = _followups(rng, ep, params, NO_FOLLOWUP_SITE if n_sites > NO_FOLLOWUP_SITE else -1, end_day) \
        if fmt == "native" else None
    effects = compute_truth(ep, params)
    in_res = np.isin(ep["level"], RESIDENTIAL)
    services = service_truth(ep)
    truth = {
        "generator": "levelcare synth (pipelines/synth/model.py)",
        "seed": int(seed), "records": int(records), "format": fmt,
        "followup_rows": int(fu["episode"].shape[0]) if fu is not None else 0,
        "period": {"start": start.isoformat(), "end": end.isoformat(), "quarters": labels,
                   "data_end_date": end.isoformat()},
        "comparison": {"arm": "iop", "reference": "group residential (residential_short, residential_long, "
                       "residential_hospital)", "ate_population": "episodes with level_of_care iop or residential",
                       "att_population": "episodes with level_of_care iop",
                       "residential_potential_outcome": "under the residential level the person would get "
                       "(potential residential subtype)"},
        "effects": effects,
        "services": services,
        "shares": {
            "level_of_care": {lv: round(float((ep["level"] == i).mean()), 6) for i, lv in enumerate(LEVELS)},
            "stepdown_of_residential": round(float(ep["stepdown_realized"][in_res].mean()), 6) if in_res.any() else None,
            "stepdown_episodes": round(float(ep["is_stepdown"].mean()), 6),
            "readmission_episodes": round(float((ep["generation"] > 0).mean() - ep["is_stepdown"].mean()), 6),
            "asam_only": round(float(ep["asam_only"].mean()), 6),
            "persons": int((np.bincount(ep["person"]) > 0).sum()),
        },
        "parameters": {
            "effects": params["effects"], "effect_modification_per_z": params["modification"],
            "effect_scale": "probability scale: p_iop = clip(p_res + delta + gamma * z); phq9/gad7 in points",
            "sites": n_sites, "site_weights": [round(float(x), 6) for x in site_weights(n_sites)],
            "site_residential_preference": [round(float(x), 6) for x in site_pref],
            "site_outcome_effect": [round(float(x), 6) for x in site_eff],
            "level_mix_target": {lv: round(float(x), 6) for lv, x in zip(LEVELS, mix)},
            "assignment_intercepts": {lv: (round(float(a), 6) if np.isfinite(a) else None)
                                      for lv, a in zip(LEVELS, alpha)},
            "unmeasured_confounding": params["unmeasured"],
            "severity_z": {"center": Z_CENTER, "scale": Z_SCALE},
            "outcome_models": OUTCOME_MODELS,
            "followup": {"enrolled": params["followup_enrolled"],
                         "window_attempt": {str(k): v for k, v in params["window_attempt"].items()},
                         "window_tolerance_days": {str(k): list(v) for k, v in WINDOW_TOLERANCE.items()}},
            "stepdown_probability": params["stepdown"],
            "asam_both_share": params["asam_both_share"], "asam_only_share": params["asam_only_share"],
        },
        "notes": [
            ("ate/att are sample quantities: means of Y(iop) - Y(res) over the drawn potential outcomes; "
             "expected_ate/expected_att are means of the individual probability differences; "
             "effect_parameter is the population parameter delta of the model (at z = 0)."),
            ("Truth is over full data: missing scores, unreached follow-ups and unwritten open episodes do "
             "not change it; estimators that need those data can be biased by design."),
        ],
    }
    return SynthData(episodes=ep, followups=fu or {}, truth=truth, data_end_day=end_day)


def _extras(rng, ep):
    """Fields that are not outcomes of the comparison: program, hours, cost, MAT, ..."""
    n = ep["level"].shape[0]
    level = ep["level"]
    lo = np.array([h[0] for h in HOURS_RANGE])[level]
    hi = np.array([h[1] for h in HOURS_RANGE])[level]
    adolescent = ep["age"] <= 1
    lo = np.where(adolescent & (level == IOP), 6.0, lo)
    # dose: hours are uniform on the level's range, except for completed IOP episodes, whose hours
    # are exponentially tilted (density proportional to exp(beta h)): then, within IOP,
    # logit P(completed | hours, covariates) = logit P(completed | covariates) + beta h + const
    # exactly (the const depends on the range only, i.e. on adolescence, a covariate)
    u = rng.random(n)
    beta = DOSE_LOG_ODDS_PER_HOUR
    tilted = (level == IOP) & (ep["reason"] == COMPLETED)
    span = hi - lo
    hours = np.where(tilted, lo + np.log1p(u * np.expm1(beta * span)) / beta, lo + span * u)
    ep["hours_per_week"] = np.round(hours, 1)
    attend = np.where(ep["reason"] == COMPLETED, rng.uniform(0.8, 1.0, n), rng.uniform(0.3, 0.9, n))
    weeks = np.maximum(ep["los"], 1) / 7.0
    ep["sessions_attended"] = np.rint(weeks * np.asarray(SESSIONS_PER_WEEK)[level] * attend).astype(np.int32)
    # family involvement: odds of involvement exp(FAMILY_LOG_ODDS_RATIO[level]) times higher after a
    # completed episode; so within a level, the conditional odds ratio of completion for involvement
    # (given the covariates, adolescence among them) is exactly that
    q0 = np.where(adolescent, 0.6, 0.22)
    q1 = _expit(np.log(q0 / (1 - q0)) + np.asarray(FAMILY_LOG_ODDS_RATIO)[level])
    ep["family_involved"] = rng.random(n) < np.where(ep["reason"] == COMPLETED, q1, q0)
    sat = 3.2 + 0.9 * (ep["reason"] == COMPLETED) + 0.9 * rng.standard_normal(n)
    ep["satisfaction"] = np.clip(np.rint(sat), 1, 5).astype(np.int8)
    ep["satisfaction__valid"] = rng.random(n) < np.where(ep["reason"] == COMPLETED, 0.7, 0.35)
    per_day = np.asarray(COST_PER_DAY, dtype=float)
    noise = np.exp(0.2 * rng.standard_normal(n))
    ep["episode_cost"] = np.round(per_day[level] * np.maximum(ep["los"], 1) * noise, 2)
    # the potential costs under IOP and the residential subtype (same noise): the cost truth
    ep["po_cost_iop"] = np.round(per_day[IOP] * np.maximum(ep["po_los_iop"], 1) * noise, 2)
    ep["po_cost_res"] = np.round(per_day[ep["res_sub"]] * np.maximum(ep["po_los_res"], 1) * noise, 2)
    opi, alc = ep["substance"] == OPIOIDS, ep["substance"] == ALCOHOL
    ep["mat"] = rng.random(n) < np.where(opi, np.where(np.isin(level, RESIDENTIAL), 0.35, 0.55),
                                         np.where(alc, 0.15, 0.02))
    for key, share in MISSING.items():
        if key != "item":
            ep[f"{key}__valid"] = rng.random(n) >= share
    r = ep["reason"]
    score_missing = np.asarray(MISSING_SCORE_BY_REASON)[r]
    ep["phq9_discharge__valid"] = ep["phq9_admit__valid"] & (rng.random(n) >= score_missing)
    ep["gad7_discharge__valid"] = ep["gad7_admit__valid"] & (rng.random(n) >= score_missing)
    ep["use_days_discharge__valid"] = (r != DEATH) & (rng.random(n) >= np.where(np.isin(r, [DROPPED, TERMINATED]), 0.10, 0.04))
    for key in ("employed_discharge", "homeless_discharge", "arrests_discharge"):
        ep[f"{key}__valid"] &= r != DEATH
