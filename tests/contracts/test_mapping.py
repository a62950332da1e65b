"""Mapping files (docs/mapping.md): a hand-made EHR export loads through a mapping; a wrong
mapping is refused, every problem on its own line, before any data is read.

Expected values are written out by hand from the export below, not computed by the code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from ingest_helpers import ingest, query, write

from pipelines.cli import main
from pipelines.errors import Problems
from pipelines.ingest.mapping import parse_mapping

EXPORT = """Acme Recovery - Discharges Q1 2026,,,,,,,,,,,
Generated 6/1/2026,,,,,,,,,,,
,,,,,,,,,,,
Episode ID,Client Number,Program Site,Level of Care,Admission Date,Discharge Date,Discharge Reason,Age,Gender,Primary Substance,Co-Occurring MH,Counselor
E-101,C-9,north,Residential Short-Term,1/5/2026,2/3/2026,Successful completion,34,F,Alcohol,Y,Lee
E-102,C-17,north,Intensive Outpatient,1/12/2026,3/20/2026,AMA,27,M,opioids,N,Park
E-103,C-21,north,intensive outpatient,2/1/2026,2/28/2026,ama,45,f,Alcohol,n,Lee
"""

MAPPING = """levelcare_mapping: 1
kind: discharges
columns:
  Episode ID: episode_id
  Client Number: person_id
  Program Site: site_id
  Level of Care: level_of_care
  Admission Date: admit_date
  Discharge Date: discharge_date
  Discharge Reason: discharge_reason
  Age: age
  Gender: sex
  Primary Substance: primary_substance
  Co-Occurring MH: co_occurring_mh
values:
  level_of_care:
    Residential Short-Term: residential_short
    Intensive Outpatient: iop
  discharge_reason:
    Successful completion: completed
    AMA: dropped_out
  sex: {F: female, M: male}
dates:
  "*": "%m/%d/%Y"
ignore: [Counselor]
"""


def test_a_mapped_export_loads_with_contract_codes(tmp_path: Path):
    export = write(tmp_path / "in" / "export.csv", EXPORT)
    mapping = write(tmp_path / "north.yaml", MAPPING)
    (row,) = ingest(tmp_path, export, mapping=str(mapping))
    assert row.status == "loaded", row.message
    assert (row.rows_read, row.rows_loaded, row.rows_quarantined) == (3, 3, 0)
    got = query(tmp_path, "SELECT episode_id, person_id, site_id, level_of_care, admit_date, discharge_date, "
                          "discharge_reason, age_band, sex, primary_substance, co_occurring_mh FROM raw_discharges "
                          "ORDER BY episode_id")
    assert got == [
        ("E-101", "C-9", "north", "residential_short", dt.date(2026, 1, 5), dt.date(2026, 2, 3), "completed",
         "30-34", "female", "alcohol", True),
        ("E-102", "C-17", "north", "iop", dt.date(2026, 1, 12), dt.date(2026, 3, 20), "dropped_out", "25-29",
         "male", "opioids", False),
        ("E-103", "C-21", "north", "iop", dt.date(2026, 2, 1), dt.date(2026, 2, 28), "dropped_out", "45-49",
         "female", "alcohol", False),
    ]
    # the ledger records the mapping applied, by the sha256 of the mapping file's bytes
    expected_sha = hashlib.sha256(MAPPING.encode("utf-8")).hexdigest()
    assert row.mapping_sha256 == expected_sha
    assert query(tmp_path, "SELECT mapping_sha256 FROM ingest_ledger") == [(expected_sha,)]
    # Counselor was ignored on purpose: no warning about it
    assert row.warnings == ()


def test_a_mapping_with_many_mistakes_is_refused_one_line_each_before_reading(tmp_path: Path, capsys):
    bad = """levelcare_mapping: 1
kind: discharges
columns:
  Episode ID: episode_id
  Episode Number: episode_id
  Patient Name: person_id
  Level: level_of_cares
values:
  discharge_reason: {AMA: left_early}
  admit_date: {x: y}
dates:
  admit_date: "%d/%Y"
  birthday: "%m/%d/%Y"
constants:
  site_id: north
  sex: woman
  program_id: p1
ignore: [Episode ID]
colums: {}
"""
    with pytest.raises(Problems) as err:
        parse_mapping(bad, "bad.yaml")
    problems = err.value.problems
    expected_fragments = [
        "unknown key 'colums' (did you mean columns?)",
        "'Episode ID', 'Episode Number' are all mapped to episode_id",
        "'Patient Name' looks like a direct identifier",
        "'level_of_cares' is not a field of discharges (did you mean level_of_care?)",
        "values: discharge_reason: 'AMA' -> 'left_early', which is not one of completed, transferred",
        "values: admit_date is free text (type date)",
        "dates: admit_date: format '%d/%Y' cannot read a date",
        "dates: 'birthday' is not a date field",
        "constants: sex: 'woman' is not one of female, male, other, unknown",
        "ignore: 'Episode ID' is also mapped under columns",
    ]
    for fragment in expected_fragments:
        assert sum(fragment in p for p in problems) == 1, (fragment, problems)
    assert len(problems) == len(expected_fragments)
    # the CLI prints the summary and one line per problem; the data file is never opened
    data = write(tmp_path / "never-read.csv", "not,a,record\n")
    mapping = write(tmp_path / "bad.yaml", bad)
    code = main(["ingest", str(data), "--mapping", str(mapping), "--warehouse", str(tmp_path / "w.duckdb")],
                environ={})
    err_text = capsys.readouterr().err
    assert code == 2
    assert "bad.yaml: mapping refused (10 problems" in err_text
    assert err_text.count("\n  - ") == 10
    assert not (tmp_path / "w.duckdb").exists()


def test_two_sources_for_one_field_in_the_file_refuse_the_file(tmp_path: Path):
    # the file has both its own "Client Number" (mapped to person_id) and a column already named person_id
    text = EXPORT.replace("Counselor", "person_id")
    export = write(tmp_path / "export.csv", text)
    (row,) = ingest(tmp_path, export, mapping=str(write(tmp_path / "m.yaml", MAPPING.replace("[Counselor]", "[]"))))
    assert row.status == "refused"
    assert "columns 'client_number', 'person_id' all give field person_id" in row.message
    assert row.rows_quarantined == 3


def test_a_saved_site_mapping_applies_to_later_files_of_the_site(tmp_path: Path, capsys):
    wh = str(tmp_path / "w.duckdb")
    mapping = write(tmp_path / "north.yaml", MAPPING)
    assert main(["map", "save", "--site", "north", str(mapping), "--warehouse", wh], environ={}) == 0
    export = write(tmp_path / "export.csv", EXPORT)
    assert main(["ingest", str(export), "--site", "north", "--warehouse", wh], environ={}) == 0
    out = capsys.readouterr().out
    assert "loaded (discharges) read 3, loaded 3, quarantined 0" in out
    assert query(tmp_path, "SELECT count(*), min(mapping_sha256) FROM ingest_ledger") == [
        (1, hashlib.sha256(MAPPING.encode()).hexdigest())]


def test_every_problem_of_a_file_is_named_at_once(tmp_path: Path):
    """Missing columns with the closest header, each failing field's allowed values or format,
    failing labels (categories only) and counts, in one refusal."""
    header = "episode_id,Client Number,site_id,level_of_care,admit_date,discharge_date,discharge_reason,age_band,sex," \
             "primary_substance"
    rows = [f"e{i},p{i},s1,{'Residential Short-Term' if i % 2 else 'IOP'},0{1 + i % 9}/15/2026,2026-05-01,"
            f"{'AMA' if i % 3 else 'completed'},30-34,{'F' if i % 2 else 'M'},alcohol" for i in range(20)]
    export = write(tmp_path / "export.csv", "\n".join([header, *rows]) + "\n")
    (row,) = ingest(tmp_path, export, kind="discharges")
    assert row.status == "refused"
    problems = row.problems
    # person_id missing (the file has "Client Number", a usual name for it), co_occurring_mh missing
    assert any("missing required column person_id; the file has 'client_number', a usual name for it" in p
               for p in problems), problems
    assert "missing required column co_occurring_mh" in problems
    assert any("columns no field takes: 'client_number'" in p for p in problems), problems
    # the message names every problem, not only the first
    assert "3 problems" in row.message

    # with the columns fixed, the values: every failing field at once, with what it allows
    fixed = write(tmp_path / "fixed.csv", "\n".join(
        [header.replace("Client Number", "person_id") + ",co_occurring_mh", *[r + ",no" for r in rows]]) + "\n")
    (row,) = ingest(tmp_path, fixed, kind="discharges")
    assert row.status == "refused"
    text = "\n".join(row.problems)
    # level_of_care: all 20 fail ('iop' in upper case is fine: codes are case-insensitive ... 'IOP' -> iop)
    assert "level_of_care fails allowed_values on 10 of 20 rows (50%" not in text  # 50% is within tolerance
    assert "sex fails allowed_values on 20 of 20 rows (100%, tolerance 50%); allowed: female, male, other, " \
           "unknown; failing labels 'F', 'M'" in text
    assert "admit_date fails type on 20 of 20 rows (100%, tolerance 50%); expected a date (YYYY-MM-DD); " \
           "values shaped '99/99/9999'" in text
    assert "discharge_reason fails allowed_values on 13 of 20 rows (65%, tolerance 50%); allowed: completed, " \
           "transferred, dropped_out, terminated, incarcerated, death, other; failing labels 'AMA'" in text
    assert len(row.problems) == 3, row.problems


def test_a_misspelled_optional_column_is_a_warning_not_silence(tmp_path: Path):
    from ingest_helpers import csv_text, discharge

    export = write(tmp_path / "d.csv", csv_text([discharge("e1", phq9_admit=..., phq9_intake="12")]))
    (row,) = ingest(tmp_path, export)
    assert row.status == "loaded"
    assert row.warnings == (("column 'phq9_intake' is not a discharges field and was not loaded "
                             "(did you mean phq9_admit or phq9_discharge?)"),)
    assert "1 columns not used" in row.message


def test_a_folder_with_notes_skips_them_one_line_each(tmp_path: Path, capsys):
    from ingest_helpers import csv_text, discharge

    folder = tmp_path / "q1"
    write(folder / "discharges.csv", csv_text([discharge("e1")]))
    write(folder / "README.txt", "Extracts for Q1, as agreed with the board.\nCall Sam with questions.\n")
    write(folder / "notes.pdf", b"%PDF-1.4 not really")
    write(folder / ".DS_Store", b"\x00\x01")
    code = main(["ingest", str(folder), "--warehouse", str(tmp_path / "w.duckdb")], environ={})
    out = capsys.readouterr().out
    assert code == 0
    assert ".DS_Store: skipped (hidden file)" in out
    assert "README.txt: skipped (a text file whose first lines name no record fields)" in out
    assert "notes.pdf: skipped (not a CSV, Parquet or XLSX file)" in out
    assert "discharges.csv: loaded (discharges) read 1, loaded 1" in out


def test_quarantine_names_the_line_and_episode_and_a_resend_supersedes(tmp_path: Path, capsys):
    from ingest_helpers import csv_text, discharge

    wh = str(tmp_path / "w.duckdb")
    good = [discharge(f"e{i}") for i in range(1, 5)]
    bad = discharge("e9", sex="F")
    text = csv_text([*good[:2], bad, *good[2:]])
    lines = text.splitlines()
    # blank lines above the bad row: it is data row 3 but line 6 of the file
    sent = "\n".join([lines[0], lines[1], "", lines[2], "", lines[3], lines[4], lines[5]]) + "\n"
    export = write(tmp_path / "a" / "discharges.csv", sent)
    (row,) = ingest(tmp_path, export)
    assert (row.status, row.rows_loaded, row.rows_quarantined) == ("partial", 4, 1)
    assert query(tmp_path, "SELECT row_number, source_line, site_id, record_id, episode_id, field FROM "
                           "ingest_quarantine") == [(3, 6, "s1", "e9", "e9", "sex")]
    assert main(["quarantine", "--rows", "--warehouse", wh], environ={}) == 0
    out = capsys.readouterr().out
    assert "discharges.csv\t3\tline 6\te9\tsex\tallowed_values\tsex is not one of the allowed values " \
           "(female, male, other, unknown)" in out

    # the corrected resend: same rows, e9 fixed. The four already loaded are not loaded twice and
    # are not the sender's error; e9 loads and the old entry is superseded
    resend = write(tmp_path / "b" / "discharges-corrected.csv", csv_text([*good[:2], discharge("e9"), *good[2:]]))
    (row2,) = ingest(tmp_path, resend)
    assert (row2.status, row2.rows_loaded, row2.rows_quarantined) == ("loaded", 1, 4)
    assert "4 rows identical to records already loaded (kept once)" in row2.message
    assert "supersedes 1 quarantined rows of discharges.csv" in row2.message
    assert query(tmp_path, "SELECT count(*) FROM raw_discharges") == [(5,)]
    (old_message,) = query(tmp_path, "SELECT message FROM ingest_ledger WHERE file_name = 'discharges.csv'")[0]
    assert "1 quarantined rows superseded by discharges-corrected.csv" in old_message
    assert main(["quarantine", "--rows", "--warehouse", wh], environ={}) == 0
    out = capsys.readouterr().out
    assert "\tsex\t" not in out  # superseded: not listed by default
    assert main(["quarantine", "--rows", "--all", "--warehouse", wh], environ={}) == 0
    assert "\tsex\t" in capsys.readouterr().out
    # the same file again: a duplicate that names what it duplicates and its kind
    (dup,) = ingest(tmp_path, write(tmp_path / "c" / "again.csv", sent))
    assert dup.status == "duplicate"
    assert dup.line().startswith("again.csv: duplicate of a discharges already loaded; same content (sha256) as "
                                 "discharges.csv")


def test_a_refused_file_is_one_line_in_quarantine_rows(tmp_path: Path, capsys):
    export = write(tmp_path / "x.csv", "title only\n\nfoo,bar\n1,2\n3,4\n")
    (row,) = ingest(tmp_path, export, kind="discharges")
    assert row.status == "refused"
    assert main(["quarantine", "--rows", "--warehouse", str(tmp_path / "w.duckdb")], environ={}) == 0
    out = capsys.readouterr().out.splitlines()
    body = [line for line in out[1:] if line.strip()]
    assert len(body) == 1, out
    assert body[0].startswith("x.csv\t1-2\tlines 4-5\t")
    assert row.line().startswith("x.csv: refused (discharges) read 2, loaded 0, quarantined 2; refused: ")


def test_run_takes_kind_site_and_mapping_options():
    from pipelines.cli import build_parser

    parser = build_parser("run")
    args = parser.parse_args(["run", "--input", ".", "--out", "o", "--kind", "discharges", "--site", "north",
                              "--mapping", "m.yaml", "--sheet", "Data"])
    assert (args.kind, args.site, args.mapping, args.sheet) == ("discharges", "north", "m.yaml", "Data")


def test_a_discharges_mapping_leaves_the_follow_ups_beside_them_as_they_are(tmp_path: Path):
    # the run's folder: the mapped export and a native follow-up file of its episodes
    from ingest_helpers import csv_text, followup

    folder = tmp_path / "in"
    write(folder / "export.csv", EXPORT)
    write(folder / "followups.csv", csv_text([followup("f1", "E-101", site_id="north", contact_date="2026-03-05")]))
    rows = ingest(tmp_path, folder, mapping=str(write(tmp_path / "north.yaml", MAPPING)))
    assert [(r.file, r.kind, r.status, r.rows_loaded) for r in rows] == [
        ("export.csv", "discharges", "loaded", 3), ("followups.csv", "followups", "loaded", 1)]
    sha = hashlib.sha256(MAPPING.encode("utf-8")).hexdigest()
    assert query(tmp_path, "SELECT file_name, mapping_sha256 FROM ingest_ledger ORDER BY file_name") == [
        ("export.csv", sha), ("followups.csv", None)]
