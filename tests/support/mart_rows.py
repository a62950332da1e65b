"""Small hand-written raw tables for SQL and definition tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

from pipelines import marts

DISCHARGE_DEFAULTS: dict[str, Any] = {
    "site_id": "s1",
    "discharge_reason": "completed",
    "age_band": "25-29",
    "sex": "female",
    "primary_substance": "alcohol",
    "co_occurring_mh": False,
}
TEDS_DEFAULTS: dict[str, Any] = {
    "site_id": "state-01",
    "discharge_year": 2019,
    "teds_era": "2017-2020",
    "age_band": "25-29",
    "sex": "male",
    "primary_substance": "alcohol",
}
FOLLOWUP_DEFAULTS: dict[str, Any] = {"site_id": "s1"}

D0 = dt.date(2026, 1, 1)


def day(n: int) -> dt.date:
    """Day ``n`` counted from 2026-01-01 (day 0), so gaps read as plain arithmetic."""
    return D0 + dt.timedelta(days=n)


def new_warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    marts.ensure_raw_tables(con)
    return con


def insert(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    defaults = {
        "raw_discharges": DISCHARGE_DEFAULTS,
        "raw_teds_d": TEDS_DEFAULTS,
        "raw_followups": FOLLOWUP_DEFAULTS,
    }[table]
    full = [{**defaults, **row} for row in rows]
    columns = sorted({c for row in full for c in row})
    sql = f"insert into {table} ({', '.join(columns)}) values ({', '.join('?' for _ in columns)})"
    con.executemany(sql, [[row.get(c) for c in columns] for row in full])


def discharge(episode_id: str, person_id: str | None, level_of_care: str, admit: int, discharge: int,
              **fields: Any) -> dict[str, Any]:
    return {"episode_id": episode_id, "person_id": person_id, "level_of_care": level_of_care,
            "admit_date": day(admit), "discharge_date": day(discharge), **fields}


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cursor = con.execute(sql, list(params))
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def by_key(con: duckdb.DuckDBPyConnection, table: str, key: str = "episode_key") -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in rows(con, f"select * from {table}")}
