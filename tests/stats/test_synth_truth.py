"""truth.json against a direct recomputation from the model's potential outcomes.

The expected values are computed here from the raw ``po_*`` arrays with the definitions
written out again (not with the generator's own truth code), and the files are tied back to
the potential outcomes of the assigned arm.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from pipelines.synth import write_synthetic

IOP, RESIDENTIAL = 1, (3, 4, 5)
COMPLETED, TRANSFERRED, DEATH = 0, 1, 5


def _mean_diff(yi, yr, mask):
    return float(np.mean(yi[mask].astype(float) - yr[mask].astype(float)))


def _recompute(ep):
    level = ep["level"]
    cmp_ = (level == IOP) | np.isin(level, RESIDENTIAL)
    att = level == IOP
    alive = ep["reason"] != DEATH  # death in treatment is the same in both arms
    assert (alive == ~ep["death_in_episode"]).all()
    ri, rr = ep["po_reason_iop"], ep["po_reason_res"]
    phq = ep["phq9_admit"].astype(int)
    gad = ep["gad7_admit"].astype(int)
    pi, pr = ep["po_phq9_discharge_iop"].astype(int), ep["po_phq9_discharge_res"].astype(int)
    gi, gr = ep["po_gad7_discharge_iop"].astype(int), ep["po_gad7_discharge_res"].astype(int)

    def counted(t, reason, stepdown, w):
        gap = np.where(np.isinf(t), 99_999, np.ceil(t))
        return (gap <= w) & ~((reason == TRANSFERRED) & (gap <= 14) & ~stepdown)

    no_sd = np.zeros(level.shape[0], dtype=bool)
    items = {
        "completion": (ri == COMPLETED, rr == COMPLETED, True),
        "completion_or_transfer": ((ri == COMPLETED) | (ri == TRANSFERRED), (rr == COMPLETED) | (rr == TRANSFERRED), True),
        "abstinent_discharge": (ep["po_use_days_discharge_iop"] == 0, ep["po_use_days_discharge_res"] == 0, alive),
        "phq9_remission": (pi < 5, pr < 5, alive & (phq >= 10)),
        "phq9_response": (pi <= phq / 2, pr <= phq / 2, alive & (phq >= 10)),
        "gad7_reliable_improvement": (gi <= gad - 4, gr <= gad - 4, alive & (gad >= 8)),
        "employment_gain": (ep["po_employed_discharge_iop"], ep["po_employed_discharge_res"], alive & ~ep["employed"]),
        "housing_stable": (ep["po_housed_discharge_iop"], ep["po_housed_discharge_res"], alive),
        "no_readmission_30d": (~counted(ep["po_readmit_t_iop"], ri, no_sd, 30),
                               ~counted(ep["po_readmit_t_res"], rr, ep["stepdown_realized"], 30), True),
        "no_readmission_90d": (~counted(ep["po_readmit_t_iop"], ri, no_sd, 90),
                               ~counted(ep["po_readmit_t_res"], rr, ep["stepdown_realized"], 90), True),
    }
    end = (date(2026, 9, 30) - date(1970, 1, 1)).days
    for w in (30, 90, 180, 365):
        items[f"abstinent_{w}d"] = (ep[f"po_abstinent_{w}d_iop"], ep[f"po_abstinent_{w}d_res"], True)
        # missing = failure: reached, answered and abstinent, once the window has ended
        ans = ep[f"answered_{w}d"]
        items[f"abstinent_{w}d_itt"] = (ep[f"po_reached_{w}d_iop"] & ep[f"po_abstinent_{w}d_iop"] & ans,
                                        ep[f"po_reached_{w}d_res"] & ep[f"po_abstinent_{w}d_res"] & ans,
                                        end - ep["discharge_day"] >= w)
    out = {}
    for key, (yi, yr, pop) in items.items():
        pop = np.broadcast_to(pop, level.shape)
        out[key] = (_mean_diff(yi, yr, cmp_ & pop), _mean_diff(yi, yr, att & pop), int((cmp_ & pop).sum()))
    return out


def test_truth_json_equals_recomputation(truth, data):
    # the same seed gives the same arrays as the files (reproducibility is tested elsewhere)
    assert data.truth["effects"] == truth["effects"]
    for key, (ate, att, n) in _recompute(data.episodes).items():
        got = truth["effects"][key]
        assert got["ate"] == pytest.approx(ate, abs=1e-6), key
        assert got["att"] == pytest.approx(att, abs=1e-6), key
        assert got["n"] == n, key
    for w in (30, 90, 180, 365):  # complete case aims at the full-data effect
        assert truth["effects"][f"abstinent_{w}d_cc"]["ate"] == truth["effects"][f"abstinent_{w}d"]["ate"]
    assert truth["seed"] == 11 and truth["records"] == 20_000
    assert truth["parameters"]["effects"]["completion"] == -0.10


def test_files_show_the_potential_outcome_of_the_assigned_arm(discharges, data):
    ep = data.episodes
    reasons = ["completed", "transferred", "dropped_out", "terminated", "incarcerated", "death", "other"]
    written = discharges["discharge_reason"].to_numpy()
    iop = ep["level"] == IOP
    res = np.isin(ep["level"], RESIDENTIAL)
    assert (written[iop] == np.array(reasons)[ep["po_reason_iop"][iop]]).all()
    assert (written[res] == np.array(reasons)[ep["po_reason_res"][res]]).all()
    use = discharges["use_days_discharge"].cast(pl.Int64).fill_null(-1).to_numpy()
    known = use >= 0
    sel = iop & known
    assert (use[sel] == ep["po_use_days_discharge_iop"][sel]).all()
    sel = res & known
    assert (use[sel] == ep["po_use_days_discharge_res"][sel]).all()
    # follow-up abstinence written for reached IOP people is the IOP potential outcome
    fu = data.followups
    e = fu["episode"]
    ok = fu["reached"] & (fu["window"] == 90) & (ep["level"][e] == IOP)
    assert ok.sum() > 100
    assert (fu["abstinent_30d"][ok] == ep["po_abstinent_90d_iop"][e[ok]]).all()
    # and whether someone was reached is the assigned arm's potential outcome
    for w in (30, 90, 180, 365):
        assert (ep[f"po_reached_{w}d_obs"][iop] == ep[f"po_reached_{w}d_iop"][iop]).all()
        assert (ep[f"po_reached_{w}d_obs"][res] == ep[f"po_reached_{w}d_res"][res]).all()


def test_sample_effects_near_the_parameters(truth):
    eff = truth["effects"]
    # no effect modification on these: the sample ATE is the parameter up to sampling noise
    for key in ("abstinent_discharge", "employment_gain", "housing_stable", "no_readmission_90d"):
        param = eff[key]["effect_parameter"]["value"]
        assert eff[key]["expected_ate"] == pytest.approx(param, abs=0.005), key
        assert abs(eff[key]["ate"] - param) < 0.03, key
    # with modification (more severe people do better in residential) the IOP group,
    # which is less severe, gains more than everyone: ATT above ATE
    assert eff["abstinent_90d"]["expected_att"] > eff["abstinent_90d"]["expected_ate"] + 0.01


def test_effect_override_changes_truth(tmp_path):
    t = write_synthetic(tmp_path, 8000, 4, effects={"completion": -0.25, "abstinent_90d": 0.08},
                        modification={"completion": 0.0, "abstinent_90d": 0.0})
    assert t["effects"]["completion"]["effect_parameter"]["value"] == -0.25
    assert abs(t["effects"]["completion"]["ate"] + 0.25) < 0.04
    assert abs(t["effects"]["abstinent_90d"]["ate"] - 0.08) < 0.04


def test_service_truth_equals_recomputation(truth, discharges, data):
    """The cost truth from the potential costs, recomputed; the written cost, hours and family
    fields are those of the assigned arm; the dose and family parameters are recorded."""
    ep = data.episodes
    level = ep["level"]
    iop, res = level == IOP, np.isin(level, RESIDENTIAL)
    diff = ep["po_cost_iop"].astype(float) - ep["po_cost_res"]
    cost = truth["services"]["cost"]
    assert cost["ate"] == pytest.approx(float(diff[iop | res].mean()), abs=1e-3)
    assert cost["att"] == pytest.approx(float(diff[iop].mean()), abs=1e-3)
    assert cost["n"] == int((iop | res).sum())
    written = discharges["episode_cost"].cast(pl.Float64).to_numpy()
    known = ~np.isnan(written)
    assert known.mean() > 0.5
    assert np.allclose(written[iop & known], ep["po_cost_iop"][iop & known])
    assert np.allclose(written[res & known], ep["po_cost_res"][res & known])
    # cost per day x length of stay: residential costs more per episode than IOP here
    assert cost["mean_residential"] > cost["mean_iop"] > 0
    assert truth["services"]["dose"]["log_odds_per_hour"] == 0.06
    assert truth["services"]["family"]["log_odds_ratio"]["iop"] == 0.6
    # the tilt: completed IOP episodes have more hours than the others, by about what a
    # log-odds slope of 0.06 per hour implies on a 9-19 hour range (mean of the tilted
    # uniform: 14 + (10/2) * (coth(0.3) - 1/0.3) = 14.50)
    hours = discharges["hours_per_week"].cast(pl.Float64).to_numpy()
    done = ep["reason"] == COMPLETED
    adult = ep["age"] > 1
    sel = iop & adult & done & ~np.isnan(hours)
    assert hours[sel].mean() == pytest.approx(14 + 5 * (1 / np.tanh(0.3) - 1 / 0.3), abs=0.15)
