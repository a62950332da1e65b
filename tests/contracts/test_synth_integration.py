"""Synthetic data from pipelines.synth loads with no error-severity quarantine."""

from __future__ import annotations

import datetime as dt

import pytest
from ingest_helpers import ingest, query

synth = pytest.importorskip("pipelines.synth")


def test_synthetic_native_files_load_clean(tmp_path):
    synth.write_synthetic(tmp_path / "syn", records=400, seed=11)
    rows = ingest(tmp_path, tmp_path / "syn", today=dt.date(2100, 1, 1))
    by_kind = {r.kind: r for r in rows}
    assert len(rows) == 2 and set(by_kind) == {"discharges", "followups"}, rows  # truth.json is skipped
    for r in by_kind.values():
        assert (r.status, r.rows_quarantined) == ("loaded", 0), r.message
        assert r.rows_read == r.rows_loaded > 0
    assert query(tmp_path, "select count(*) from raw_discharges")[0][0] == by_kind["discharges"].rows_loaded


def test_synthetic_teds_file_loads_clean(tmp_path):
    synth.write_synthetic(tmp_path / "syn", records=400, seed=11, fmt="teds-d")
    (row,) = ingest(tmp_path, tmp_path / "syn" / "tedsd_puf.csv")
    assert (row.kind, row.status, row.rows_quarantined) == ("teds-d", "loaded", 0), row.message


@pytest.mark.parametrize("bad_row", [None, 150_000])
def test_rows_are_stored_in_file_order(tmp_path, bad_row):
    """300,000 rows (several DuckDB row groups, read and written by parallel threads) land in
    the order of the file, with and without a quarantined row (the load sorts only then)."""
    import duckdb

    n = 300_000
    path = tmp_path / "in" / "discharges.csv"
    path.parent.mkdir()
    discharge_date = "CASE WHEN i = $bad THEN '2026-02-31' ELSE '2026-02-20' END" if bad_row else "'2026-02-20'"
    with duckdb.connect() as con:
        con.execute(
            "COPY (SELECT 'e' || i AS episode_id, 'p' || i AS person_id, 's1' AS site_id, 'iop' AS level_of_care,"
            f" '2026-01-05' AS admit_date, {discharge_date} AS discharge_date, 'completed' AS discharge_reason,"
            " '30-34' AS age_band, 'female' AS sex, 'alcohol' AS primary_substance,"
            f" 'false' AS co_occurring_mh FROM range(1, {n + 1}) t(i) ORDER BY i) TO '{path}' (HEADER)",
            {"bad": bad_row} if bad_row else None)
    (row,) = ingest(tmp_path, path)
    assert row.rows_loaded == n - (1 if bad_row else 0), row.message
    (out_of_order,) = query(tmp_path, """
        SELECT count(*) FROM (SELECT _row_number, episode_id,
                                     lag(_row_number) OVER (ORDER BY rowid) AS previous
                              FROM raw_discharges)
        WHERE _row_number <= previous OR episode_id <> 'e' || _row_number""")[0]
    assert out_of_order == 0
