"""Step-downs, readmissions and follow-up attrition, seen from the written files."""

from __future__ import annotations

import numpy as np
import polars as pl

RES = ["residential_short", "residential_long", "residential_hospital"]


def _episodes(discharges):
    return discharges.with_columns(
        pl.col("admit_date").str.to_date(), pl.col("discharge_date").str.to_date(),
    ).sort("person_id", "admit_date", "discharge_date", "episode_id")


def test_person_episodes_do_not_overlap(discharges):
    d = _episodes(discharges)
    nxt = d.with_columns(pl.col("admit_date").shift(-1).over("person_id").alias("next_admit"))
    gap = nxt.filter(pl.col("next_admit").is_not_null())
    assert gap.height > 3000  # many people have more than one episode
    assert (gap["next_admit"] >= gap["discharge_date"]).all()
    # person-level fields stay the same across a person's episodes
    for col in ("sex", "race", "primary_substance", "site_id"):
        assert d.group_by("person_id").agg(pl.col(col).n_unique()).filter(pl.col(col) > 1).height == 0, col


def test_stepdowns_present(discharges, truth):
    d = _episodes(discharges).with_columns(
        pl.col("level_of_care").shift(-1).over("person_id").alias("next_level"),
        (pl.col("admit_date").shift(-1).over("person_id") - pl.col("discharge_date")).dt.total_days().alias("gap"),
    )
    res = d.filter(pl.col("level_of_care").is_in(RES) & (pl.col("discharge_date") <= pl.date(2026, 9, 1)))
    stepped = res.filter((pl.col("next_level") == "iop") & pl.col("gap").is_between(1, 14))
    share = stepped.height / res.height
    assert 0.15 < share < 0.45
    assert abs(share - truth["shares"]["stepdown_of_residential"]) < 0.06
    # step-downs mostly follow a completed or transferred residential stay
    ok = stepped["discharge_reason"].is_in(["completed", "transferred"]).mean()
    assert ok > 0.8


def test_readmissions_present(discharges):
    d = _episodes(discharges).with_columns(
        (pl.col("admit_date").shift(-1).over("person_id") - pl.col("discharge_date")).dt.total_days().alias("gap"),
        pl.col("level_of_care").shift(-1).over("person_id").alias("next_level"),
    )
    early = d.filter(pl.col("discharge_date") <= pl.date(2026, 3, 1))
    not_stepdown = ~(pl.col("level_of_care").is_in(RES) & (pl.col("next_level") == "iop") & (pl.col("gap") <= 14))
    readmit = early.filter(not_stepdown)
    # no next episode = not readmitted (a null gap must count in the denominator)
    r30 = float((readmit["gap"] <= 30).fill_null(False).mean())
    r180 = float((readmit["gap"] <= 180).fill_null(False).mean())
    assert 0.04 < r30 < 0.25
    assert r180 > r30 + 0.05
    # detox discharges come back more often than outpatient discharges (model offsets)
    by = readmit.group_by("level_of_care").agg((pl.col("gap") <= 90).fill_null(False).mean().alias("r90"))
    r90 = dict(by.iter_rows())
    assert r90["detox"] > r90["outpatient"]


def _best_status(followups, discharges):
    rank = {"reached": 1, "deceased": 2, "refused": 3, "unreachable": 4}
    f = followups.with_columns(pl.col("status").replace_strict(rank).alias("rank"))
    best = f.sort("rank").group_by("episode_id", "window_days", maintain_order=True).first()
    return best.join(discharges.select("episode_id", "discharge_reason", "homeless_discharge", "use_days_admit"),
                     on="episode_id")


def test_attrition_depends_on_covariates(followups, discharges):
    b = _best_status(followups, discharges).with_columns((pl.col("status") == "reached").alias("reached"))
    overall = b["reached"].mean()
    assert 0.4 < overall < 0.85
    homeless = b.filter(pl.col("homeless_discharge") == "true")["reached"].mean()
    housed = b.filter(pl.col("homeless_discharge") == "false")["reached"].mean()
    assert housed - homeless > 0.08
    dropped = b.filter(pl.col("discharge_reason") == "dropped_out")["reached"].mean()
    completed = b.filter(pl.col("discharge_reason") == "completed")["reached"].mean()
    assert completed - dropped > 0.08
    by_window = dict(b.group_by("window_days").agg(pl.col("reached").mean()).iter_rows())
    assert by_window["30"] > by_window["365"]


def test_complete_case_abstinence_is_biased(followups, data):
    """People still using are harder to reach: complete-case abstinence overstates the truth."""
    ep, fu = data.episodes, data.followups
    e = fu["episode"]
    for w in (90, 180):
        attempted = np.unique(e[fu["window"] == w])
        full = ep[f"abstinent_{w}d"][attempted].mean()  # every attempted person, as if all reached
        reached = fu["reached"] & (fu["window"] == w)
        cc = fu["abstinent_30d"][reached].mean()
        assert cc - full > 0.05, w
    # the file holds the same complete-case rate as the model arrays
    r = followups.filter((pl.col("status") == "reached") & (pl.col("window_days") == "90"))
    assert abs(float((r["abstinent_30d"].drop_nulls() == "true").mean())
               - float(fu["abstinent_30d"][(fu["window"] == 90) & fu["reached"]].mean())) < 0.02
