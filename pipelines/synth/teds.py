"""Map the synthetic episodes onto a TEDS-D public use file (2017-2020 codebook, 76 columns).

The episodes come from the same model as the native format (:mod:`pipelines.synth.model`)
with the assignment mix set near the 2019 SERVICES_D shares. Codes follow
``shared/reference/teds-d.md``; ``-9`` marks missing. Mapping:

* SERVICES_D / SERVICES: outpatient 7, iop 6, residential_short 4, residential_long 5,
  residential_hospital 3, detox 1 / 2 / 8 in the 2019 proportions (43,446 : 240,303 : 13,267);
  php (not a TEDS setting) 6 and inpatient 3 if a custom mix includes them.
* REASON 1-7 (completed, dropped out, terminated, transferred, incarcerated, death, other).
* LOS: days, one day added to ambulatory stays (SERVICES 6-8), bands 31-37 above 30 days.
* AGE 1-12 from the band; GENDER 1/2 (other/unknown -9); RACE, ETHNIC (hispanic split into
  Puerto Rican / Mexican / Cuban or other / not specified); FREQ1(_D) from use days (0 -> 1,
  1-29 -> 2, 30 -> 3); EMPLOY(_D) full/part-time for the employed, unemployed / not in labour
  force otherwise; LIVARAG(_D) 1 homeless, 2 dependent, 3 independent; ARRESTS(_D) 0/1/2;
  PSYPROB 1/2; NOPRIOR 0/1; PSOURCE, PRIMPAY, HLTHINS, DAYWAIT bands 0-4.
* SUB1 refines the primary substance (opioids: heroin 55%, other opiates 42%, methadone 3%;
  stimulants: methamphetamine 55%, cocaine 38%, ...); SUB2/SUB3 are secondary substances
  (1 = none); the *FLG columns are 1 when any of SUB1-3 is that substance; ALCDRUG and IDU
  follow from them. Variables with no counterpart in the model (EDUC, MARSTAT, VET, PREG,
  PRIMINC, DSMCRIT, FRSTUSE, ROUTE, self-help attendance, DETCRIM, DETNLF) are drawn with
  plausible marginals, consistent with the others where it matters (PREG only for women,
  DETNLF only when not in the labour force, DETCRIM only for court referrals).
* Sites become states (STFIPS with matching REGION, DIVISION and a CBSA2010 code or -9);
  CASEID = DISYR * 10^7 + row number. No person linkage and no follow-ups (TEDS has none).
"""

from __future__ import annotations

import numpy as np

COLUMNS = [
    "CASEID", "DISYR", "AGE", "GENDER", "RACE", "ETHNIC", "MARSTAT", "EDUC", "EMPLOY", "EMPLOY_D",
    "DETNLF", "DETNLF_D", "PREG", "VET", "LIVARAG", "LIVARAG_D", "PRIMINC", "ARRESTS", "ARRESTS_D",
    "STFIPS", "CBSA2010", "REGION", "DIVISION", "SERVICES", "SERVICES_D", "METHUSE", "DAYWAIT",
    "REASON", "LOS", "PSOURCE", "DETCRIM", "NOPRIOR", "SUB1", "SUB1_D", "ROUTE1", "FREQ1", "FREQ1_D",
    "FRSTUSE1", "SUB2", "SUB2_D", "ROUTE2", "FREQ2", "FREQ2_D", "FRSTUSE2", "SUB3", "SUB3_D", "ROUTE3",
    "FREQ3", "FREQ3_D", "FRSTUSE3", "IDU", "ALCFLG", "COKEFLG", "MARFLG", "HERFLG", "METHFLG",
    "OPSYNFLG", "PCPFLG", "HALLFLG", "MTHAMFLG", "AMPHFLG", "STIMFLG", "BENZFLG", "TRNQFLG", "BARBFLG",
    "SEDHPFLG", "INHFLG", "OTCFLG", "OTHERFLG", "ALCDRUG", "DSMCRIT", "PSYPROB", "HLTHINS", "PRIMPAY",
    "FREQ_ATND_SELF_HELP", "FREQ_ATND_SELF_HELP_D",
]
# SUB code of each *FLG column
FLAGS = {"ALCFLG": 2, "COKEFLG": 3, "MARFLG": 4, "HERFLG": 5, "METHFLG": 6, "OPSYNFLG": 7, "PCPFLG": 8,
         "HALLFLG": 9, "MTHAMFLG": 10, "AMPHFLG": 11, "STIMFLG": 12, "BENZFLG": 13, "TRNQFLG": 14,
         "BARBFLG": 15, "SEDHPFLG": 16, "INHFLG": 17, "OTCFLG": 18, "OTHERFLG": 19}
# (STFIPS, REGION, DIVISION, CBSA2010) for site 0, 1, ... (2019 participants; OR, WA, WV left out)
STATES = [(6, 4, 9, 31080), (36, 1, 2, 35620), (42, 1, 2, 37980), (17, 2, 3, 16980), (39, 2, 3, 17460),
          (26, 2, 3, 19820), (13, 3, 5, 12060), (37, 3, 5, 16740), (34, 1, 2, 35620), (25, 1, 1, 14460),
          (4, 4, 8, 38060), (48, 3, 7, 26420), (27, 2, 4, 33460), (8, 4, 8, 19740), (24, 3, 5, 12580),
          (29, 2, 4, 41180), (47, 3, 6, 34980), (21, 3, 6, 31140), (9, 1, 1, 25540), (49, 4, 8, 41620)]
SERVICES_OF_LEVEL = np.array([7, 6, 6, 4, 5, 3, 2, 3])  # detox resolved separately
REASON_CODE = np.array([1, 4, 2, 3, 5, 6, 7])  # model order completed, transferred, dropped, ...
RACE_CODE = np.array([5, 4, 7, 8, 2, 6, 1, 9, -9])
SUB_BY_PRIMARY = [  # (codes, probabilities) per model substance
    ([2], [1.0]),
    ([5, 7, 6], [0.55, 0.42, 0.03]),
    ([10, 3, 11, 12], [0.55, 0.38, 0.04, 0.03]),
    ([4], [1.0]),
    ([13, 14, 15, 16], [0.7, 0.1, 0.05, 0.15]),
    ([19, 9, 8, 17, 18], [0.4, 0.2, 0.25, 0.05, 0.1]),
    ([1], [1.0]),
]
SECONDARY = ([2, 4, 3, 10, 7, 5, 13, 19], [0.30, 0.27, 0.12, 0.1, 0.08, 0.06, 0.05, 0.02])
# ROUTE (1 oral, 2 smoking, 3 inhalation, 4 injection, 5 other) by SUB code
ROUTE_P = {2: [1, 0, 0, 0, 0], 3: [0.02, 0.45, 0.43, 0.1, 0], 4: [0.04, 0.95, 0.01, 0, 0],
           5: [0.01, 0.2, 0.34, 0.45, 0], 6: [0.9, 0, 0, 0.1, 0], 7: [0.8, 0.05, 0.07, 0.08, 0],
           8: [0.2, 0.75, 0.05, 0, 0], 9: [0.9, 0.05, 0.03, 0, 0.02], 10: [0.05, 0.65, 0.1, 0.2, 0],
           11: [0.8, 0.05, 0.1, 0.05, 0], 12: [0.8, 0.05, 0.1, 0.05, 0], 13: [0.95, 0, 0.03, 0.02, 0],
           14: [0.95, 0, 0.03, 0.02, 0], 15: [0.95, 0, 0.03, 0.02, 0], 16: [0.95, 0, 0.03, 0.02, 0],
           17: [0, 0, 0.95, 0, 0.05], 18: [0.95, 0, 0.03, 0, 0.02], 19: [0.6, 0.15, 0.1, 0.05, 0.1]}
# DSMCRIT: (dependence, abuse) by SUB1 group
DSM_BY_SUB = {2: (4, 10), 3: (6, 14), 4: (7, 11), 5: (5, 13), 6: (5, 13), 7: (5, 13)}


def _pick(rng, codes, probs, n):
    return np.asarray(codes)[rng.choice(len(codes), size=n, p=np.asarray(probs) / np.sum(probs))]


def _with_missing(rng, values, share):
    return np.where(rng.random(values.shape[0]) < share, -9, values)


def _los_code(days: np.ndarray) -> np.ndarray:
    bands = np.array([45, 60, 90, 120, 180, 365])
    band = 31 + np.searchsorted(bands, days, side="left")
    return np.where(days <= 30, days, band)


def teds_frame(data, rng: np.random.Generator, year: int):
    """The TEDS-D frame (polars) for the generated episodes; every column Int64."""
    import polars as pl

    from pipelines.synth import model as m

    ep = data.episodes
    n = ep["level"].shape[0]
    col: dict[str, np.ndarray] = {}
    col["CASEID"] = year * 10_000_000 + np.arange(1, n + 1, dtype=np.int64)
    col["DISYR"] = np.full(n, year)
    col["AGE"] = ep["age"].astype(np.int64) + 1
    col["GENDER"] = np.array([1, 2, -9, -9])[ep["sex"]]
    col["RACE"] = RACE_CODE[ep["race"]]
    hisp = _pick(rng, [2, 1, 3, 5], [0.55, 0.15, 0.15, 0.15], n)
    col["ETHNIC"] = np.array([4, 0, -9])[ep["ethnicity"]]
    col["ETHNIC"] = np.where(ep["ethnicity"] == 1, hisp, col["ETHNIC"])
    young = ep["age"] <= 2
    marstat = _pick(rng, [1, 2, 3, 4, -9], [0.55, 0.15, 0.07, 0.15, 0.08], n)
    col["MARSTAT"] = np.where(young & (marstat > 0), 1, marstat)
    educ = _pick(rng, [1, 2, 3, 4, 5, -9], [0.05, 0.2, 0.45, 0.2, 0.05, 0.05], n)
    col["EDUC"] = np.where((ep["age"] <= 1) & (educ > 2), 2, educ)
    # employment: full- or part-time kept from admission to discharge
    full = rng.random(n) < 0.72
    unemployed = rng.random(n) < 0.55

    def employ(employed, valid):
        e = np.where(employed, np.where(full, 1, 2), np.where(unemployed, 3, 4))
        return np.where(valid, e, -9)

    col["EMPLOY"] = _with_missing(rng, employ(ep["employed"], True), 0.03)
    col["EMPLOY_D"] = employ(ep["employed_discharge"], ep["employed_discharge__valid"])
    for name, emp in (("DETNLF", col["EMPLOY"]), ("DETNLF_D", col["EMPLOY_D"])):
        detail = _pick(rng, [1, 2, 3, 4, 5], [0.08, 0.1, 0.35, 0.07, 0.4], n)
        col[name] = np.where(emp == 4, detail, -9)
    female = ep["sex"] == 1
    col["PREG"] = np.where(female, np.where((rng.random(n) < 0.04) & (ep["age"] <= 7), 1, 2), -9)
    col["VET"] = np.where(young, 2, _pick(rng, [1, 2, -9], [0.03, 0.92, 0.05], n))
    dependent = rng.random(n) < np.where(ep["age"] <= 1, 0.95, 0.3)

    def livarag(homeless, valid):
        return np.where(valid, np.where(homeless, 1, np.where(dependent, 2, 3)), -9)

    col["LIVARAG"] = _with_missing(rng, livarag(ep["homeless"], True), 0.03)
    col["LIVARAG_D"] = livarag(ep["homeless_discharge"], ep["homeless_discharge__valid"])
    other_inc = _pick(rng, [2, 3, 4, 5], [0.2, 0.15, 0.15, 0.5], n)
    col["PRIMINC"] = _with_missing(rng, np.where(ep["employed"], 1, other_inc), 0.2)
    col["ARRESTS"] = np.minimum(ep["arrests_admit"].astype(np.int64), 2)
    col["ARRESTS_D"] = np.where(ep["arrests_discharge__valid"], np.minimum(ep["arrests_discharge"], 2), -9)
    states = np.array([STATES[i % len(STATES)] for i in range(int(ep["site"].max()) + 1)])
    st = states[ep["site"]]
    col["STFIPS"], col["REGION"], col["DIVISION"] = st[:, 0], st[:, 1], st[:, 2]
    col["CBSA2010"] = np.where(rng.random(n) < 0.3, -9, st[:, 3])
    services = SERVICES_OF_LEVEL[ep["level"]]
    detox_code = _pick(rng, [1, 2, 8], [43_446, 240_303, 13_267], n)
    services = np.where(ep["level"] == m.DETOX, detox_code, services)
    col["SERVICES"] = services
    col["SERVICES_D"] = services
    opioid = ep["substance"] == m.OPIOIDS
    col["METHUSE"] = _with_missing(rng, np.where(opioid & ep["mat"], 1, 2), 0.05)
    wait = ep["days_waiting"].astype(np.int64)
    band = np.where(wait == 0, 0, np.where(wait <= 7, 1, np.where(wait <= 14, 2, np.where(wait <= 30, 3, 4))))
    col["DAYWAIT"] = _with_missing(rng, np.where(ep["days_waiting__valid"], band, -9), 0.35)
    col["REASON"] = REASON_CODE[ep["reason"]]
    days = (ep["discharge_day"] - ep["admit_day"]).astype(np.int64)
    ambulatory = np.isin(services, [6, 7, 8])
    col["LOS"] = _los_code(np.where(ambulatory, days + 1, np.maximum(days, 1)))
    provider = np.where(rng.random(n) < 0.55, 2, 3)
    col["PSOURCE"] = np.array([1, 7, 0, 4, 5, 6, 6])[ep["referral"]]
    col["PSOURCE"] = np.where(ep["referral"] == 2, provider, col["PSOURCE"])
    col["DETCRIM"] = np.where(col["PSOURCE"] == 7, _pick(
        rng, [1, 2, 3, 4, 5, 6, 7, 8], [0.1, 0.08, 0.35, 0.05, 0.12, 0.03, 0.17, 0.1], n), -9)
    col["NOPRIOR"] = np.where(ep["prior_episodes__valid"], (ep["prior_episodes"] > 0).astype(np.int64), -9)
    # substances
    sub1 = np.zeros(n, dtype=np.int64)
    for code, (codes, probs) in enumerate(SUB_BY_PRIMARY):
        sel = ep["substance"] == code
        sub1[sel] = _pick(rng, codes, probs, int(sel.sum()))
    sub2 = np.where(rng.random(n) < 0.55, _pick(rng, *SECONDARY, n), 1)
    sub2 = np.where(sub2 == sub1, np.where(sub1 == 2, 4, 2), sub2)
    sub3 = np.where((sub2 != 1) & (rng.random(n) < 0.45), _pick(rng, *SECONDARY, n), 1)
    sub3 = np.where((sub3 == sub1) | (sub3 == sub2), 1, sub3)
    sub2 = np.where(sub1 == 1, 1, sub2)
    sub3 = np.where(sub1 == 1, 1, sub3)
    freq_some = ep["use_days_admit"] > 0
    freq1 = np.where(ep["use_days_admit"] == 0, 1, np.where(ep["use_days_admit"] >= 30, 3, 2))
    col["FREQ1"] = np.where(ep["use_days_admit__valid"], freq1, -9)
    fd = ep["use_days_discharge"]
    col["FREQ1_D"] = np.where(ep["use_days_discharge__valid"], np.where(fd == 0, 1, np.where(fd >= 30, 3, 2)), -9)
    age_cap = np.array([2, 3, 4, 5, 6, 7, 7, 7, 7, 7, 7, 7])[ep["age"]]
    for k, sub in ((1, sub1), (2, sub2), (3, sub3)):
        present = sub != 1
        col[f"SUB{k}"] = sub
        col[f"SUB{k}_D"] = np.where(rng.random(n) < (0.03 if k == 1 else 0.1), -9, sub)
        route = np.full(n, -9, dtype=np.int64)
        for code, probs in ROUTE_P.items():
            sel = sub == code
            if sel.any():
                route[sel] = _pick(rng, [1, 2, 3, 4, 5], probs, int(sel.sum()))
        col[f"ROUTE{k}"] = route
        first = np.minimum(_pick(rng, [1, 2, 3, 4, 5, 6, 7], [0.1, 0.2, 0.3, 0.2, 0.1, 0.05, 0.05], n), age_cap)
        col[f"FRSTUSE{k}"] = np.where(present, first, -9)
        if k > 1:
            f_adm = _pick(rng, [1, 2, 3], [0.3, 0.45, 0.25], n)
            f_adm = np.where(freq_some, f_adm, 1)
            f_dis = np.where(rng.random(n) < 0.5, 1, f_adm)
            col[f"FREQ{k}"] = np.where(present, f_adm, -9)
            col[f"FREQ{k}_D"] = np.where(present & ep["use_days_discharge__valid"], f_dis, -9)
    col["IDU"] = ((col["ROUTE1"] == 4) | (col["ROUTE2"] == 4) | (col["ROUTE3"] == 4)).astype(np.int64)
    for name, code in FLAGS.items():
        col[name] = ((sub1 == code) | (sub2 == code) | (sub3 == code)).astype(np.int64)
    alcohol = col["ALCFLG"] == 1
    drugs = np.zeros(n, dtype=bool)
    for name in FLAGS:
        if name != "ALCFLG":
            drugs |= col[name] == 1
    col["ALCDRUG"] = np.where(alcohol & drugs, 3, np.where(alcohol, 1, np.where(drugs, 2, 0)))
    dep, abuse = np.full(n, 8), np.full(n, 12)
    for code, (d, a) in DSM_BY_SUB.items():
        dep = np.where(sub1 == code, d, dep)
        abuse = np.where(sub1 == code, a, abuse)
    dsm = np.where(rng.random(n) < 0.8, dep, abuse)
    dsm = np.where((sub3 != 1) & (rng.random(n) < 0.3), 9, dsm)
    dsm = np.where(sub1 == 1, _pick(rng, [15, 16, 17, 18, 19], [0.2, 0.35, 0.15, 0.15, 0.15], n), dsm)
    col["DSMCRIT"] = _with_missing(rng, dsm, 0.2)
    col["PSYPROB"] = _with_missing(rng, np.where(ep["co_occurring"], 1, 2), 0.03)
    col["HLTHINS"] = _with_missing(rng, np.array([2, 3, 1, 4, 3, 4, -9])[ep["payer"]], 0.35)
    other_pay = np.where(rng.random(n) < 0.6, 5, 7)
    primpay = np.array([4, 3, 2, 1, 0, 6, -9])[ep["payer"]]
    col["PRIMPAY"] = _with_missing(rng, np.where(ep["payer"] == 4, other_pay, primpay), 0.3)
    helped = _pick(rng, [1, 2, 3, 4, 5, -9], [0.55, 0.12, 0.08, 0.15, 0.02, 0.08], n)
    col["FREQ_ATND_SELF_HELP"] = helped
    more = (ep["reason"] == m.COMPLETED) & (helped > 0) & (helped < 4) & (rng.random(n) < 0.4)
    col["FREQ_ATND_SELF_HELP_D"] = np.where(more, helped + 1, helped)
    assert set(col) == set(COLUMNS), sorted(set(COLUMNS) ^ set(col))
    return pl.DataFrame({name: pl.Series(name, np.asarray(col[name], dtype=np.int64)) for name in COLUMNS})
