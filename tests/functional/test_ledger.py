"""Ledger and quarantine: reconciliation, duplicates, atomicity, retries, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from ingest_helpers import TODAY, csv_text, discharge, followup, ingest, query, write

LEDGER_COLUMNS = ["file_sha256", "file_name", "kind", "status", "rows_read", "rows_loaded", "rows_quarantined",
                  "message", "contract_version", "site_id", "ingested_at", "run_id", "mapping_sha256", "sheet"]
QUARANTINE_COLUMNS = ["file_sha256", "file_name", "row_number", "field", "check_id", "reason", "source_line",
                      "site_id", "record_id", "episode_id", "superseded_by"]


def test_tables_have_the_interface_columns(tmp_path):
    ingest(tmp_path, write(tmp_path / "d.csv", csv_text([discharge("e1")])))
    cols = lambda t: [r[0] for r in query(tmp_path, f"select column_name from information_schema.columns "
                                                    f"where table_name = '{t}' order by ordinal_position")]
    assert cols("ingest_ledger") == LEDGER_COLUMNS
    assert cols("ingest_quarantine") == QUARANTINE_COLUMNS


def test_reconciliation_over_several_files(tmp_path):
    d = write(tmp_path / "in" / "d.csv", csv_text([discharge("e1"), discharge("e2", sex="?"), discharge("e3")]))
    f = write(tmp_path / "in" / "f.csv", csv_text([followup("f1"), followup("f2", episode_id="zz")]))
    rows = ingest(tmp_path, d, f, run_id="run-1")
    assert [(r.status, r.rows_read, r.rows_loaded, r.rows_quarantined) for r in rows] == [
        ("partial", 3, 2, 1), ("partial", 2, 1, 1)]
    ledger = query(tmp_path, "select rows_read, rows_loaded, rows_quarantined, run_id, site_id, contract_version "
                             "from ingest_ledger order by file_name")
    assert ledger == [(3, 2, 1, "run-1", "s1", "1.0.0"), (2, 1, 1, "run-1", "s1", "1.0.0")]
    assert query(tmp_path, "select count(*) from raw_discharges")[0][0] == 2
    assert query(tmp_path, "select count(*) from raw_followups")[0][0] == 1
    assert query(tmp_path, "select row_number, field, check_id from ingest_quarantine order by file_name") == [
        (2, "sex", "allowed_values"), (2, "episode_id", "followup_orphan")]


def test_duplicate_file_loads_nothing_again(tmp_path):
    d = write(tmp_path / "d.csv", csv_text([discharge("e1")]))
    (first,) = ingest(tmp_path, d)
    copy = write(tmp_path / "copy" / "renamed.csv", d.read_bytes())
    (second,) = ingest(tmp_path, copy)
    assert (first.status, second.status) == ("loaded", "duplicate")
    assert second.sha256 == first.sha256 and second.rows_loaded == 0
    assert query(tmp_path, "select count(*) from raw_discharges")[0][0] == 1
    assert query(tmp_path, "select count(*) from ingest_ledger")[0][0] == 1


def test_refused_file_can_be_sent_again(tmp_path):
    path = write(tmp_path / "d.csv", csv_text([discharge("e1", first_name="x")]))
    (a,) = ingest(tmp_path, path)
    (b,) = ingest(tmp_path, path)
    assert (a.status, b.status) == ("refused", "refused")
    assert query(tmp_path, "select count(*) from ingest_ledger")[0][0] == 1
    assert query(tmp_path, "select count(*) from ingest_quarantine")[0][0] == 1


def test_crash_mid_load_leaves_no_trace(tmp_path, monkeypatch):
    from pipelines.ingest import steps

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash after the raw rows were inserted")

    monkeypatch.setattr(steps, "insert_ledger", boom)
    path = write(tmp_path / "d.csv", csv_text([discharge("e1"), discharge("e2", sex="?")]))
    with pytest.raises(RuntimeError):
        ingest(tmp_path, path)
    assert query(tmp_path, "select count(*) from raw_discharges")[0][0] == 0
    assert query(tmp_path, "select count(*) from ingest_quarantine")[0][0] == 0
    assert query(tmp_path, "select count(*) from ingest_ledger")[0][0] == 0
    monkeypatch.undo()
    (row,) = ingest(tmp_path, path)  # as if never seen: loads normally now
    assert (row.status, row.rows_loaded) == ("partial", 1)


def _levelcare(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def test_cli_ingest_json_and_quarantine(tmp_path):
    canary = "Qcanary Zname"
    d = write(tmp_path / "in" / "discharges.csv",
              csv_text([discharge("e1", discharge_date=str(TODAY)), discharge("e2", phq9_admit="99")]))
    bad = write(tmp_path / "in" / "names.csv", csv_text([discharge("e9", person_id=canary)]))
    wh = str(tmp_path / "w.duckdb")
    res = _levelcare("ingest", str(d), str(bad), "--json", "--warehouse", wh)
    assert res.returncode == 4, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [set(x) for x in lines] == [{"file", "sha256", "kind", "status", "rows_read", "rows_loaded",
                                        "rows_quarantined", "message", "problems", "warnings",
                                        "mapping_sha256"}] * 2
    assert [(x["file"], x["status"], x["rows_quarantined"]) for x in lines] == [
        ("discharges.csv", "partial", 1), ("names.csv", "refused", 1)]
    assert len(res.stderr.strip().splitlines()) == 1 and "names.csv" in res.stderr
    assert "Traceback" not in res.stderr
    for out in (res.stdout, res.stderr):
        assert "Qcanary" not in out and "Zname" not in out

    again = _levelcare("ingest", str(d), "--warehouse", wh)
    assert again.returncode == 0 and "duplicate" in again.stdout

    agg = _levelcare("quarantine", "--warehouse", wh)
    assert agg.returncode == 0
    assert "discharges.csv\trange\tphq9_admit\tphq9_admit outside 0 to 27\t1" in agg.stdout
    rows = _levelcare("quarantine", "--rows", "--file", "discharges.csv", "--warehouse", wh)
    # data row 2 is line 3 of the file (the header is line 1)
    assert rows.stdout.splitlines() == ["file_name\trow_number\tlocation\tepisode_id\tfield\tcheck_id\treason",
                                        "discharges.csv\t2\tline 3\te2\tphq9_admit\trange\tphq9_admit outside 0 to 27"]


def test_cli_missing_path_is_one_line_error(tmp_path):
    res = _levelcare("ingest", str(tmp_path / "nope.csv"), "--warehouse", str(tmp_path / "w.duckdb"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "nope.csv" in res.stderr
