"""The truth's readmission and step-down conventions match what the SQL models measure.

The written files are loaded straight into the raw tables (level_of_care derived from
asam_level as records-v1 says), the marts are built, and the pipeline's readmit_30d /
readmit_90d / stepdown_iop_14d are compared with the model's observed-arm values.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

duckdb = pytest.importorskip("duckdb")
marts = pytest.importorskip("pipelines.marts")

ASAM = {"1": "outpatient", "2.1": "iop", "2.5": "php", "3.1": "residential_short", "3.3": "residential_short",
        "3.5": "residential_short", "3.7": "residential_hospital", "4": "inpatient"}


@pytest.fixture(scope="module")
def mart(native_dir):
    con = duckdb.connect()
    marts.ensure_raw_tables(con)
    cases = " ".join(f"when '{k}' then '{v}'" for k, v in ASAM.items())
    con.execute(f"""
        insert into raw_discharges by name
        select * replace (coalesce(level_of_care, case asam_level {cases} end) as level_of_care),
               'synth' as _file_sha256, 0 as _row_number
        from read_csv('{native_dir / "discharges.csv"}', types = {{'asam_level': 'VARCHAR'}})
    """)
    con.execute(f"""
        insert into raw_followups by name
        select *, 'synth' as _file_sha256, 0 as _row_number from read_csv('{native_dir / "followups.csv"}')
    """)
    marts.build(con, data_end_date=dt.date(2026, 9, 30))
    rows = con.execute("""
        select episode_id, level_group, readmit_30d, readmit_90d, stepdown_iop_14d,
               fu90_reached, fu90_abstinent
        from mart_episodes where source = 'native'
    """).fetchnumpy()
    return rows


def test_levels_survive_the_load(mart):
    assert mart["episode_id"].shape[0] == 20_000
    assert not any(g is None for g in mart["level_group"])


@pytest.mark.parametrize("window", [30, 90])
def test_readmission_convention_agrees(mart, data, window):
    ep = data.episodes
    idx = np.array([int(e[1:]) - 1 for e in mart["episode_id"]])
    gap = np.where(np.isinf(ep["readmit_t"]), 10**6, np.ceil(ep["readmit_t"]))[idx]
    # levelcare convention: after 'transferred', the first admission within 14 days is continuity
    transfer = (ep["reason"][idx] == 1) & (gap <= 14) & ~ep["stepdown_realized"][idx]
    expected = (gap <= window) & ~transfer
    got = mart[f"readmit_{window}d"]
    known = np.array([v is not None for v in got.tolist()])  # null: too soon to know
    assert known.mean() > 0.85
    agree = np.array(got.tolist(), dtype=object)[known].astype(bool) == expected[known]
    # the rest: readmissions still open at the data end (not written) and, after a
    # transfer, the admission after the transfer destination (counted by the SQL only)
    assert agree.mean() > 0.99


def test_stepdown_convention_agrees(mart, data):
    ep = data.episodes
    idx = np.array([int(e[1:]) - 1 for e in mart["episode_id"]])
    res = np.array([g == "residential" for g in mart["level_group"]])
    sd = mart["stepdown_iop_14d"].tolist()
    known = res & np.array([v is not None for v in sd])
    got = np.array(sd, dtype=object)[known].astype(bool)
    assert got.mean() > 0.15
    assert (got == ep["stepdown_realized"][idx][known]).mean() > 0.98


def test_followup_reach_agrees(mart, data):
    """The model's observed-arm 'reached' and abstinence are what the SQL finds in the rows."""
    ep = data.episodes
    idx = np.array([int(e[1:]) - 1 for e in mart["episode_id"]])
    reached = np.array([bool(v) for v in mart["fu90_reached"].tolist()])
    assert (reached == ep["po_reached_90d_obs"][idx]).all()
    abst = mart["fu90_abstinent"].tolist()
    composite = np.array([v is True for v in abst])  # the ITT success: reached and abstinent
    assert (composite == (ep["po_reached_90d_obs"] & ep["abstinent_90d"] & ep["answered_90d"])[idx]).all()
