"""Reproduce SAMHSA's published TEDS-D 2019 reason-for-discharge margins through the pipeline.

The public TEDS-D 2019 file has 1,722,503 discharges; SAMHSA publishes REASON 1-7 totals and
SERVICES_D 1-8 totals (shared/reference/teds-d.md). We build a REASON x SERVICES_D table
consistent with both published margins (iterative proportional fitting from a seed in which
completion by setting follows the TEDS 2006 pattern of outcomes-standards.md: hospital
residential 70%, detox 67%, short-term residential 59%, long-term residential 44%, outpatient
40%), load one raw_teds_d row per discharge, and check that the definitions give the published
completion shares, overall and per setting, to one decimal of a percent.
"""

from __future__ import annotations

import numpy as np
import pytest
from mart_rows import new_warehouse

from pipelines import marts
from pipelines.analysis.rates import rates
from pipelines.definitions import registry

# REASON 1..7 and SERVICES_D 1..8, 2019 (teds-d.md "Published marginals")
REASON_2019 = [725_929, 432_610, 95_254, 369_503, 26_005, 3_576, 69_626]
SERVICES_2019 = [43_446, 240_303, 4_243, 179_737, 121_470, 235_771, 884_266, 13_267]
REASON_WORDS = ["completed", "dropped_out", "terminated", "transferred", "incarcerated", "death", "other"]
SERVICE_LEVEL = ["detox", "detox", "residential_hospital", "residential_short", "residential_long",
                 "iop", "outpatient", "detox"]
COMPLETION_2006 = [0.67, 0.67, 0.70, 0.59, 0.44, 0.40, 0.40, 0.67]


def joint_table() -> np.ndarray:
    """Integer 7 x 8 table whose row and column sums are exactly the published margins."""
    rows, cols = np.array(REASON_2019, float), np.array(SERVICES_2019, float)
    other_share = rows[1:] / rows[1:].sum()
    seed = np.vstack([np.array(COMPLETION_2006), np.outer(other_share, 1 - np.array(COMPLETION_2006))])
    table = seed * cols
    for _ in range(500):
        table *= (rows / table.sum(axis=1))[:, None]
        table *= cols / table.sum(axis=0)
    counts = np.floor(table).astype(np.int64)
    # hand out the rounding remainders, largest fractions first, keeping both margins exact
    need_r = np.array(REASON_2019) - counts.sum(axis=1)
    need_c = np.array(SERVICES_2019) - counts.sum(axis=0)
    for flat in np.argsort(-(table - counts), axis=None):
        i, j = np.unravel_index(flat, table.shape)
        if need_r[i] > 0 and need_c[j] > 0:
            counts[i, j] += 1
            need_r[i] -= 1
            need_c[j] -= 1
    return counts


def test_joint_table_has_the_published_margins():
    counts = joint_table()
    assert counts.sum(axis=1).tolist() == REASON_2019
    assert counts.sum(axis=0).tolist() == SERVICES_2019
    assert counts.sum() == 1_722_503
    assert (counts >= 0).all()


@pytest.fixture(scope="module")
def teds_rates():
    counts = joint_table()
    con = new_warehouse()
    cells = [(s + 1, SERVICE_LEVEL[s], REASON_WORDS[r], int(counts[r, s]))
             for r in range(7) for s in range(8) if counts[r, s]]
    con.execute("create temp table cells (services_d integer, level_of_care varchar, reason varchar, n bigint)")
    con.executemany("insert into cells values (?, ?, ?, ?)", cells)
    con.execute(
        """
        insert into raw_teds_d (episode_id, site_id, discharge_year, teds_era, services_d,
                                level_of_care, discharge_reason, los_code)
        select (row_number() over ())::varchar, 'state-01', 2019,
               '2017-2020', services_d, level_of_care, reason, 10
        from cells, range(n) as r(i)
        """
    )
    marts.build(con)
    defs = registry.select(registry.load_registry(None), ["completion", "completion_or_transfer"])
    table = rates(con, defs, ["level_of_care", "level_group"])
    return {(r["definition_id"], r["group_by"], r["group"]): r for r in table.to_dicts()}


def _pct(x: float) -> float:
    return round(100 * x, 1)


def test_overall_completion_matches_the_published_total(teds_rates):
    row = teds_rates[("completion", "all", None)]
    assert (row["numerator"], row["denominator"]) == (725_929, 1_722_503)
    assert _pct(row["rate"]) == _pct(725_929 / 1_722_503) == 42.1
    both = teds_rates[("completion_or_transfer", "all", None)]
    assert _pct(both["rate"]) == _pct((725_929 + 369_503) / 1_722_503) == 63.6


def test_completion_by_setting(teds_rates):
    completed = joint_table()[0]
    expected = {
        "detox": (completed[0] + completed[1] + completed[7]) / (43_446 + 240_303 + 13_267),
        "residential_hospital": completed[2] / 4_243,
        "residential_short": completed[3] / 179_737,
        "residential_long": completed[4] / 121_470,
        "iop": completed[5] / 235_771,
        "outpatient": completed[6] / 884_266,
    }
    for level, share in expected.items():
        row = teds_rates[("completion", "level_of_care", level)]
        assert _pct(row["rate"]) == _pct(share), level
    residential = teds_rates[("completion", "level_group", "residential")]
    assert residential["denominator"] == 4_243 + 179_737 + 121_470
    assert _pct(residential["rate"]) == _pct(sum(completed[2:5]) / (4_243 + 179_737 + 121_470))
    # the setting denominators are the published SERVICES_D totals
    assert teds_rates[("completion", "level_of_care", "outpatient")]["denominator"] == 884_266
    assert teds_rates[("completion", "level_of_care", "iop")]["denominator"] == 235_771


def test_completion_keeps_the_2006_ordering_of_settings(teds_rates):
    """Structured short settings complete more often than outpatient (outcomes-standards.md)."""
    rate = {lvl: teds_rates[("completion", "level_of_care", lvl)]["rate"]
            for lvl in ("residential_hospital", "detox", "residential_short", "residential_long", "outpatient")}
    assert rate["residential_short"] > rate["residential_long"]
    assert rate["detox"] > rate["outpatient"]
