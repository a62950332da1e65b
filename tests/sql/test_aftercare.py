"""Aftercare continuity: follow-up care after high-intensity care (HEDIS FUI-like), wider
step-downs, further care after IOP; their null rules; and the registry definitions over them.

Warehouse of hand-made episodes, data end date day 200 (days counted from 2026-01-01). One
person per story; `key: level admit-discharge`:

* pA  r7: residential_short 0-20, then o7: outpatient 27-60 (7 days: day 7 counts)
* pB  r8: residential_long 0-20, then h8: php 28-60 (8 days: not within 7, within 30)
* pC  n30: inpatient 0-20, then i30: iop 50-80 (30 days: day 30 counts)
* pD  n31: inpatient 0-20, then o31: outpatient 51-70 (31 days: day 31 does not)
* pE  dx: detox 0-5, then dxo: outpatient 8-40 (3 days: both true)
* pF  rr1: residential_short 0-20, then rr2: residential_long 22-60 (not follow-up care)
* pG  soon: residential_hospital 180-195 (5 days observed: too soon for everything)
* pH  soon10: detox 185-190 (10 days observed: 7 days known, 30 not)
* pI  seen: residential_short 185-192, then seen_o: outpatient 195-199 (3 days: known early)
* pJ  iop1: iop 0-30, then iop1_dx: detox 40-45 (10 days: further care, not follow-up care)
* pK  iop31: iop 0-30, then iop31_b: iop 61-90 (31 days: no further care within 30)
* pL  xfer: iop 0-30 transferred, then xfer_p: php 31-60 (1 day: further care, not a readmission)
* pM  ov: residential_short 0-20, with ov_o: outpatient 10-40 admitted during the stay (not after)
* pN  g0: residential_long 0-20, then g0_i: iop 20-50 (0 days: the discharge day counts)
* --  anon: residential_short 0-20 without person_id; teds: a TEDS-D residential record
"""

from __future__ import annotations

import pytest
from mart_rows import by_key, day, discharge, insert, new_warehouse, rows

from pipelines import marts
from pipelines.analysis import rates as rates_mod
from pipelines.definitions import registry
from pipelines.definitions.evaluate import evaluate

T, F, _ = True, False, None
COLUMNS = ("days_to_followup_care", "followup_care_7d", "followup_care_30d", "stepdown_14d",
           "stepdown_30d", "further_care_30d")
NONE = (_, _, _, _, _, _)

# episode -> expected values of COLUMNS, worked out by hand from the module docstring
EXPECTED = {
    "r7":      (7, T, T, T, T, _),
    "o7":      NONE,  # outpatient: not a high-intensity discharge, nothing after it
    "r8":      (8, F, T, T, T, _),
    "h8":      NONE,
    "n30":     (30, F, T, _, _, _),  # inpatient: follow-up care, but no step-down (residential only)
    "i30":     (_, _, _, _, _, F),  # IOP discharged day 80, nothing after: 120 days observed
    "n31":     (31, F, F, _, _, _),
    "o31":     NONE,
    "dx":      (3, T, T, _, _, _),
    "dxo":     NONE,
    "rr1":     (_, F, F, F, F, _),  # a residential readmission is not follow-up care
    "rr2":     (_, F, F, F, F, _),
    "soon":    NONE,  # 5 days observed, nothing seen: too soon to know anything
    "soon10":  (_, F, _, _, _, _),  # 10 days observed: 7-day window over, 30-day window not
    "seen":    (3, T, T, T, T, _),  # 8 days observed, but the follow-up was already seen
    "seen_o":  NONE,
    "iop1":    (_, _, _, _, _, T),  # detox 10 days later: further care, not ambulatory
    "iop1_dx": (_, F, F, _, _, _),
    "iop31":   (31, _, _, _, _, F),
    "iop31_b": (_, _, _, _, _, F),
    "xfer":    (1, _, _, _, _, T),
    "xfer_p":  NONE,
    "ov":      (_, F, F, F, F, _),  # the outpatient admission began before the discharge
    "ov_o":    NONE,
    "g0":      (0, T, T, T, T, _),
    "g0_i":    (_, _, _, _, _, F),
    "anon":    NONE,  # no person_id: links to nothing
    "teds":    NONE,  # TEDS-D: no person links
}


@pytest.fixture(scope="module")
def con():
    con = new_warehouse()
    insert(con, "raw_discharges", [
        discharge("r7", "pA", "residential_short", 0, 20), discharge("o7", "pA", "outpatient", 27, 60),
        discharge("r8", "pB", "residential_long", 0, 20), discharge("h8", "pB", "php", 28, 60),
        discharge("n30", "pC", "inpatient", 0, 20), discharge("i30", "pC", "iop", 50, 80),
        discharge("n31", "pD", "inpatient", 0, 20), discharge("o31", "pD", "outpatient", 51, 70),
        discharge("dx", "pE", "detox", 0, 5), discharge("dxo", "pE", "outpatient", 8, 40),
        discharge("rr1", "pF", "residential_short", 0, 20), discharge("rr2", "pF", "residential_long", 22, 60),
        discharge("soon", "pG", "residential_hospital", 180, 195),
        discharge("soon10", "pH", "detox", 185, 190),
        discharge("seen", "pI", "residential_short", 185, 192), discharge("seen_o", "pI", "outpatient", 195, 199),
        discharge("iop1", "pJ", "iop", 0, 30), discharge("iop1_dx", "pJ", "detox", 40, 45),
        discharge("iop31", "pK", "iop", 0, 30), discharge("iop31_b", "pK", "iop", 61, 90),
        discharge("xfer", "pL", "iop", 0, 30, discharge_reason="transferred"),
        discharge("xfer_p", "pL", "php", 31, 60),
        discharge("ov", "pM", "residential_short", 0, 20), discharge("ov_o", "pM", "outpatient", 10, 40),
        discharge("g0", "pN", "residential_long", 0, 20), discharge("g0_i", "pN", "iop", 20, 50),
        discharge("anon", None, "residential_short", 0, 20),
    ])
    insert(con, "raw_teds_d", [
        {"episode_id": "teds", "services_d": 5, "level_of_care": "residential_long",
         "discharge_reason": "completed", "los_code": 34},
    ])
    marts.build(con, data_end_date=day(200))
    return con


@pytest.fixture(scope="module")
def mart(con):
    return {r["episode_id"]: r for r in by_key(con, "mart_episodes").values()}


def test_every_episode_is_checked(mart):
    assert set(mart) == set(EXPECTED)


@pytest.mark.parametrize("episode", sorted(EXPECTED))
def test_aftercare_columns_on_hand_checked_episodes(mart, episode):
    assert tuple(mart[episode][c] for c in COLUMNS) == EXPECTED[episode]


def test_existing_pathway_columns_keep_their_meaning(mart):
    # PHP on day 8 is follow-up care and a step-down (any ambulatory level), but not the IOP
    # step-down, so it stays a readmission
    assert (mart["r8"]["stepdown_iop_14d"], mart["r8"]["readmit_30d"], mart["r8"]["days_to_readmission"]) == (
        False, True, 8)
    # the same-day IOP admission is both kinds of step-down and not a readmission
    assert (mart["g0"]["stepdown_iop_14d"], mart["g0"]["days_to_stepdown"], mart["g0"]["readmit_30d"]) == (
        True, 0, False)
    # further care after a transfer is not a readmission either
    assert (mart["xfer"]["readmit_30d"], mart["xfer"]["further_care_30d"]) == (False, True)
    # a residential readmission: not follow-up care, but a readmission
    assert (mart["rr1"]["readmit_30d"], mart["rr1"]["followup_care_30d"]) == (True, False)


def test_mart_pathways_carries_the_same_values_for_linked_episodes(con, mart):
    got = {r["episode_key"].removeprefix("s1:"): r
           for r in rows(con, f"select episode_key, {', '.join(COLUMNS)} from mart_pathways")}
    linked = {e for e in EXPECTED if e not in ("anon", "teds")}
    assert set(got) == linked
    for e in linked:
        assert tuple(got[e][c] for c in COLUMNS) == EXPECTED[e], e


def _one_pair(level, next_level, gap, end_after=400):
    """An episode `a` of `level` discharged day 20, the same person's `next_level` admission
    `gap` days later (none when gap is None); data end `end_after` days after the discharge."""
    con = new_warehouse()
    episodes = [discharge("a", "p1", level, 0, 20)]
    if gap is not None:
        episodes.append(discharge("b", "p1", next_level, 20 + gap, 20 + gap + 10))
    insert(con, "raw_discharges", episodes)
    marts.build(con, data_end_date=day(20 + end_after))
    return by_key(con, "mart_episodes")["s1:a"]


@pytest.mark.parametrize(("gap", "within_7", "within_30"), [(7, T, T), (8, F, T), (30, F, T), (31, F, F)])
@pytest.mark.parametrize("level", ["residential_short", "detox", "inpatient"])
def test_followup_care_window_boundaries(level, gap, within_7, within_30):
    a = _one_pair(level, "outpatient", gap)
    assert (a["followup_care_7d"], a["followup_care_30d"], a["days_to_followup_care"]) == (within_7, within_30, gap)


@pytest.mark.parametrize(("gap", "within_14", "within_30"), [(14, T, T), (15, F, T), (30, F, T), (31, F, F)])
@pytest.mark.parametrize("next_level", ["outpatient", "iop", "php"])
def test_stepdown_window_boundaries(next_level, gap, within_14, within_30):
    a = _one_pair("residential_long", next_level, gap)
    assert (a["stepdown_14d"], a["stepdown_30d"]) == (within_14, within_30)
    assert a["stepdown_iop_14d"] is (within_14 and next_level == "iop")


@pytest.mark.parametrize(("next_level", "gap", "expected"), [
    ("outpatient", 30, T), ("iop", 0, T), ("residential_short", 12, T), ("detox", 1, T), ("inpatient", 30, T),
    ("outpatient", 31, F), (None, None, F),
])
def test_further_care_after_iop_is_any_admission_within_30_days(next_level, gap, expected):
    a = _one_pair("iop", next_level, gap)
    assert a["further_care_30d"] is expected
    assert (a["followup_care_7d"], a["followup_care_30d"], a["stepdown_30d"]) == (None, None, None)


@pytest.mark.parametrize(("observed", "known_7", "known_14", "known_30"), [
    (6, None, None, None), (7, False, None, None), (13, False, None, None), (14, False, False, None),
    (29, False, False, None), (30, False, False, False),
])
def test_unknown_until_the_window_has_been_observed(observed, known_7, known_14, known_30):
    res = _one_pair("residential_short", None, None, end_after=observed)
    assert (res["followup_care_7d"], res["stepdown_14d"], res["followup_care_30d"], res["stepdown_30d"]) == (
        known_7, known_14, known_30, known_30)
    iop = _one_pair("iop", None, None, end_after=observed)
    assert iop["further_care_30d"] is known_30


@pytest.mark.parametrize("level", ["outpatient", "iop", "php"])
def test_not_applicable_levels_have_no_followup_or_stepdown_flag(level):
    a = _one_pair(level, "outpatient", 3)
    assert (a["followup_care_7d"], a["followup_care_30d"], a["stepdown_14d"], a["stepdown_30d"]) == (_, _, _, _)
    assert a["days_to_followup_care"] == 3  # the gap itself is there for every linked episode
    assert a["further_care_30d"] is (True if level == "iop" else None)


# definition -> (episodes with 1, episodes with 0), worked out by hand from EXPECTED; every
# other episode is null (not in the population, or excluded as too soon / unlinked)
DEFINITIONS = {
    "aftercare_7d": ({"r7", "dx", "seen", "g0"},
                     {"r8", "n30", "n31", "rr1", "rr2", "soon10", "iop1_dx", "ov"}),
    "aftercare_30d": ({"r7", "r8", "n30", "dx", "seen", "g0"},
                      {"n31", "rr1", "rr2", "iop1_dx", "ov"}),
    "stepdown_30d": ({"r7", "r8", "seen", "g0"}, {"rr1", "rr2", "ov"}),
    # every step-down here came within 8 days (r7 7, r8 8, seen 3, g0 0)
    "stepdown_14d": ({"r7", "r8", "seen", "g0"}, {"rr1", "rr2", "ov"}),
    "further_care_iop_30d": ({"iop1", "xfer"}, {"i30", "iop31", "iop31_b", "g0_i"}),
}
# (numerator, denominator) counted by hand from the lists above
COUNTS = {"aftercare_7d": (4, 12), "aftercare_30d": (6, 11), "stepdown_30d": (4, 7), "stepdown_14d": (4, 7),
          "further_care_iop_30d": (2, 6)}


def test_the_definitions_load_with_their_populations():
    defs = registry.load_registry(None)
    assert defs["aftercare_7d"].population == ("level_group in ('residential', 'detox', 'inpatient') "
                                                "and (discharge_reason is null or discharge_reason <> 'death')")
    assert (defs["aftercare_7d"].window_days, defs["aftercare_30d"].window_days) == (7, 30)
    assert defs["further_care_iop_30d"].population == "level_group = 'iop'"
    assert {defs[d].missing for d in DEFINITIONS} == {"exclude"}


@pytest.mark.parametrize("definition_id", sorted(DEFINITIONS))
def test_definition_values_numerator_and_denominator(con, definition_id):
    defs = registry.select(registry.load_registry(None), [definition_id])
    frame = evaluate(con, defs)
    got = dict(zip(frame["episode_id"].to_list(), frame[definition_id].to_list(), strict=True))
    ones, zeros = DEFINITIONS[definition_id]
    assert {e for e, v in got.items() if v == 1} == ones
    assert {e for e, v in got.items() if v == 0} == zeros
    overall = [r for r in rates_mod.rates(con, defs, []).to_dicts() if r["group_by"] == "all"]
    assert [(r["numerator"], r["denominator"]) for r in overall] == [COUNTS[definition_id]]
    assert COUNTS[definition_id] == (len(ones), len(ones) + len(zeros))

