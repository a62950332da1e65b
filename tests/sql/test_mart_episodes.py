"""mart_episodes: harmonised care columns, LOS bands, TEDS-D rows, one row per episode."""

from __future__ import annotations

import pytest
from mart_rows import by_key, day, discharge, insert, new_warehouse

from pipelines import marts
from pipelines.definitions.registry import mart_schema


def _single(level: str, los_days: int, **fields):
    con = new_warehouse()
    insert(con, "raw_discharges", [discharge("e1", "p1", level, 0, los_days, **fields)])
    marts.build(con)
    return by_key(con, "mart_episodes")["s1:e1"]


@pytest.mark.parametrize(
    ("los_days", "band"),
    [
        (0, 1),  # a same-day residential discharge is band 1, never 0
        (1, 1), (17, 17), (30, 30),
        (31, 31), (45, 31), (46, 32), (60, 32), (61, 33), (90, 33),
        (91, 34), (120, 34), (121, 35), (180, 35), (181, 36), (365, 36), (366, 37), (1000, 37),
    ],
)
def test_los_band_follows_the_teds_code_for_residential_stays(los_days, band):
    row = _single("residential_short", los_days)
    assert row["los_days"] == los_days
    assert row["los_band"] == band


@pytest.mark.parametrize(("los_days", "band"), [(0, 0 + 1), (29, 29 + 1), (30, 31), (90, 34)])
def test_ambulatory_stays_get_one_day_added_as_in_teds(los_days, band):
    row = _single("iop", los_days)
    assert row["los_days"] == los_days
    assert row["los_band"] == band


@pytest.mark.parametrize(
    ("level", "group"),
    [("outpatient", "outpatient"), ("iop", "iop"), ("php", "php"), ("residential_short", "residential"),
     ("residential_long", "residential"), ("residential_hospital", "residential"),
     ("inpatient", "inpatient"), ("detox", "detox")],
)
def test_level_group(level, group):
    assert _single(level, 5)["level_group"] == group


def test_quarter_year_outcome_flags_and_use_frequency():
    # admitted day 0 = 2026-01-01, discharged day 100 = 2026-04-11
    row = _single("iop", 100, discharge_reason="transferred", use_days_admit=30, use_days_discharge=3,
                  prior_episodes=2)
    assert (row["discharge_quarter"], row["discharge_year"]) == ("2026Q2", 2026)
    assert (row["is_completed"], row["is_transferred"]) == (False, True)
    assert (row["use_frequency_admit"], row["use_frequency_discharge"]) == ("daily", "some")
    assert row["has_prior_episodes"] is True
    assert row["source"] == "native"


def test_teds_rows_join_the_same_mart_without_days_or_person():
    con = new_warehouse()
    insert(con, "raw_discharges", [discharge("e1", "p1", "iop", 0, 10)])
    insert(con, "raw_teds_d", [
        {"episode_id": "77", "services_d": 4, "level_of_care": "residential_short",
         "discharge_reason": "dropped_out", "los_code": 33, "use_frequency_admit": "daily",
         "use_frequency_discharge": "none", "arrests_discharge": 2},
    ])
    marts.build(con)
    mart = by_key(con, "mart_episodes")
    assert len(mart) == 1 + 1
    teds = mart["state-01:77"]
    assert (teds["source"], teds["person_id"], teds["los_days"], teds["los_band"]) == ("teds-d", None, None, 33)
    assert (teds["level_group"], teds["discharge_quarter"], teds["discharge_year"]) == ("residential", None, 2019)
    assert teds["use_frequency_discharge"] == "none"
    assert (teds["fu30_status"], teds["fu30_reached"], teds["readmit_30d"], teds["stepdown_iop_14d"]) == (
        None, False, None, None)


def test_mart_has_every_column_docs_interfaces_promises():
    promised = (  # noqa: SIM905 - reads like the list in docs/interfaces.md
        "episode_key episode_id person_id site_id source level_of_care level_group admit_date "
        "discharge_date discharge_quarter discharge_year los_days los_band discharge_reason is_completed "
        "is_transferred age_band sex race ethnicity primary_substance co_occurring_mh prior_episodes "
        "has_prior_episodes use_days_admit use_days_discharge phq9_admit phq9_discharge gad7_admit "
        "gad7_discharge employed_admit employed_discharge homeless_admit homeless_discharge arrests_admit "
        "arrests_discharge payer referral_source mat readmit_30d readmit_90d readmit_180d "
        "days_to_readmission stepdown_iop_14d"
    ).split()
    per_window = ["status", "reached", "abstinent", "readmitted", "phq9"]
    promised += [f"fu{w}_{c}" for w in (30, 90, 180, 365) for c in per_window]
    assert set(promised) <= set(mart_schema())


def test_episode_keys_of_sites_with_colons_and_backslashes_stay_apart():
    # joined with ':' alone, site 'a:b' + episode 'c' and site 'a' + episode 'b:c' were one
    # episode_key: each episode took the other's follow-ups and appeared twice
    con = new_warehouse()
    insert(con, "raw_discharges", [
        discharge("c", "p1", "iop", 0, 10, site_id="a:b"),
        discharge("b:c", "p2", "residential_short", 0, 20, site_id="a"),
        discharge("e", "p3", "iop", 0, 30, site_id="x\\"),
        discharge("\\:e", "p4", "iop", 0, 40, site_id="x"),
    ])
    insert(con, "raw_followups", [
        {"followup_id": "f1", "episode_id": "c", "site_id": "a:b", "window_days": 30, "contact_date": day(40),
         "status": "reached", "abstinent_30d": True},
        {"followup_id": "f2", "episode_id": "b:c", "site_id": "a", "window_days": 30, "contact_date": day(50),
         "status": "refused"},
    ])
    marts.build(con)
    got = {(r["site_id"], r["episode_id"]): r for r in by_key(con, "mart_episodes").values()}
    (count,) = con.execute("select count(*) from mart_episodes").fetchone()
    assert count == 4 and len(got) == 4
    assert sorted(r["episode_key"] for r in got.values()) == sorted(
        ["a\\:b:c", "a:b:c", "x\\\\:e", "x:\\:e"])
    assert got[("a:b", "c")]["fu30_status"] == "reached"
    assert got[("a", "b:c")]["fu30_status"] == "refused"
    assert got[("a:b", "c")]["los_days"] == 10 and got[("a", "b:c")]["los_days"] == 20


def test_follow_ups_reach_their_own_episode_only_not_a_teds_row_or_an_orphan():
    # the build joins on an integer row key; the first native and the first TEDS-D row are both
    # row 0 of their raw table, and a follow-up of no discharge belongs to no episode
    con = new_warehouse()
    insert(con, "raw_discharges", [discharge("e1", "p1", "iop", 0, 10), discharge("e2", "p2", "iop", 0, 12)])
    insert(con, "raw_teds_d", [
        {"episode_id": "e1", "services_d": 6, "level_of_care": "iop", "discharge_reason": "completed",
         "los_code": 10},
    ])
    insert(con, "raw_followups", [
        {"followup_id": "f1", "episode_id": "e1", "window_days": 30, "contact_date": day(40),
         "status": "reached", "abstinent_30d": True},
        {"followup_id": "f2", "episode_id": "e1", "window_days": 30, "contact_date": day(38),
         "status": "unreachable"},
        {"followup_id": "f3", "episode_id": "e9", "window_days": 30, "contact_date": day(40),
         "status": "reached", "abstinent_30d": False},
    ])
    marts.build(con)
    mart = by_key(con, "mart_episodes")
    assert set(mart) == {"s1:e1", "s1:e2", "state-01:e1"}
    native, other, teds = mart["s1:e1"], mart["s1:e2"], mart["state-01:e1"]
    assert (native["fu30_status"], native["fu30_attempts"], native["fu30_abstinent"]) == ("reached", 2, True)
    assert (other["fu30_status"], other["fu30_reached"], other["fu30_attempts"]) == (None, False, 0)
    assert (teds["fu30_status"], teds["fu30_reached"], teds["fu30_attempts"]) == (None, False, None)
    (long_rows,) = con.execute("select count(*) from mart_followups where status is not null").fetchone()
    assert long_rows == 1
