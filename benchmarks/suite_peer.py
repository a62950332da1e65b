"""The peer of ``bench_suite.py``: what an analyst would write with pandas by hand.

``pandas.read_csv`` of both extracts; great-expectations (ephemeral context, pandas data
source) with a handful of expectations on each frame; crude rates by level of care with
``groupby`` for the same definitions as the floor; one adjusted comparison (IOP vs the
residential group, completion): a statsmodels formula logistic propensity model and IPTW
(ATE) with a weighted least-squares risk difference and robust (HC1) interval.
"""

from __future__ import annotations

import time
from pathlib import Path

LEVELS = ["outpatient", "iop", "php", "residential_short", "residential_long", "residential_hospital",
          "inpatient", "detox"]
ASAM = {"1": "outpatient", "2.1": "iop", "2.5": "php", "3.1": "residential_short", "3.3": "residential_short",
        "3.5": "residential_short", "3.7": "residential_hospital", "4": "inpatient", "1-wm": "detox",
        "2-wm": "detox", "3.2-wm": "detox", "3.7-wm": "detox", "4-wm": "detox"}
FORMULA = ("iop ~ C(age_band) + C(sex) + C(primary_substance) + co_occurring_mh + prior_episodes"
           " + use_days_admit + homeless_admit + employed_admit + phq9_admit + gad7_admit + C(payer)"
           " + C(referral_source) + C(site_id)")


def _validate(pd_frames, gx):
    ctx = gx.get_context(mode="ephemeral")
    source = ctx.data_sources.add_pandas("peer")
    E = gx.expectations
    suites = {
        "discharges": [
            E.ExpectColumnValuesToNotBeNull(column="episode_id"),
            E.ExpectColumnValuesToNotBeNull(column="discharge_date"),
            E.ExpectColumnValuesToBeInSet(column="level_of_care", value_set=LEVELS),
            E.ExpectColumnValuesToBeBetween(column="phq9_admit", min_value=0, max_value=27),
            E.ExpectColumnValuesToBeBetween(column="use_days_admit", min_value=0, max_value=30),
            E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="discharge_date", column_B="admit_date",
                                                      or_equal=True),
        ],
        "followups": [
            E.ExpectColumnValuesToNotBeNull(column="episode_id"),
            E.ExpectColumnValuesToBeInSet(column="window_days", value_set=[30, 90, 180, 365]),
            E.ExpectColumnValuesToBeInSet(column="status",
                                          value_set=["reached", "unreachable", "refused", "deceased"]),
            E.ExpectColumnValuesToBeBetween(column="use_days_30", min_value=0, max_value=30),
        ],
    }
    passed = {}
    for name, expectations in suites.items():
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all").get_batch(
            batch_parameters={"dataframe": pd_frames[name]})
        suite = ctx.suites.add(gx.ExpectationSuite(name=name))
        for e in expectations:
            suite.add_expectation(e)
        passed[name] = bool(batch.validate(suite).success)
    return passed


def run_peer(data: Path, probe) -> dict:
    timings = {}
    t = time.perf_counter()
    import great_expectations as gx
    import numpy as np
    import pandas as pd
    import statsmodels.formula.api as smf
    timings["imports"] = time.perf_counter() - t

    t = time.perf_counter()
    d = pd.read_csv(data / "discharges.csv", parse_dates=["admit_date", "discharge_date"],
                    dtype={"asam_level": str})
    f = pd.read_csv(data / "followups.csv", parse_dates=["contact_date"])
    timings["read"] = time.perf_counter() - t

    t = time.perf_counter()
    passed = _validate({"discharges": d, "followups": f}, gx)
    timings["great_expectations"] = time.perf_counter() - t

    t = time.perf_counter()
    # a missing level of care from the ASAM level (the records-v1 table)
    d["level_of_care"] = d["level_of_care"].fillna(d["asam_level"].map(ASAM))
    d["key"] = d["site_id"] + ":" + d["episode_id"]
    d["group"] = np.where(d["level_of_care"].str.startswith("residential"), "residential", d["level_of_care"])
    end = max(d["admit_date"].max(), d["discharge_date"].max())
    d["observed"] = (end - d["discharge_date"]).dt.days
    d["completion"] = (d["discharge_reason"] == "completed").astype(float)
    d["completion_or_transfer"] = d["discharge_reason"].isin(["completed", "transferred"]).astype(float)
    # best 90-day attempt: reached > deceased > refused > unreachable, then latest contact, then id
    f90 = f[f["window_days"] == 90].copy()
    f90["key"] = f90["site_id"] + ":" + f90["episode_id"]
    f90["rank"] = f90["status"].map({"reached": 1, "deceased": 2, "refused": 3, "unreachable": 4}).fillna(5)
    f90 = f90.sort_values(["key", "rank", "contact_date", "followup_id"], ascending=[True, True, False, False],
                          na_position="last").drop_duplicates("key")
    f90["reached"] = f90["status"] == "reached"
    f90["abstinent"] = f90["abstinent_30d"].where(f90["reached"])
    d = d.merge(f90[["key", "reached", "abstinent"]], on="key", how="left")
    d["reached"] = d["reached"].fillna(False).astype(bool)
    # readmission within 30 days: later admissions of the same person, step-downs and transfers aside
    e = d.loc[d["person_id"].notna(), ["key", "person_id", "level_of_care", "group", "admit_date",
                                       "discharge_date", "discharge_reason"]]
    m = e.merge(e[["key", "person_id", "level_of_care", "admit_date"]], on="person_id", suffixes=("", "_n"))
    m = m[(m["key"] != m["key_n"]) & (m["admit_date_n"] >= m["discharge_date"])].copy()
    m["gap"] = (m["admit_date_n"] - m["discharge_date"]).dt.days
    m = m.sort_values(["key", "gap", "key_n"])
    m["iop_n"] = m["level_of_care_n"] == "iop"
    m["adm_rank"] = m.groupby("key").cumcount() + 1
    m["kind_rank"] = m.groupby(["key", "iop_n"]).cumcount() + 1
    stepdown = (m["group"] == "residential") & m["iop_n"] & (m["kind_rank"] == 1) & (m["gap"] <= 14)
    transfer = (m["discharge_reason"] == "transferred") & (m["adm_rank"] == 1) & (m["gap"] <= 14)
    days = m[~stepdown & ~transfer].groupby("key")["gap"].min().rename("days_to_readmission")
    d = d.merge(days, left_on="key", right_index=True, how="left")
    readmit = np.where(d["days_to_readmission"] <= 30, 1.0, np.where(d["observed"] >= 30, 0.0, np.nan))
    d["no_readmission_30d"] = np.where(d["person_id"].isna(), np.nan, 1.0 - readmit)
    rates = {}
    for def_id, rows, y in (
        ("completion", d, "completion"),
        ("completion_or_transfer", d, "completion_or_transfer"),
        ("abstinent_90d_itt", d[d["observed"] >= 90].assign(y=lambda x: x["abstinent"].eq(True)), "y"),
        ("abstinent_90d_cc", d[d["reached"] & d["abstinent"].notna()].assign(y=lambda x: x["abstinent"].eq(True)), "y"),
        ("no_readmission_30d", d[d["no_readmission_30d"].notna()], "no_readmission_30d"),
    ):
        g = rows.groupby("level_of_care")[y].agg(["sum", "count"])
        rates.update({f"{def_id}|{loc}": [int(s), int(n)] for loc, (s, n) in g.iterrows()})
    timings["crude_rates"] = time.perf_counter() - t

    t = time.perf_counter()
    sub = d[d["group"].isin(["iop", "residential"])].copy()
    sub["iop"] = (sub["group"] == "iop").astype(float)
    for col in ("age_band", "sex", "primary_substance", "payer", "referral_source", "site_id"):
        sub[col] = sub[col].fillna("(missing)")
    for col in ("co_occurring_mh", "homeless_admit", "employed_admit"):
        sub[col] = sub[col].astype(float)
    for col in ("co_occurring_mh", "prior_episodes", "use_days_admit", "homeless_admit", "employed_admit",
                "phq9_admit", "gad7_admit"):
        sub[col] = sub[col].fillna(sub[col].mean())
    ps = smf.logit(FORMULA, data=sub).fit(disp=0).predict(sub)
    sub["w"] = np.where(sub["iop"] == 1, 1 / ps, 1 / (1 - ps))
    fit = smf.wls("completion ~ iop", data=sub, weights=sub["w"]).fit(cov_type="HC1")
    lo, hi = fit.conf_int().loc["iop"]
    timings["adjusted"] = time.perf_counter() - t
    return {"timings": timings, "ge_passed": passed, "rates": rates,
            "iptw_completion_rd": [float(fit.params["iop"]), float(lo), float(hi)]}
