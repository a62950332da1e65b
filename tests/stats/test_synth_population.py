"""Marginals of the native files against the stated targets, and confounding by indication."""

from __future__ import annotations

import numpy as np
import polars as pl

RES = ["residential_short", "residential_long", "residential_hospital"]


def _share(frame, col, value):
    return float((frame[col] == value).mean())


def test_baseline_marginals(discharges):
    d = discharges
    assert abs(_share(d, "sex", "male") - 0.66) < 0.03
    assert abs(_share(d, "co_occurring_mh", "true") - 0.40) < 0.05
    assert 0.10 <= _share(d, "homeless_admit", "true") <= 0.17
    assert 0.18 <= _share(d, "employed_admit", "true") <= 0.32
    for substance, target in (("alcohol", 0.30), ("opioids", 0.30), ("stimulants", 0.22), ("cannabis", 0.12)):
        assert abs(_share(d, "primary_substance", substance) - target) < 0.05, substance
    assert abs(_share(d, "referral_source", "court") - 0.22) < 0.04
    assert abs(_share(d, "payer", "medicaid") - 0.5) < 0.06
    ages = d["age_band"].value_counts().sort("count", descending=True)
    assert ages["age_band"][0] in ("25-29", "30-34", "35-39")
    use = d["use_days_admit"].drop_nulls().cast(pl.Int64)
    assert 0.15 < float((use == 0).mean()) < 0.3 and 0.3 < float((use == 30).mean()) < 0.5
    # PHQ-9 at admission is higher with a co-occurring disorder
    phq = d.filter(pl.col("phq9_admit").is_not_null()).with_columns(pl.col("phq9_admit").cast(pl.Int64))
    by = phq.group_by("co_occurring_mh").agg(pl.col("phq9_admit").mean()).sort("co_occurring_mh")
    assert by["phq9_admit"][1] - by["phq9_admit"][0] > 3


def test_level_mix_and_sites(discharges, truth):
    d = discharges.with_columns(pl.coalesce("level_of_care", pl.lit("asam-only")).alias("lvl"))
    for level in ("outpatient", "iop", "php", "residential_short", "residential_long", "residential_hospital",
                  "detox", "inpatient"):
        assert _share(d, "lvl", level) > 0.02, level
    assert 0.18 < _share(d, "lvl", "iop") < 0.35
    assert 0.2 < float(d["lvl"].is_in(RES).mean()) < 0.35
    sizes = d["site_id"].value_counts()
    assert sizes.height == 8
    small = sizes.filter(pl.col("count") < 30)
    assert 1 <= small.height <= 2  # one or two small programs
    assert sizes["count"].max() > 5000
    assert truth["period"]["quarters"][-1] == "2026Q3" and len(truth["period"]["quarters"]) == 10


def test_followup_volume(discharges, followups):
    ratio = followups.height / discharges.height
    assert 1.4 <= ratio <= 2.1
    statuses = set(followups["status"].unique().to_list())
    assert statuses == {"reached", "unreachable", "refused", "deceased"}
    with_rows = followups["episode_id"].n_unique()
    assert with_rows < discharges.height * 0.9  # some episodes have no follow-up at all


def test_residential_group_is_sicker(discharges):
    d = discharges.with_columns(
        pl.when(pl.col("level_of_care") == "iop").then(pl.lit("iop"))
        .when(pl.col("level_of_care").is_in(RES)).then(pl.lit("res")).alias("arm"),
        pl.col("use_days_admit").cast(pl.Int64), pl.col("prior_episodes").cast(pl.Int64),
    ).filter(pl.col("arm").is_not_null())
    g = d.group_by("arm").agg(
        (pl.col("homeless_admit") == "true").mean().alias("homeless"),
        (pl.col("co_occurring_mh") == "true").mean().alias("co"),
        (pl.col("use_days_admit") == 30).mean().alias("daily"),
        pl.col("prior_episodes").mean().alias("prior"),
    ).sort("arm")
    iop, res = g.row(0, named=True), g.row(1, named=True)
    assert res["homeless"] > iop["homeless"] + 0.05
    assert res["co"] > iop["co"] + 0.03
    assert res["daily"] > iop["daily"] + 0.08
    assert res["prior"] > iop["prior"]


def test_crude_difference_is_biased(discharges, truth, data):
    """The crude IOP - residential difference misses the true ATE by several points."""
    d = discharges.filter(pl.col("level_of_care").is_not_null())
    iop = d.filter(pl.col("level_of_care") == "iop")
    res = d.filter(pl.col("level_of_care").is_in(RES))
    crude = float((iop["discharge_reason"] == "completed").mean() - (res["discharge_reason"] == "completed").mean())
    assert abs(crude - truth["effects"]["completion"]["ate"]) > 0.05
    # full-data abstinence at 90 days (model arrays: the files only show reached people)
    ep = data.episodes
    i, r = ep["level"] == 1, np.isin(ep["level"], (3, 4, 5))
    crude90 = ep["abstinent_90d"][i].mean() - ep["abstinent_90d"][r].mean()
    assert crude90 - truth["effects"]["abstinent_90d"]["ate"] > 0.05
    # the confounder is observed: within strata of the severity score the bias mostly goes
    z = ep["z"]
    edges = np.quantile(z[i | r], np.linspace(0, 1, 21))
    stratum = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, 19)
    y = ep["abstinent_90d"].astype(float)
    num = den = 0.0
    for s in range(20):
        si, sr = i & (stratum == s), r & (stratum == s)
        if si.sum() and sr.sum():
            w = si.sum() + sr.sum()
            num += w * (y[si].mean() - y[sr].mean())
            den += w
    adjusted = num / den
    ate = truth["effects"]["abstinent_90d"]["ate"]
    assert abs(adjusted - ate) < abs(crude90 - ate) / 2
