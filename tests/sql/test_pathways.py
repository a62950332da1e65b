"""Pathways: step-downs, readmissions, continuity and censoring at the data end date."""

from __future__ import annotations

import pytest
from mart_rows import by_key, day, discharge, insert, new_warehouse, rows

from pipelines import marts


def _build(discharges, **kw):
    con = new_warehouse()
    insert(con, "raw_discharges", discharges)
    marts.build(con, **kw)
    return by_key(con, "mart_episodes"), con


# residential discharge on day 20; the next admission `gap` days later; data run to day 400
@pytest.mark.parametrize(("gap", "stepdown"), [(0, True), (14, True), (15, False)])
def test_stepdown_to_iop_within_14_days(gap, stepdown):
    mart, _ = _build([
        discharge("r", "p1", "residential_long", 0, 20),
        discharge("i", "p1", "iop", 20 + gap, 400),
    ])
    assert mart["s1:r"]["stepdown_iop_14d"] is stepdown
    # the step-down is continuity, not a readmission; a day-15 IOP admission is a readmission
    assert mart["s1:r"]["readmit_30d"] is (not stepdown)
    assert mart["s1:r"]["days_to_readmission"] == (None if stepdown else 15)
    assert mart["s1:i"]["stepdown_iop_14d"] is None  # only residential discharges step down


@pytest.mark.parametrize(("gap", "within_30"), [(30, True), (31, False)])
def test_readmission_day_30_counts_day_31_does_not(gap, within_30):
    mart, _ = _build([
        discharge("a", "p1", "iop", 0, 20),
        discharge("b", "p1", "iop", 20 + gap, 400),
    ])
    a = mart["s1:a"]
    assert (a["readmit_30d"], a["readmit_90d"], a["readmit_180d"]) == (within_30, True, True)
    assert a["days_to_readmission"] == gap


def test_other_admissions_after_a_stepdown_are_readmissions():
    mart, _ = _build([
        discharge("r", "p1", "residential_short", 0, 20),
        discharge("i", "p1", "iop", 25, 40),  # step-down, day 5
        discharge("d", "p1", "detox", 45, 50),  # 25 days after r's discharge
    ])
    r = mart["s1:r"]
    assert (r["stepdown_iop_14d"], r["days_to_stepdown"]) == (True, 5)
    assert (r["readmit_30d"], r["days_to_readmission"]) == (True, 45 - 20)
    # the IOP episode's own readmission counts from its discharge: detox 5 days later
    assert mart["s1:i"]["days_to_readmission"] == 45 - 40


@pytest.mark.parametrize(("reason", "later", "expected"), [
    # r discharged day 20; detox 2 days later, then IOP on day 25 (5 days) and again day 30 (10):
    # the first IOP admission (not the first admission) is the step-down, the detox and the
    # second IOP admission are readmissions, the detox first
    ("completed", [("d", "detox", 22, 24), ("i1", "iop", 25, 28), ("i2", "iop", 30, 60)], (True, 5, 2)),
    # r is a transfer: IOP 3 days later is the step-down and the transfer's continuation; PHP on
    # day 30 is a readmission (10 days)
    ("transferred", [("b", "iop", 23, 26), ("c", "php", 30, 60)], (True, 3, 10)),
], ids=["detox-then-iop", "transfer-to-iop"])
def test_the_stepdown_is_the_first_iop_admission_whatever_came_before(reason, later, expected):
    mart, _ = _build([
        discharge("r", "p1", "residential_long", 0, 20, discharge_reason=reason),
        *(discharge(key, "p1", level, admit, out) for key, level, admit, out in later),
    ])
    r = mart["s1:r"]
    assert (r["stepdown_iop_14d"], r["days_to_stepdown"], r["days_to_readmission"]) == expected
    assert r["readmit_30d"] is True


def test_a_transfer_is_continued_by_the_first_admission_within_14_days():
    mart, _ = _build([
        discharge("a", "p1", "iop", 0, 20, discharge_reason="transferred"),
        discharge("b", "p1", "php", 21, 60),
        discharge("c", "p1", "php", 300, 400),
    ])
    a = mart["s1:a"]
    assert (a["readmit_30d"], a["days_to_readmission"]) == (False, 300 - 20)


def test_readmission_unknown_when_the_window_is_not_yet_observed():
    # data end = day 100 (latest date). e1 discharged day 80: 20 days observed.
    mart, _ = _build([
        discharge("e1", "p1", "iop", 0, 80),
        discharge("e2", "p2", "iop", 0, 80),
        discharge("e3", "p2", "iop", 95, 100),  # p2 readmitted 15 days after e2
    ])
    assert mart["s1:e1"]["days_observed"] == 100 - 80
    assert (mart["s1:e1"]["readmit_30d"], mart["s1:e1"]["readmit_90d"]) == (None, None)
    # a readmission already seen is known even though the window is not complete
    assert (mart["s1:e2"]["readmit_30d"], mart["s1:e2"]["readmit_90d"]) == (True, True)


def test_stepdown_unknown_when_fewer_than_14_days_observed():
    mart, _ = _build([discharge("r", "p1", "residential_short", 0, 20)], data_end_date=day(20 + 13))
    assert mart["s1:r"]["stepdown_iop_14d"] is None
    mart, _ = _build([discharge("r", "p1", "residential_short", 0, 20)], data_end_date=day(20 + 14))
    assert mart["s1:r"]["stepdown_iop_14d"] is False


def test_data_end_date_parameter_overrides_the_latest_date():
    mart, _ = _build([discharge("a", "p1", "iop", 0, 20)], data_end_date=day(20 + 90))
    a = mart["s1:a"]
    assert (a["days_observed"], a["readmit_30d"], a["readmit_90d"], a["readmit_180d"]) == (90, False, False, None)


def test_mart_pathways_orders_each_persons_episodes():
    _, con = _build([
        discharge("late", "p1", "outpatient", 50, 80),
        discharge("early", "p1", "residential_short", 0, 20),
        discharge("solo", "p2", "iop", 0, 30),
        discharge("anon", None, "iop", 0, 30),
    ])
    path = rows(con, "select person_id, episode_seq, episode_key, previous_episode_key, next_episode_key "
                     "from mart_pathways order by person_id, episode_seq")
    assert path == [
        {"person_id": "p1", "episode_seq": 1, "episode_key": "s1:early", "previous_episode_key": None,
         "next_episode_key": "s1:late"},
        {"person_id": "p1", "episode_seq": 2, "episode_key": "s1:late", "previous_episode_key": "s1:early",
         "next_episode_key": None},
        {"person_id": "p2", "episode_seq": 1, "episode_key": "s1:solo", "previous_episode_key": None,
         "next_episode_key": None},
    ]


def test_episodes_of_other_people_do_not_link():
    mart, _ = _build([
        discharge("a", "p1", "residential_short", 0, 20),
        discharge("b", "p2", "iop", 22, 60),
    ])
    assert (mart["s1:a"]["stepdown_iop_14d"], mart["s1:a"]["readmit_30d"]) == (False, False)
