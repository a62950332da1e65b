"""Builders for ingest tests: valid records-v1 rows, files in several formats, an ingest runner."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
from csv_fixture_text import csv_text as rows_csv_text

from pipelines.ingest.core import ingest_paths
from pipelines.settings import Settings

TODAY = dt.date(2026, 6, 30)


def discharge(episode_id: str = "e1", **over: Any) -> dict[str, Any]:
    row = {
        "episode_id": episode_id, "person_id": "p-" + episode_id, "site_id": "s1", "level_of_care": "iop",
        "admit_date": "2026-01-05", "discharge_date": "2026-02-20", "discharge_reason": "completed",
        "age_band": "30-34", "sex": "female", "primary_substance": "alcohol", "co_occurring_mh": "false",
        "phq9_admit": "12",
    }
    row.update(over)
    return {k: v for k, v in row.items() if v is not ...}


def followup(followup_id: str = "f1", episode_id: str = "e1", **over: Any) -> dict[str, Any]:
    # discharge() is discharged 2026-02-20; +30 days = 2026-03-22
    row = {"followup_id": followup_id, "episode_id": episode_id, "site_id": "s1", "window_days": "30",
           "contact_date": "2026-03-22", "status": "reached", "abstinent_30d": "true"}
    row.update(over)
    return {k: v for k, v in row.items() if v is not ...}


def csv_text(rows: Sequence[Mapping[str, Any]], delimiter: str = ",", columns: Sequence[str] | None = None,
             newline: str = "\n") -> str:
    """CSV text; the columns default to every key seen, in order of appearance."""
    return rows_csv_text(rows, list(columns or dict.fromkeys(k for r in rows for k in r)), delimiter, newline)


def write(path: Path, content: str | bytes, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode(encoding)
    path.write_bytes(content)
    return path


def settings(tmp: Path) -> Settings:
    return Settings.from_options(warehouse=tmp / "w.duckdb", environ={})


def ingest(tmp: Path, *paths: Path, **kw: Any):
    kw.setdefault("today", TODAY)
    kw.setdefault("docs", False)  # Data Docs HTML has its own tests; validation itself always runs
    return ingest_paths(settings(tmp), list(paths), **kw)


def query(tmp: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    con = duckdb.connect(str(tmp / "w.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def rows_as_dicts(tmp: Path, sql: str) -> list[dict[str, Any]]:
    con = duckdb.connect(str(tmp / "w.duckdb"), read_only=True)
    try:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
