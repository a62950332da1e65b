"""Synthetic data with a known truth for ``levelcare benchmark`` (indirect standardization).

``levelcare synth --format benchmark`` (:func:`write_benchmark_files`) writes

* ``tedsd_puf.csv``: a national TEDS-D public use file (2017-2020 codebook, the writer of
  :mod:`pipelines.synth.teds`) whose treatment completion (``REASON = 1``) follows the
  *national model* below exactly;
* ``discharges.csv``: native records (the writer of ``levelcare synth``) of a *program* with
  ``sites`` sites whose completion log-odds differ from the national model by a known offset
  per site (no ``followups.csv``: the benchmark needs none);
* ``truth.json``: the model, the offsets and, for the program, observed and *true* expected
  completions per site and level of care (key ``benchmark``).

How the files are made
----------------------
Episodes come from the ordinary generator (:func:`pipelines.synth.model.generate`): the
national rows with the TEDS-D level mix (``fmt="teds-d"``, 8 sites that become states), the
program's with the native mix *without php and inpatient* (outpatient 22, iop 24, short /
long / hospital residential 15 / 9 / 3, detox 16, renormalised), since TEDS-D has no such
setting and the national model cannot cover them. Native and TEDS-D case mixes differ (the
program is far more residential and IOP), so crude and case-mix-adjusted comparisons differ.
Then the discharge reason is **overwritten**: each episode is completed with probability
``expit(eta(x) + offset[site])`` (offset 0 in the national file), one uniform per row; a
completed draw sets the reason to ``completed`` (REASON 1); otherwise a non-completed
original reason is kept and an originally completed one becomes dropped_out / transferred /
terminated / other with the TEDS-D 2019 shares among those four (0.45 / 0.38 / 0.10 / 0.07).
Everything else stays as generated. Columns that the generator derived from its *own* reason
(hours_per_week, sessions_attended, family_involved, satisfaction, the missingness of the
discharge scores; FREQ_ATND_SELF_HELP_D in TEDS-D) are therefore not consistent with the new
reason: use these files for the benchmark, not for the dose, family or score truths.

The national model (main effects, on the values in ``mart_episodes`` after ingest)
-------------------------------------------------------------------------------
``logit P(completed) = b_level[level_of_care] + b_age[age group of age_band] + b_sex[sex]
+ b_race[race] + b_eth[ethnicity] + b_sub[primary_substance] + b_mh[co_occurring_mh]
+ b_home[homeless_admit] + b_emp[employed_admit] + b_prior[has_prior_episodes]
+ b_ref[referral_source] + b_pay[payer]``

with the coefficients in :data:`COEFFICIENTS` (also in truth.json), reference level first (0):

=====================  ==========================================================================
level_of_care          one intercept per level, no other intercept: outpatient -0.4, iop -0.35,
                       residential_short 0.8, residential_long 0.1, residential_hospital 1.2,
                       detox 1.0
age group of age_band  35-49 0; 12-17 (12-14, 15-17) -0.35; 18-24 (18-20, 21-24) -0.25;
                       25-34 (25-29, 30-34) -0.1; 50+ (50-54, 55-64, 65+) 0.2
sex                    male 0; female -0.1; other 0 (not in TEDS-D, see below); unknown -0.2
race                   white 0; black -0.2; american_indian -0.3; alaska_native -0.3; asian 0.1;
                       pacific_islander 0; multiple -0.1; other -0.05; unknown -0.15
ethnicity              not_hispanic 0; hispanic 0.1; unknown -0.1
primary_substance      alcohol 0; opioids -0.4; stimulants -0.3; cannabis -0.15; sedatives -0.2;
                       other -0.1; none 0.2
co_occurring_mh        false 0; true -0.25; missing -0.1
homeless_admit         false 0; true -0.45; missing -0.15
employed_admit         false 0; true 0.35; missing -0.1
has_prior_episodes     false 0; true -0.2; missing -0.3
referral_source        self 0; court 0.6; provider 0.15; school 0.2; employer 0.4; community 0.1;
                       other 0 (not in TEDS-D, see below); missing 0 (never occurs)
payer                  medicaid 0; medicare 0.05; private 0.3; self 0.1; other 0.1; none -0.1;
                       unknown -0.2
=====================  ==========================================================================

Missing values: every covariate is a categorical term whose levels are the mart's values.
Booleans have three levels, true, false and *missing* (SQL null); the words columns keep the
``unknown`` word that ingest gives a TEDS ``-9`` (sex, race, ethnicity, payer). A missing or
unknown value is thus its own level with its own coefficient, so a main-effects logistic model
fitted on the national mart rows with a "missing" level per covariate (and the age groups, or
the 12 bands: the bands within a group share one coefficient) targets exactly these
coefficients. eta is computed from the values the warehouse will hold:

* national rows: from the written codes through ``data_contracts/teds_d_codes.yaml`` (the
  tables ingest uses), so the writer's random ``-9`` masks (EMPLOY, LIVARAG, PSYPROB 3%,
  PRIMPAY 30%, NOPRIOR where prior episodes are missing, GENDER for sex other/unknown,
  RACE/ETHNIC unknown) are in the model as the missing/unknown level. Note that TEDS-D folds
  some native words together: sex ``other`` is written ``-9`` (unknown), referral ``other``
  is PSOURCE 6 (community), payer ``other`` is PRIMPAY 5 or 7 (other);
* program rows: from the written words (``has_prior_episodes`` = prior_episodes > 0, null
  when prior_episodes is blank; ``level_of_care`` derived from ``asam_level`` where only that
  is given: the ASAM code of every level used here maps back to that level).

Two program levels never occur in the national file: sex ``other`` (~0.3% of rows) and
referral ``other`` (~4%). The truth gives them the reference coefficient 0 (that of male and
of self-referral), which is what a dummy-coded fit with those references implies for an
unseen level; truth.json lists them (``model.levels_absent_from_national``) and counts their
program rows (``program.absent_level_rows``).

Intercepts are chosen so the national completion rates by setting land near TEDS-D 2019
(detox ~62%, hospital residential ~65%, short ~54%, long ~39%, outpatient ~35%, IOP ~32%).

Site offsets (default, 6 sites: ``[0.6, -0.3, 0.0, 0.3, -0.6, 0.0]``, cycled for other
numbers of sites) are added to the log-odds of every episode of the site. The generator's
site sizes are skewed (site-a ~39%, b ~28%, c ~19%, d ~13.5% of 6 sites; e and f are tiny:
~0.1% and ~0.06%), so the four big sites carry offsets +0.6, -0.3, 0 and +0.3 and the tiny
site-e the -0.6 (a small, truly worse site).

truth.json ``benchmark``
------------------------
``model`` (formula, coefficients, reference levels, age groups, missing coding),
``site_offsets`` (site -> offset), ``national.levels`` (per level of care and ``all``: n,
observed, expected = sum of the model probabilities, mean_probability) and
``program.cells[site or "all"][level or "all"]``: ``n``, ``observed`` completions,
``expected`` = sum of p_national(x_i) with the true coefficients, ``expected_with_offset`` =
sum of expit(logit p_i + offset_site), ``true_oe`` = observed / expected and
``population_oe`` = expected_with_offset / expected (the O/E an infinitely large draw of the
same episodes would give; observed is a draw around expected_with_offset). Every level of
care is present in every site; cells with n = 0 have null ratios. Floats are rounded to 6
decimals.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from pipelines.errors import UserError

# TEDS settings, in the order of the level_of_care term
TEDS_LEVELS = ["outpatient", "iop", "residential_short", "residential_long", "residential_hospital", "detox"]
AGE_GROUPS = {"12-17": ["12-14", "15-17"], "18-24": ["18-20", "21-24"], "25-34": ["25-29", "30-34"],
              "35-49": ["35-39", "40-44", "45-49"], "50+": ["50-54", "55-64", "65+"]}
MISSING = "missing"  # the level of a null value (booleans, referral_source)

# term -> level -> coefficient; the first level is the reference (0). "missing" = SQL null in the
# mart; "unknown" is the word ingest gives a TEDS -9 (sex, race, ethnicity, payer).
COEFFICIENTS: dict[str, dict[str, float]] = {
    "level_of_care": {"outpatient": -0.4, "iop": -0.35, "residential_short": 0.8, "residential_long": 0.1,
                      "residential_hospital": 1.2, "detox": 1.0},
    "age_group": {"35-49": 0.0, "12-17": -0.35, "18-24": -0.25, "25-34": -0.1, "50+": 0.2},
    "sex": {"male": 0.0, "female": -0.1, "other": 0.0, "unknown": -0.2},
    "race": {"white": 0.0, "black": -0.2, "american_indian": -0.3, "alaska_native": -0.3, "asian": 0.1,
             "pacific_islander": 0.0, "multiple": -0.1, "other": -0.05, "unknown": -0.15},
    "ethnicity": {"not_hispanic": 0.0, "hispanic": 0.1, "unknown": -0.1},
    "primary_substance": {"alcohol": 0.0, "opioids": -0.4, "stimulants": -0.3, "cannabis": -0.15,
                          "sedatives": -0.2, "other": -0.1, "none": 0.2},
    "co_occurring_mh": {"false": 0.0, "true": -0.25, MISSING: -0.1},
    "homeless_admit": {"false": 0.0, "true": -0.45, MISSING: -0.15},
    "employed_admit": {"false": 0.0, "true": 0.35, MISSING: -0.1},
    "has_prior_episodes": {"false": 0.0, "true": -0.2, MISSING: -0.3},
    "referral_source": {"self": 0.0, "court": 0.6, "provider": 0.15, "school": 0.2, "employer": 0.4,
                        "community": 0.1, "other": 0.0, MISSING: 0.0},
    "payer": {"medicaid": 0.0, "medicare": 0.05, "private": 0.3, "self": 0.1, "other": 0.1, "none": -0.1,
              "unknown": -0.2},
}
# mart column of each term (age_group is a function of age_band)
TERM_COLUMN = {term: term for term in COEFFICIENTS} | {"age_group": "age_band"}
ABSENT_FROM_NATIONAL = {"sex": ["other"], "referral_source": ["other"]}
DEFAULT_OFFSETS = [0.6, -0.3, 0.0, 0.3, -0.6, 0.0]
# non-completed reasons for an originally completed episode: TEDS-D 2019 shares
NONCOMPLETE_SHARES = {"dropped_out": 0.45, "transferred": 0.38, "terminated": 0.10, "other": 0.07}
TEDS_REASON = {"completed": 1, "dropped_out": 2, "terminated": 3, "transferred": 4, "other": 7}
# TEDS-D code columns of each term (2017-2020 codebook) and their yaml code table
TEDS_SOURCE = {"level_of_care": ("SERVICES_D", "services"), "age_group": ("AGE", "age"),
               "sex": ("GENDER", "gender"), "race": ("RACE", "race"), "ethnicity": ("ETHNIC", "ethnic"),
               "primary_substance": ("SUB1", "substance"), "co_occurring_mh": ("PSYPROB", "yes_no"),
               "homeless_admit": ("LIVARAG", "livarag"), "employed_admit": ("EMPLOY", "employ"),
               "has_prior_episodes": ("NOPRIOR", "noprior"), "referral_source": ("PSOURCE", "psource"),
               "payer": ("PRIMPAY", "primpay")}


def age_group(band: str | None) -> str | None:
    for group, bands in AGE_GROUPS.items():
        if band in bands:
            return group
    return None


def level_key(term: str, value: Any) -> str:
    """The coefficient key of a mart value: a word, 'true'/'false', or 'missing' for null."""
    if term == "age_group":
        value = age_group(value) if value is not None else None
    if value is None:
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def coefficient(term: str, value: Any) -> float:
    """The coefficient of one mart value (KeyError for a value the model does not know)."""
    return COEFFICIENTS[term][level_key(term, value)]


def _expit(x):
    from scipy.special import expit

    return expit(x)


def _lut(term: str, values: list[Any]) -> np.ndarray:
    """Coefficients of a list of mart values (index -> coefficient)."""
    return np.array([coefficient(term, v) for v in values], dtype=np.float64)


def teds_eta(frame) -> tuple[np.ndarray, np.ndarray]:
    """(eta, level index into TEDS_LEVELS) of every TEDS-D row, from its codes through the code
    tables ingestion uses (a code not in a table, -9 included, is the table's 'missing' value,
    else null)."""
    from pipelines.contracts import teds_codes

    tables = teds_codes()["tables"]
    n = frame.height
    eta = np.zeros(n)
    level = None
    for term, (column, table_name) in TEDS_SOURCE.items():
        table = tables[table_name]
        present, index = np.unique(frame[column].to_numpy().astype(np.int64), return_inverse=True)
        values = [table[c][0] if c in table else table.get("missing") for c in present.tolist()]
        eta += _lut(term, values)[index]
        if term == "level_of_care":
            level = np.array([TEDS_LEVELS.index(v) if v in TEDS_LEVELS else -1 for v in values])[index]
    assert level is not None and (level >= 0).all()
    return eta, level


def native_eta(ep: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(eta, level index into TEDS_LEVELS) of every generated native episode, from the values
    the discharges file carries (prior_episodes blank -> has_prior_episodes null)."""
    from pipelines.synth import model as m

    level = np.array([TEDS_LEVELS.index(v) if v in TEDS_LEVELS else -1 for v in m.LEVELS])[ep["level"]]
    if (level < 0).any():
        raise ValueError("the program has a level of care without a TEDS-D setting (php or inpatient)")
    eta = _lut("level_of_care", TEDS_LEVELS)[level]
    eta += _lut("age_group", m.AGE_BANDS)[ep["age"]]
    eta += _lut("sex", m.SEXES)[ep["sex"]]
    eta += _lut("race", m.RACES)[ep["race"]]
    eta += _lut("ethnicity", m.ETHNICITIES)[ep["ethnicity"]]
    eta += _lut("primary_substance", m.SUBSTANCES)[ep["substance"]]
    eta += _lut("referral_source", m.REFERRALS)[ep["referral"]]
    eta += _lut("payer", m.PAYERS)[ep["payer"]]
    for term, key in (("co_occurring_mh", "co_occurring"), ("homeless_admit", "homeless"),
                      ("employed_admit", "employed")):
        valid = ep.get(f"{key}__valid", np.ones(level.shape[0], dtype=bool))
        eta += np.where(valid, _lut(term, [False, True])[ep[key].astype(np.int64)], coefficient(term, None))
    prior = (ep["prior_episodes"] > 0).astype(np.int64)
    eta += np.where(ep["prior_episodes__valid"], _lut("has_prior_episodes", [False, True])[prior],
                    coefficient("has_prior_episodes", None))
    return eta, level


def _draw(rng: np.random.Generator, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(completed, replacement index into NONCOMPLETE_SHARES): one uniform and one choice per row."""
    completed = rng.random(p.shape[0]) < p
    shares = np.array(list(NONCOMPLETE_SHARES.values()))
    replacement = rng.choice(shares.shape[0], size=p.shape[0], p=shares / shares.sum())
    return completed, replacement


def _cell(n: int, observed: int, expected: float, with_offset: float) -> dict[str, Any]:
    return {"n": int(n), "observed": int(observed), "expected": round(float(expected), 6),
            "expected_with_offset": round(float(with_offset), 6),
            "true_oe": round(float(observed / expected), 6) if n else None,
            "population_oe": round(float(with_offset / expected), 6) if n else None}


def _cells(level: np.ndarray, completed: np.ndarray, p: np.ndarray, q: np.ndarray) -> dict[str, Any]:
    k = len(TEDS_LEVELS)
    n = np.bincount(level, minlength=k)
    o = np.bincount(level, weights=completed.astype(np.float64), minlength=k)
    e = np.bincount(level, weights=p, minlength=k)
    w = np.bincount(level, weights=q, minlength=k)
    out = {lv: _cell(n[i], o[i], e[i], w[i]) for i, lv in enumerate(TEDS_LEVELS)}
    out["all"] = _cell(n.sum(), o.sum(), e.sum(), w.sum())
    return out


def default_offsets(sites: int) -> list[float]:
    return [DEFAULT_OFFSETS[i % len(DEFAULT_OFFSETS)] for i in range(sites)]


def model_description() -> dict[str, Any]:
    return {
        "formula": ("logit P(discharge_reason = completed) = b_level_of_care[level_of_care] "
                    "+ b_age_group[age group of age_band] + b_sex[sex] + b_race[race] + b_ethnicity[ethnicity] "
                    "+ b_primary_substance[primary_substance] + b_co_occurring_mh[co_occurring_mh] "
                    "+ b_homeless_admit[homeless_admit] + b_employed_admit[employed_admit] "
                    "+ b_has_prior_episodes[has_prior_episodes] + b_referral_source[referral_source] "
                    "+ b_payer[payer] (+ site offset in the program)"),
        "values": ("mart_episodes values after ingest; 'missing' = SQL null (booleans, referral_source), "
                   "'unknown' = the word ingest gives a TEDS-D -9 (sex, race, ethnicity, payer); each is its "
                   "own level with its own coefficient"),
        "reference_levels": {term: next(iter(levels)) for term, levels in COEFFICIENTS.items()
                             if term != "level_of_care"},
        "reference_note": ("the reference level of each term has coefficient 0; level_of_care has one intercept "
                           "per level and there is no other intercept"),
        "coefficients": COEFFICIENTS,
        "term_column": TERM_COLUMN,
        "age_groups": AGE_GROUPS,
        "levels_of_care": TEDS_LEVELS,
        "levels_absent_from_national": ABSENT_FROM_NATIONAL,
        "absent_levels_note": ("TEDS-D has no sex 'other' (written -9: unknown) and no referral 'other' "
                               "(written PSOURCE 6: community); the program's rows with them get coefficient 0, "
                               "the reference level's"),
        "noncompleted_reason_shares": NONCOMPLETE_SHARES,
    }


def write_benchmark_files(out_dir, national_records: int, program_records: int, seed: int, sites: int = 6,
                          site_offsets: list[float] | None = None, teds_year: int = 2019) -> dict:
    """Write tedsd_puf.csv (national), discharges.csv (program) and truth.json into ``out_dir``;
    return the truth dictionary. Same arguments, same bytes."""
    import polars as pl

    from pipelines.synth import model, teds
    from pipelines.synth.command import _discharge_frame, make_folder

    if national_records < 1 or program_records < 1:
        raise UserError("synth benchmark: --records and --program-records must be at least 1")
    if seed < 0:
        raise UserError("--seed must be 0 or more")
    if not 1 <= sites <= 100:
        raise UserError("--sites must be between 1 and 100")
    if not 2017 <= teds_year <= 2020:
        raise UserError("--teds-year must be 2017-2020 (the 76-column codebook)")
    offsets = default_offsets(sites) if site_offsets is None else [float(x) for x in site_offsets]
    if len(offsets) != sites:
        raise UserError(f"synth benchmark: {len(offsets)} site offsets for {sites} sites (one per site)")
    if not all(np.isfinite(offsets)) or max(abs(x) for x in offsets) > 5:
        raise UserError("synth benchmark: site offsets must be finite log-odds between -5 and 5")
    out = make_folder(out_dir)

    # national: the TEDS-D writer, then REASON from the model
    data = model.generate(national_records, seed, fmt="teds-d")
    frame = teds.teds_frame(data, np.random.default_rng(np.random.PCG64([seed, 2])), teds_year)
    del data
    eta, level = teds_eta(frame)
    p = _expit(eta)
    completed, replacement = _draw(np.random.default_rng(np.random.PCG64([seed, 31])), p)
    codes = np.array([TEDS_REASON[r] for r in NONCOMPLETE_SHARES])[replacement]
    reason = frame["REASON"].to_numpy()
    reason = np.where(completed, 1, np.where(reason == 1, codes, reason))
    frame = frame.with_columns(pl.Series("REASON", reason.astype(np.int64)))
    frame.write_csv(out / "tedsd_puf.csv")
    del frame
    national = _cells(level, completed, p, p)
    for cell in national.values():
        for key in ("expected_with_offset", "true_oe", "population_oe"):
            cell.pop(key)
        cell["mean_probability"] = round(cell["expected"] / cell["n"], 6) if cell["n"] else None

    # program: native episodes without php / inpatient, reason from the model plus the site offset
    mix = {k: v for k, v in model.NATIVE_MIX.items() if k not in ("php", "inpatient")}
    program_seed = int(np.random.SeedSequence([seed, 41]).generate_state(1)[0])
    data = model.generate(program_records, program_seed, fmt="native", sites=sites,
                          level_mix=mix | {"php": 0.0, "inpatient": 0.0})
    ep = data.episodes
    eta, level = native_eta(ep)
    p = _expit(eta)
    offset = np.asarray(offsets)[ep["site"]]
    q = _expit(eta + offset)
    completed, replacement = _draw(np.random.default_rng(np.random.PCG64([seed, 32])), q)
    codes = np.array([model.REASONS.index(r) for r in NONCOMPLETE_SHARES])[replacement]
    ep["reason"] = np.where(completed, model.COMPLETED,
                            np.where(ep["reason"] == model.COMPLETED, codes, ep["reason"])).astype(ep["reason"].dtype)
    discharges, site_words = _discharge_frame(data)
    discharges.write_csv(out / "discharges.csv", float_precision=2, date_format="%Y-%m-%d")
    del discharges
    program: dict[str, Any] = {}
    for i, name in enumerate(site_words):
        sel = ep["site"] == i
        program[name] = _cells(level[sel], completed[sel], p[sel], q[sel])
    program["all"] = _cells(level, completed, p, q)
    absent = {
        "sex": {"other": int((ep["sex"] == model.SEXES.index("other")).sum())},
        "referral_source": {"other": int((ep["referral"] == model.REFERRALS.index("other")).sum())},
    }
    files = ["tedsd_puf.csv", "discharges.csv", "truth.json"]
    truth = {
        "generator": "levelcare synth --format benchmark (pipelines/synth/national.py)",
        "format": "benchmark", "seed": int(seed), "files": files, "teds_year": int(teds_year),
        "benchmark": {
            "model": model_description(),
            "site_offsets": dict(zip(site_words, offsets, strict=True)),
            "national": {"records": int(national_records), "file": "tedsd_puf.csv", "source": "teds-d",
                         "levels": national},
            "program": {"records": int(program_records), "file": "discharges.csv", "source": "native",
                        "sites": len(site_words), "period": data.truth["period"],
                        "absent_level_rows": absent, "cells": program},
        },
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True, allow_nan=False) + "\n",
                                    encoding="utf-8")
    return truth
