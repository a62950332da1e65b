"""A follow-on quarter from ``levelcare synth --start --id-prefix`` loads beside the first.

Both quarters are written by the command line (in process) and loaded into one fresh warehouse
by what ``levelcare ingest`` runs (``ingest_paths``, through ingest_helpers: validation as
always, no Data Docs HTML, which has its own tests), one load per quarter as a site would send
them. Expected counts and dates come from the CSV files themselves, not from the generator.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

from ingest_helpers import ingest, query

from pipelines.cli import main

RECORDS = 300
# Both quarters lie before ingest_helpers.TODAY (and the real clock of `levelcare ingest`).
Q1 = ("--quarters", "1", "--end-quarter", "2024Q3", "--seed", "21")  # ids as by default: E0000001...
Q2 = ("--quarters", "1", "--start", "2024-10-01", "--id-prefix", "q2-", "--seed", "22")
Q1_PERIOD = (dt.date(2024, 7, 1), dt.date(2024, 9, 30))
Q2_PERIOD = (dt.date(2024, 10, 1), dt.date(2024, 12, 31))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _data_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) - 1  # less the header


def _levelcare(capsys, *argv: str) -> str:
    code = main(list(argv), environ={})
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_follow_on_quarter_loads_beside_the_first(tmp_path, capsys):
    q1, q2 = tmp_path / "q1", tmp_path / "q2"
    _levelcare(capsys, "synth", "--out", str(q1), "--records", str(RECORDS), *Q1)
    _levelcare(capsys, "synth", "--out", str(q2), "--records", str(RECORDS), *Q2)

    # what the files hold, read independently of the generator
    files = {(q, kind): folder / f"{kind}.csv" for q, folder in (("q1", q1), ("q2", q2))
             for kind in ("discharges", "followups")}
    lines = {key: _data_lines(path) for key, path in files.items()}
    rows = {key: _rows(path) for key, path in files.items()}
    assert lines[("q1", "discharges")] == lines[("q2", "discharges")] == RECORDS
    assert lines[("q1", "followups")] > 0 and lines[("q2", "followups")] > 0
    for key, path in files.items():
        assert len(rows[key]) == lines[key], path  # one record per line: no quoted line breaks
    # quarter 1 keeps the default ids; quarter 2's all carry the prefix, so none can collide
    assert rows[("q1", "discharges")][0]["episode_id"] == "E0000001"
    for q, prefix in (("q1", ""), ("q2", "q2-")):
        for r in rows[(q, "discharges")]:
            assert r["episode_id"].startswith(prefix + "E") and r["person_id"].startswith(prefix + "P"), r
        for r in rows[(q, "followups")]:
            assert r["followup_id"].startswith(prefix + "F") and r["episode_id"].startswith(prefix + "E"), r
    for field in ("episode_id", "person_id"):
        ids = [{r[field] for r in rows[(q, "discharges")]} for q in ("q1", "q2")]
        assert not ids[0] & ids[1], field
    # quarter 2's dates follow its period: discharges inside it, contacts after their discharge
    discharged = {}
    for q, (first, last) in (("q1", Q1_PERIOD), ("q2", Q2_PERIOD)):
        for r in rows[(q, "discharges")]:
            day = dt.date.fromisoformat(r["discharge_date"])
            assert first <= day <= last, (q, r["episode_id"], day)
            assert dt.date.fromisoformat(r["admit_date"]) <= day
            discharged[(r["site_id"], r["episode_id"])] = day
        for r in rows[(q, "followups")]:
            contact = dt.date.fromisoformat(r["contact_date"])
            assert discharged[(r["site_id"], r["episode_id"])] < contact <= last, (q, r["followup_id"])
    truth = json.loads((q2 / "truth.json").read_text())
    assert (truth["period"]["start"], truth["period"]["data_end_date"]) == ("2024-10-01", "2024-12-31")
    assert truth["id_prefix"] == "q2-"

    # two loads into one fresh warehouse (tmp_path/w.duckdb): every row of every file loads
    ledger = [r for folder in (q1, q2) for r in ingest(tmp_path, folder)]  # truth.json is skipped
    assert sorted((r.file, r.kind) for r in ledger) == sorted(
        [("discharges.csv", "discharges"), ("followups.csv", "followups")] * 2)
    assert sorted(r.rows_read for r in ledger) == sorted(lines.values())
    for r in ledger:
        assert (r.status, r.rows_quarantined, r.rows_loaded) == ("loaded", 0, r.rows_read), r.message
        assert not r.problems, r.problems

    def one(sql: str) -> tuple:
        (row,) = query(tmp_path, sql)
        return row

    assert one("select count(*) from ingest_quarantine") == (0,)
    assert one("select count(*), sum(rows_read), sum(rows_loaded), sum(rows_quarantined) from ingest_ledger") == (
        4, sum(lines.values()), sum(lines.values()), 0)
    n_discharges = lines[("q1", "discharges")] + lines[("q2", "discharges")]
    n_followups = lines[("q1", "followups")] + lines[("q2", "followups")]
    persons = {r["person_id"] for q in ("q1", "q2") for r in rows[(q, "discharges")]}
    assert one("select count(*), count(distinct (site_id, episode_id)), count(distinct person_id) "
               "from raw_discharges") == (n_discharges, n_discharges, len(persons))
    assert one("select count(*), count(distinct (site_id, followup_id)) from raw_followups") == (
        n_followups, n_followups)
    # quarter by quarter, in the warehouse: episodes and the span of their discharge dates
    for q, pattern, (first, last) in (("q1", "E%", Q1_PERIOD), ("q2", "q2-E%", Q2_PERIOD)):
        days = [dt.date.fromisoformat(r["discharge_date"]) for r in rows[(q, "discharges")]]
        n, lo, hi = one(f"select count(*), min(discharge_date), max(discharge_date) from raw_discharges "
                        f"where episode_id like '{pattern}'")
        assert (n, lo, hi) == (lines[(q, "discharges")], min(days), max(days))
        assert first <= lo <= hi <= last
    # every follow-up names an episode of its own quarter and site, and comes after its discharge
    assert one("""
        select count(*), count(d.episode_id),
               count_if(starts_with(f.episode_id, 'q2-') = starts_with(f.followup_id, 'q2-')),
               count_if(f.contact_date > d.discharge_date)
        from raw_followups f left join raw_discharges d using (site_id, episode_id)""") == (n_followups,) * 4
