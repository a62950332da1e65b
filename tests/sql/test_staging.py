"""Staging models: one-to-one with raw tables; follow-up contact dates resolved (int_followups)."""

from __future__ import annotations

import duckdb
from mart_rows import by_key, day, discharge, insert, new_warehouse, rows

from pipelines import marts


def test_build_creates_missing_raw_tables_and_keeps_existing_ones():
    con = duckdb.connect()
    con.execute("create table raw_discharges as select * from (values (1)) t(x) where false")
    created = marts.ensure_raw_tables(con)
    assert created == ["raw_followups", "raw_teds_d"]
    # an existing table is never altered
    assert [r["column_name"] for r in rows(con, "select column_name from information_schema.columns "
                                                "where table_name = 'raw_discharges'")] == ["x"]


def test_build_on_an_empty_warehouse_gives_empty_marts():
    con = duckdb.connect()
    built = marts.build(con)
    assert built[:3] == ["stg_discharges", "stg_followups", "stg_teds_d"]
    assert built[-3:] == ["mart_episodes", "mart_followups", "mart_pathways"]
    for name in ("mart_episodes", "mart_followups", "mart_pathways"):
        assert con.execute(f"select count(*) from {name}").fetchall() == [(0,)]
    # the staging views and intermediate tables (temporary) are dropped once the marts exist
    left = con.execute("select table_name from duckdb_tables() where temporary").fetchall()
    assert left == []
    assert con.execute("select view_name from duckdb_views() where temporary and not internal").fetchall() == []


def test_staging_models_int_episodes_and_int_followups_are_temporary_views_the_other_intermediate_ones_tables():
    con = duckdb.connect()
    marts.build(con, keep_temporary=True)
    views = {v for (v,) in con.execute("select view_name from duckdb_views() where temporary and not internal")
             .fetchall()}
    tables = {t for (t,) in con.execute("select table_name from duckdb_tables() where temporary").fetchall()}
    assert views == {"stg_discharges", "stg_followups", "stg_teds_d", "int_episodes", "int_followups"}
    assert tables == {"int_followup_best", "int_pathways"}


def test_mart_followups_is_a_view_and_replaces_the_table_an_older_build_left():
    con = duckdb.connect()
    con.execute("create table mart_followups (x integer)")  # as builds before the view wrote it
    marts.build(con)
    kinds = dict(con.execute("select table_name, table_type from information_schema.tables "
                             "where table_name like 'mart_%'").fetchall())
    assert kinds == {"mart_episodes": "BASE TABLE", "mart_followups": "VIEW", "mart_pathways": "BASE TABLE"}
    marts.build(con)  # and a rebuild replaces the view
    assert con.execute("select count(*) from mart_followups").fetchall() == [(0,)]


def test_stg_discharges_one_row_per_raw_row_with_key_and_lower_case_enums():
    con = new_warehouse()
    insert(con, "raw_discharges", [
        discharge("e1", "p1", "IOP", 0, 10, discharge_reason="Completed", sex="Female"),
        discharge("e1", "p9", "outpatient", 0, 10, site_id="s2"),
    ])
    marts.build(con, keep_temporary=True)
    stg = by_key(con, "stg_discharges")
    assert set(stg) == {"s1:e1", "s2:e1"}
    assert (stg["s1:e1"]["level_of_care"], stg["s1:e1"]["discharge_reason"], stg["s1:e1"]["sex"]) == (
        "iop", "completed", "female")


def test_int_followups_resolves_contact_date_and_days_after_discharge():
    con = new_warehouse()
    insert(con, "raw_discharges", [discharge("e1", "p1", "iop", 0, 10)])
    insert(con, "raw_followups", [
        {"followup_id": "f1", "episode_id": "e1", "window_days": 30, "status": "reached",
         "contact_date": None, "days_after_discharge": 28},
        {"followup_id": "f2", "episode_id": "e1", "window_days": 90, "status": "reached",
         "contact_date": day(10 + 95), "days_after_discharge": None},
    ])
    marts.build(con, keep_temporary=True)
    stg = {r["followup_id"]: r for r in rows(con, "select * from int_followups")}
    assert stg["f1"]["contact_date"] == day(10 + 28)
    assert stg["f1"]["days_after_discharge"] == 28
    assert stg["f2"]["contact_date"] == day(10 + 95)
    assert stg["f2"]["days_after_discharge"] == 95
    (discharge_row,) = con.execute("select episode_row from stg_discharges where episode_key = 's1:e1'").fetchone()
    assert discharge_row is not None
    assert stg["f1"]["episode_row"] == stg["f2"]["episode_row"] == discharge_row


def test_stg_teds_d_keys_and_keeps_the_los_code():
    con = new_warehouse()
    insert(con, "raw_teds_d", [
        {"episode_id": "123", "services_d": 6, "level_of_care": "iop", "discharge_reason": "completed",
         "los_code": 34},
    ])
    marts.build(con, keep_temporary=True)
    [row] = rows(con, "select * from stg_teds_d")
    assert (row["episode_key"], row["los_code"], row["level_of_care"]) == ("state-01:123", 34, "iop")
