"""Dose, length of stay, cost and family involvement against hand arithmetic and the synth truth.

One synthetic extract (known dose, cost and family effects, truth.json "services") goes through
the real ingest and ``analyze``; the crude figures are recomputed here from the CSV with plain
Python, and the adjusted ones are checked against the truth: the AIPW incremental cost's
interval covers the sample ATE of the potential costs, the dose slope's covers the generator's
log-odds per hour, and the family odds ratio's covers the generator's within IOP.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path

import pytest

RECORDS, SEED = 6000, 31


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from pipelines.analysis.command import analyze
    from pipelines.ingest.core import ingest_paths
    from pipelines.settings import Settings
    from pipelines.synth import write_synthetic

    root = tmp_path_factory.mktemp("services")
    data = root / "data"
    truth = write_synthetic(data, records=RECORDS, seed=SEED)
    (data / "truth.json").unlink()
    settings = Settings(warehouse=root / "levelcare.duckdb")
    loaded = ingest_paths(settings, [data], docs=False)
    assert all(r.status == "loaded" for r in loaded)
    results = analyze(settings, root / "out", ["completion", "abstinent_90d_itt", "no_readmission_90d"],
                      ["level_of_care", "level_group"])
    with (data / "discharges.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {"results": results, "truth": truth, "rows": rows, "out": root / "out"}


def _f(v: str) -> float | None:
    return float(v) if v not in ("", None) else None


def _level(r: dict[str, str]) -> str:
    """The harmonized level: level_of_care, or the ASAM level's (records spec) when only that is given."""
    return r["level_of_care"] or {"1": "outpatient", "2.1": "iop", "2.5": "php", "3.1": "residential_short",
                                  "3.3": "residential_short", "3.5": "residential_short",
                                  "3.7": "residential_hospital", "4": "inpatient"}.get(r["asam_level"], "?")


def test_dose_shares_and_median_by_hand(run):
    # the ASAM 2.1 band: 9-19 hours a week, 6-19 for adolescents (12-17)
    iop = [(float(r["hours_per_week"]), 6 if r["age_band"] in ("12-14", "15-17") else 9)
           for r in run["rows"] if _level(r) == "iop" and r["hours_per_week"]]
    got = next(x for x in run["results"]["services"]["dose"] if x["level_of_care"] == "iop" and x["group_by"] == "all")
    below, within = sum(h < lo for h, lo in iop), sum(lo <= h <= 19 for h, lo in iop)
    assert (got["n"], got["below"], got["within"], got["above"]) == (len(iop), below, within, len(iop) - below - within)
    assert got["within_share"] == pytest.approx(within / len(iop))
    s = sorted(h for h, _ in iop)
    k = len(s)
    assert got["median"] == pytest.approx((s[(k - 1) // 2] + s[k // 2]) / 2)
    # Wilson by its formula
    p, z = within / k, 1.959963984540054
    centre = (p + z * z / (2 * k)) / (1 + z * z / k)
    half = z * math.sqrt(p * (1 - p) / k + z * z / (4 * k * k)) / (1 + z * z / k)
    assert got["within_ci_low"] == pytest.approx(centre - half, abs=1e-9)
    assert got["within_ci_high"] == pytest.approx(centre + half, abs=1e-9)
    # the CSV carries the columns of the dose table
    with (run["out"] / "dose.csv").open(newline="", encoding="utf-8") as fh:
        first = next(csv.DictReader(fh))
    assert {"level_of_care", "group_by", "group", "n", "within_asam_share", "below_share", "above_share",
            "median_hours"} <= set(first)


def test_site_rows_add_up_to_the_overall_row(run):
    dose = [x for x in run["results"]["services"]["dose"] if x["level_of_care"] == "iop"]
    overall = next(x for x in dose if x["group_by"] == "all")
    for by in ("site", "quarter"):
        part = [x for x in dose if x["group_by"] == by]
        hidden = [x for x in part if x["n"] is None]
        if not hidden:
            assert sum(x["n"] for x in part) == overall["n"]
        else:  # a hidden n is never alone: it could be worked out from the overall row
            assert len(hidden) >= 2
        for x in part:  # and within a row, never one band hidden alone beside a shown n
            bands = [x[b] for b in ("below", "within", "above")]
            assert x["n"] is None or sum(v is None for v in bands) != 1


def test_iop_length_of_stay_and_completion_by_band_by_hand(run):
    stays = []
    for r in run["rows"]:
        if _level(r) != "iop":
            continue
        days = (dt.date.fromisoformat(r["discharge_date"]) - dt.date.fromisoformat(r["admit_date"])).days
        stays.append((days, r["discharge_reason"] == "completed"))
    got = next(x for x in run["results"]["services"]["length_of_stay"] if x["group_by"] == "all")
    assert got["n"] == len(stays)
    assert got["within"] == sum(42 <= d <= 84 for d, _ in stays)
    assert got["below"] == sum(d < 42 for d, _ in stays)
    # TEDS bands count an ambulatory stay's day of admission: 31-45 days is 30-44 days apart
    band = [(d, c) for d, c in stays if 31 <= d + 1 <= 45]
    row = next(x for x in run["results"]["services"]["completion_by_los"]
               if x["source"] == "native" and x["los_band"] == "31-45 days")
    assert (row["n"], row["completed"]) == (len(band), sum(c for _, c in band))


def test_costs_and_cost_per_success_by_hand(run):
    by_level: dict[str, list[tuple[float, bool]]] = {}
    for r in run["rows"]:
        if r["episode_cost"]:
            by_level.setdefault(_level(r), []).append((float(r["episode_cost"]),
                                                                r["discharge_reason"] == "completed"))
    sv = run["results"]["services"]
    for level, xs in by_level.items():
        got = next(x for x in sv["costs"] if x["level_of_care"] == level)
        costs = [c for c, _ in xs]
        mean = sum(costs) / len(costs)
        assert got["n"] == len(costs)
        assert got["mean_cost"] == pytest.approx(mean, rel=1e-9)
        sd = math.sqrt(sum((c - mean) ** 2 for c in costs) / (len(costs) - 1))
        from scipy import stats

        half = stats.t.ppf(0.975, len(costs) - 1) * sd / math.sqrt(len(costs))
        assert got["ci_low"] == pytest.approx(mean - half, rel=1e-9)
        per = next(x for x in sv["cost_per_success"] if x["level_of_care"] == level and x["definition_id"] == "completion")
        assert per["successes"] == sum(done for _, done in xs)
        assert per["cost_per_success"] == pytest.approx(sum(costs) / sum(done for _, done in xs), rel=1e-9)


def test_family_rates_by_hand(run):
    for level in ("iop", "outpatient"):
        for involved in (True, False):
            xs = [r for r in run["rows"] if _level(r) == level
                  and r["family_involved"] == ("true" if involved else "false")]
            got = next(x for x in run["results"]["services"]["family_rates"] if x["definition_id"] == "completion"
                       and x["level_of_care"] == level and x["family_involved"] is involved)
            assert got["n"] == len(xs)
            assert got["successes"] == sum(r["discharge_reason"] == "completed" for r in xs)


def test_adjusted_incremental_cost_covers_the_truth(run):
    truth = run["truth"]["services"]["cost"]
    rows = {x["method"]: x for x in run["results"]["services"]["cost_effectiveness"]
            if x["definition_id"] == "completion"}
    aipw = rows["aipw"]
    assert aipw["cost_model"] == "gamma-log-glm"
    assert aipw["cost_ci_low"] < truth["ate"] < aipw["cost_ci_high"]
    effect = run["truth"]["effects"]["completion"]["ate"]
    assert aipw["effect_ci_low"] < effect < aipw["effect_ci_high"]
    # IOP costs less here; the words say so, and the NMB at a willingness to pay of 0 is minus the cost
    assert "costs less" in aipw["dominance"]
    assert aipw["nmb"][0]["wtp"] == 0 and aipw["nmb"][0]["nmb"] == pytest.approx(-aipw["cost_difference"])
    with (run["out"] / "cost_effectiveness.csv").open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert {"arm", "reference", "method", "cost_difference", "cost_ci_low", "cost_ci_high", "effect_difference",
            "definition_id", "icer", "nmb_20000"} <= set(header)


def test_dose_slope_and_family_odds_ratio_cover_the_truth(run):
    sv = run["results"]["services"]
    curve = next(x for x in sv["dose_response"] if x["definition_id"] == "completion")
    beta = run["truth"]["services"]["dose"]["log_odds_per_hour"]
    assert curve["log_odds_ci_low"] < beta < curve["log_odds_ci_high"]
    assert len(curve["grid"]) == len(curve["probability"]) > 10
    family = next(x for x in sv["family_effects"] if x["definition_id"] == "completion" and x["level_of_care"] == "iop")
    log_or = run["truth"]["services"]["family"]["log_odds_ratio"]["iop"]
    assert family["ci_low"] < math.exp(log_or) < family["ci_high"]
    # does involvement change the comparison: the subgroup analysis has both groups
    groups = {x["level"] for x in run["results"]["modification"] if x["modifier"] == "family_involved"}
    assert groups == {"family involved", "no family involvement"}


def test_results_json_round_trips(run):
    from pipelines.results.model import load_results

    data = load_results(Path(run["out"]) / "results.json").model_dump(mode="json")
    assert data["services"] == json.loads((Path(run["out"]) / "results.json").read_text())["services"]
