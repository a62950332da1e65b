"""Every built-in definition on hand-checked episodes, edge cases included.

Data run to day 1000 (data_end_date). Episodes (days counted from 2026-01-01):

* done  residential_short, p1, days 0-20, completed; uses 20 -> 0 days; unemployed -> employed;
        PHQ-9 20 -> 9, GAD-7 10 -> 6. Follow-ups: 30 reached abstinent, 90 unreachable,
        180 deceased, 365 none.
* step  iop, p1, admitted day 34 (14 days after `done`: a step-down), discharged day 134
        (100 days), dropped out; uses 10 -> 10 days; homeless, 2 arrests at discharge;
        PHQ-9 12 -> 7, GAD-7 8 -> 5. Follow-ups: 30 refused, 90 reached not abstinent.
* xfer  iop, p2, days 0-89, transferred; PHQ-9 15 -> 4. Follow-ups: 30 reached, no answer;
        180 reached abstinent.
* dead  detox, p3, days 0-3, death at discharge.
* late  iop, p4, days 900-980, completed: only 20 days observed.
* teds  TEDS-D long residential, completed, LOS code 34, use daily -> some, no arrests.
"""

from __future__ import annotations

import datetime as dt

import pytest
from mart_rows import day, discharge, insert, new_warehouse

from pipelines import marts
from pipelines.definitions import registry
from pipelines.definitions.evaluate import BASELINE_COLUMNS, evaluate

EPISODES = ["done", "step", "xfer", "dead", "late", "teds"]
_ = None  # not in the population, or excluded as missing

# definition -> expected value per episode, in the order of EPISODES
EXPECTED = {
    "completion":                [1, 0, 0, 0, 1, 1],
    "completion_or_transfer":    [1, 0, 1, 0, 1, 1],
    "retention_90d":             [0, 1, 0, 0, 0, 1],  # 20, 100, 89, 3, 80 days; TEDS band 34 = 91-120
    "abstinent_discharge":       [1, 0, _, _, _, 0],
    "use_reduction":             [1, 0, _, _, _, 1],  # 20 -> 0; 10 -> 10; TEDS daily -> some
    # ITT: everyone observed 30+ days; refused, unanswered and death at discharge are failures
    "abstinent_30d_itt":         [1, 0, 0, 0, _, _],
    "abstinent_30d_cc":          [1, _, _, _, _, _],  # xfer reached but no answer: excluded
    "abstinent_90d_itt":         [0, 0, 0, 0, _, _],
    "abstinent_90d_cc":          [_, 0, _, _, _, _],
    "abstinent_180d_itt":        [0, 0, 1, 0, _, _],  # deceased at follow-up counts as failure
    "abstinent_180d_cc":         [_, _, 1, _, _, _],
    # no 365-day abstinence answer anywhere: not applicable, all null (never a rate of 0)
    "abstinent_365d_itt":        [_, _, _, _, _, _],
    "abstinent_365d_cc":         [_, _, _, _, _, _],
    "no_readmission_30d":        [1, 1, 1, 1, _, _],  # the step-down is not a readmission
    "no_readmission_90d":        [1, 1, 1, 1, _, _],
    "stepdown_iop_14d":          [1, _, _, _, _, _],
    "employment_gain":           [1, _, _, _, _, _],  # step: unemployed at admission, unknown after
    "housing_stable":            [1, 0, _, _, _, _],
    "no_arrests":                [1, 0, _, _, _, 1],
    "phq9_response":             [1, 0, 1, _, _, _],  # 2*(20-9)=22 >= 20; 2*(12-7)=10 < 12
    "phq9_remission":            [0, 0, 1, _, _, _],
    "phq9_reliable_improvement": [1, 1, 1, _, _, _],  # drops of 11, exactly 5, 11
    "gad7_reliable_improvement": [1, 0, _, _, _, _],  # drops of exactly 4, and 3
    # response rate: deaths leave the denominator; no attempt counts as not reached
    "followup_reached_30d":      [1, 0, 1, _, _, _],  # step refused: an attempt, not reached
    "followup_reached_90d":      [0, 1, 0, _, _, _],
    "followup_reached_180d":     [_, 0, 1, _, _, _],
    # no 365-day attempt anywhere: the program does not run that window, not applicable
    "followup_reached_365d":     [_, _, _, _, _, _],
    # done: an IOP admission on day 14 is follow-up care within 30 days, not within 7; dead is left
    # out (HEDIS leaves out deaths); late: only 20 days observed after an IOP discharge
    "aftercare_7d": [0, _, _, _, _, _],
    "aftercare_30d": [1, _, _, _, _, _],
    "stepdown_14d": [1, _, _, _, _, _],
    "stepdown_30d": [1, _, _, _, _, _],
    "further_care_iop_30d": [_, 0, 0, _, _, _],
}


def _fu(fid, episode, window, status, **fields):
    return {"followup_id": fid, "episode_id": episode, "window_days": window, "status": status,
            "days_after_discharge": window + 3, **fields}


@pytest.fixture(scope="module")
def con():
    con = new_warehouse()
    insert(con, "raw_discharges", [
        discharge("done", "p1", "residential_short", 0, 20, use_days_admit=20, use_days_discharge=0,
                  employed_admit=False, employed_discharge=True, homeless_discharge=False,
                  arrests_discharge=0, phq9_admit=20, phq9_discharge=9, gad7_admit=10, gad7_discharge=6),
        discharge("step", "p1", "iop", 34, 134, discharge_reason="dropped_out", use_days_admit=10,
                  use_days_discharge=10, employed_admit=False, homeless_discharge=True,
                  arrests_discharge=2, phq9_admit=12, phq9_discharge=7, gad7_admit=8, gad7_discharge=5),
        discharge("xfer", "p2", "iop", 0, 89, discharge_reason="transferred", employed_admit=True,
                  employed_discharge=False, phq9_admit=15, phq9_discharge=4),
        discharge("dead", "p3", "detox", 0, 3, discharge_reason="death"),
        discharge("late", "p4", "iop", 900, 980),
    ])
    insert(con, "raw_followups", [
        _fu("f1", "done", 30, "reached", abstinent_30d=True),
        _fu("f2", "done", 90, "unreachable"),
        _fu("f3", "done", 180, "deceased"),
        _fu("f4", "step", 30, "refused", abstinent_30d=True),
        _fu("f5", "step", 90, "reached", abstinent_30d=False),
        _fu("f6", "xfer", 30, "reached"),
        _fu("f7", "xfer", 180, "reached", abstinent_30d=True),
    ])
    insert(con, "raw_teds_d", [
        {"episode_id": "teds", "services_d": 5, "level_of_care": "residential_long",
         "discharge_reason": "completed", "los_code": 34, "use_frequency_admit": "daily",
         "use_frequency_discharge": "some", "arrests_discharge": 0},
    ])
    marts.build(con, data_end_date=day(1000))
    return con


@pytest.fixture(scope="module")
def frame(con):
    return evaluate(con, list(registry.load_registry(None).values()))


def test_every_builtin_is_checked_here():
    assert set(EXPECTED) == set(registry.load_registry(None))


@pytest.mark.parametrize("definition_id", sorted(EXPECTED))
def test_builtin_definition_on_hand_checked_episodes(frame, definition_id):
    got = dict(zip(frame["episode_id"].to_list(), frame[definition_id].to_list(), strict=True))
    assert [got[e] for e in EPISODES] == EXPECTED[definition_id]


def test_frame_is_baseline_columns_then_one_int8_per_definition(frame):
    import polars as pl

    defs = list(registry.load_registry(None))
    assert frame.columns == [*BASELINE_COLUMNS, *defs]
    assert all(frame.schema[d] == pl.Int8 for d in defs)
    assert frame.height == len(EPISODES)


def test_window_boundaries_for_readmission_and_stepdown():
    """Readmission on day 30 vs 31 and step-down on day 14 vs 15, through the definitions."""
    con = new_warehouse()
    insert(con, "raw_discharges", [
        discharge("r30", "a", "iop", 0, 10), discharge("a2", "a", "outpatient", 10 + 30, 50),
        discharge("r31", "b", "iop", 0, 10), discharge("b2", "b", "outpatient", 10 + 31, 50),
        discharge("s14", "c", "residential_long", 0, 10), discharge("c2", "c", "iop", 10 + 14, 50),
        discharge("s15", "d", "residential_long", 0, 10), discharge("d2", "d", "iop", 10 + 15, 50),
    ])
    marts.build(con, data_end_date=dt.date(2027, 1, 1))
    defs = registry.select(registry.load_registry(None), ["no_readmission_30d", "stepdown_iop_14d"])
    got = {r["episode_id"]: r for r in evaluate(con, defs).to_dicts()}
    assert (got["r30"]["no_readmission_30d"], got["r31"]["no_readmission_30d"]) == (0, 1)
    assert (got["s14"]["stepdown_iop_14d"], got["s15"]["stepdown_iop_14d"]) == (1, 0)
    # s14's step-down is continuity; s15's IOP admission on day 15 is a readmission
    assert (got["s14"]["no_readmission_30d"], got["s15"]["no_readmission_30d"]) == (1, 0)


def test_analysis_frame_adds_the_follow_up_columns_in_the_same_rows(con, frame):
    from pipelines.analysis.comparative import EXTRA_COLUMNS, analysis_frame

    defs = list(registry.load_registry(None).values())
    full = analysis_frame(con, defs)
    assert full.columns == [*frame.columns, *EXTRA_COLUMNS]
    assert full.select(frame.columns).equals(frame)
    got = {e: row for e, row in zip(full["episode_id"], full.iter_rows(named=True), strict=True)}
    # reached at 30 days: done (reached), xfer (reached, no answer); step refused
    assert [got[e]["fu30_reached"] for e in ("done", "step", "xfer")] == [True, False, True]
    # data end day 1000: done discharged day 20, late day 980
    assert got["done"]["days_observed"] == 980 and got["late"]["days_observed"] == 20


def test_statistics_frame_is_the_analysis_frame_s_columns_read_in_batches(con, monkeypatch):
    import polars as pl

    import pipelines.analysis.comparative as comparative

    defs = list(registry.load_registry(None).values())
    full = comparative.analysis_frame(con, defs)
    monkeypatch.setattr(comparative, "FRAME_BATCH_ROWS", 4)  # 6 rows: two batches
    stats = comparative.statistics_frame(con, defs)
    assert "episode_key" not in stats.columns and "race" not in stats.columns
    assert {"level_group", "level_of_care", "site_id", "age_band", "fu90_reached"} <= set(stats.columns)
    assert [d.id for d in defs if d.id not in stats.columns] == []
    text = [c for c, t in stats.schema.items() if t == pl.Categorical]
    assert "level_of_care" in text and "site_id" in text
    assert all(full.schema[c] == pl.String for c in text)
    assert stats.with_columns(pl.col(text).cast(pl.String)).equals(full.select(stats.columns))


def test_statistics_frame_keeps_the_rows_of_the_levels_compared(con):
    import pipelines.analysis.comparative as comparative

    defs = list(registry.load_registry(None).values())
    iop = comparative.statistics_frame(con, defs, ["iop"])
    assert iop["level_of_care"].cast(str).to_list() == ["iop", "iop", "iop"]  # step, xfer, late
    # a group (residential_short and _long) and a level, in the order of episode_key:
    # 's1:dead' < 's1:done' < 'state-01:teds' ('1' sorts before 't')
    both = comparative.statistics_frame(con, defs, ["residential", "detox"])
    assert both["level_of_care"].cast(str).to_list() == ["detox", "residential_short", "residential_long"]
    assert both["completion"].to_list() == [0, 1, 1]  # dead, done, teds
