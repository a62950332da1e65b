"""The step API (pipelines.ingest.steps) and its two drivers: ingest_paths in one process, and
the staged driver's prepare_file / load_prepared, here run in this process (no Dask)."""

from __future__ import annotations

import dataclasses
import re

from ingest_helpers import TODAY, csv_text, discharge, followup, ingest, query, settings, write

from pipelines.ingest.staged import load_prepared, loaded_sha256s, prepare_file
from pipelines.ingest.steps import LedgerRow, plan_files


def outcome(row: LedgerRow) -> dict:
    # a duplicate's message gives the minute its first copy was loaded: each driver loaded its own
    return dataclasses.asdict(dataclasses.replace(
        row, message=re.sub(r"loaded \d{4}-\d\d-\d\d \d\d:\d\d;", "loaded (when);", row.message)))


def test_plan_puts_discharges_before_followups_and_skips_what_is_not_a_record_file(tmp_path):
    folder = tmp_path / "in"
    f = write(folder / "a_followups.csv", csv_text([followup("f1")]))
    d = write(folder / "b_discharges.csv", csv_text([discharge("e1")]))
    write(folder / "README.md", "notes")
    skipped: list[str] = []
    assert plan_files([folder], skipped=skipped) == [d, f]
    assert skipped == ["README.md: skipped (not a CSV, Parquet or XLSX file)"]
    assert plan_files([folder], kind="followups") == [f, d]  # a kind given: path order


def test_the_staged_driver_leaves_the_warehouse_as_ingest_paths_does(tmp_path):
    folder = tmp_path / "in"
    d = write(folder / "discharges.csv", csv_text([discharge("e1"), discharge("e2", sex="?"), discharge("e3")]))
    write(folder / "copy_of_discharges.csv", d.read_bytes())
    write(folder / "followups.csv", csv_text([followup("f1"), followup("f2", episode_id="zz")]))
    write(folder / "names.csv", csv_text([discharge("e9", first_name="x")]))
    one, staged = tmp_path / "one", tmp_path / "staged"
    one.mkdir()
    staged.mkdir()

    rows = ingest(one, folder, run_id="run-1")
    files = plan_files([folder])
    skip = loaded_sha256s(settings(staged))
    prepared = (prepare_file(str(p), skip=skip, docs=False) for p in files)
    staged_rows = load_prepared(settings(staged), prepared, run_id="run-1", today=TODAY, docs=False)

    assert [outcome(r) for r in staged_rows] == [outcome(r) for r in rows]
    assert sorted(r.status for r in rows) == ["duplicate", "partial", "partial", "refused"]
    (duplicate,) = (outcome(r) for r in staged_rows if r.status == "duplicate")
    assert "as copy_of_discharges.csv, loaded (when); nothing loaded again" in duplicate["message"]
    # a file refused on a worker leaves the writer no source to take its lines from: the
    # quarantine rows of a refused file carry source_line in one process only
    for sql in ("select * exclude (ingested_at) from ingest_ledger order by file_name",
                "select * exclude (source_line) from ingest_quarantine order by all",
                "select file_name, row_number, source_line from ingest_quarantine where file_name <> 'names.csv' "
                + "order by all",
                "select * from raw_discharges order by all",
                "select * from raw_followups order by all"):
        assert query(staged, sql) == query(one, sql), sql
