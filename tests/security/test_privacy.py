"""Privacy gates.

* The direct-identifier gate (``pipelines/ingest/identifiers.py``) refuses realistic
  identifiers by column name and by value shape, and never refuses ordinary columns.
* A canary string put into a free-text field and an invalid enumeration value reaches no log,
  error message, Prefect state, Data Docs page or output file (the warehouse may hold it).
* Every artifact that leaves the warehouse passes the disclosure rule: no person count 1–10.
* The warehouse and every output file and folder are readable by their owner only.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import duckdb
import pytest
from sec_helpers import CANARY

from pipelines import disclosure
from pipelines.ingest import identifiers

# ------------------------------------------------------------------------------------ identifier gate


def _scan(columns: dict[str, list[str | None]], name_checked=(), distinct=()) -> list[identifiers.IdentifierFinding]:
    con = duckdb.connect()
    try:
        n = max(len(v) for v in columns.values())
        cols = ", ".join(f'"{c}" VARCHAR' for c in columns)
        con.execute(f"CREATE TABLE t ({cols})")
        for i in range(n):
            con.execute("INSERT INTO t VALUES (" + ", ".join("?" for _ in columns) + ")",
                        [columns[c][i] if i < len(columns[c]) else None for c in columns])
        return identifiers.scan(con, "t", list(columns), name_checked=name_checked, distinct=distinct)
    finally:
        con.close()


POSITIVES = {
    # by name
    "first_name": ["Ann", "Bob"],
    "last_name": ["Smith", "Jones"],
    "patient_name": ["x1", "x2"],
    "client_full_name": ["a", "b"],
    "ssn": ["1", "2"],
    "social_security_number": ["1", "2"],
    "mrn": ["A1", "A2"],
    "medical_record_number": ["1", "2"],
    "phone": ["1", "2"],
    "home_phone_number": ["1", "2"],
    "email": ["a", "b"],
    "e_mail": ["a", "b"],
    "street_address": ["1", "2"],
    "address_line_1": ["1", "2"],
    # ZIP and birth columns: by their values
    "zip": ["02139", "10001"],
    "zipcode": ["02139-1234", "10001"],
    "postal_code": ["02139", "94110"],
    "dob": ["1980-04-12", "1975-11-30"],
    "birth_date": ["04/12/1980", "11/30/1975"],
    "date_of_birth": ["1980-4-2", "1975-11-30"],
}
VALUE_POSITIVES = {
    # values shaped like identifiers under innocuous column names
    "notes": ["123-45-6789", "ok"],
    "contact": ["jane.doe@example.org", "ok"],
    "ref": ["(617) 555-0134", "ok"],
    "ref2": ["+1 617-555-0134", "ok"],
    "location": ["12 Main St", "ok"],
    "where_from": ["4410 North Elm Avenue Apt 3", "ok"],
}
NEGATIVES = {
    "site_id": ["site-a", "site-b", "North Clinic"],
    "episode_id": ["E0000001", "E0000002", "E0000003"],
    "person_id": ["P000123", "P000124", "P999999"],
    "program_id": ["site-a-iop", "site-b-residential", "site-c-op"],
    "program_name": ["Harbor House", "New Start", "Blue Ridge"],
    "admit_date": ["2026-01-05", "2026-02-11", "2025-12-30"],
    "discharge_date": ["2026-02-20", "2026-04-06", "2026-01-31"],
    "zip3": ["021", "100", "941"],
    "birth_year": ["1980", "1975", "2001"],
    "phq9_admit": ["12", "3", "27"],
    "sessions_attended": ["12345", "2", "40"],
    "episode_cost": ["14192.20", "644.92", "99999.99"],
    "payer": ["medicaid", "private", "self_pay"],
    "level_of_care": ["residential_short", "iop", "outpatient"],
    "race": ["white", "black", "asian"],
    "referral_source": ["community", "court", "self"],
    "days_waiting": ["10000", "20000", "0"],
    "county": ["New York", "Kings", "Queens"],
}


@pytest.mark.parametrize("column", sorted(POSITIVES))
def test_identifier_columns_are_refused(column: str) -> None:
    found = _scan({column: POSITIVES[column], "episode_id": ["E1", "E2"]})
    assert [f.column for f in found] == [column]
    message = found[0].message("f.csv")
    assert "\n" not in message
    for v in POSITIVES[column]:
        if len(v) > 2:
            assert v not in message, "the refusal must not quote a value"


@pytest.mark.parametrize("column", sorted(VALUE_POSITIVES))
def test_identifier_values_are_refused(column: str) -> None:
    found = _scan({column: VALUE_POSITIVES[column], "episode_id": ["E1", "E2"]})
    assert [f.column for f in found] == [column]
    assert found[0].rows == 1
    assert VALUE_POSITIVES[column][0] not in found[0].message("f.csv")


# Values padded with spaces, separated by tabs, line feeds or carriage returns, and repeated:
# the gate probes each distinct raw value once behind a cheap necessary condition, so these
# are the shapes a wrong condition would miss. Expected counts are the rows written here.
PADDED = {
    "notes": (["  123-45-6789 ", "123-45-6789", "123-45-6789", "ok", None], "social security numbers", 3),
    "contact": ([" a.b@example.org", "ok", "ok"], "e-mail addresses", 1),
    "ref": (["617.555.0134  ", "617.555.0134  ", "1"], "phone numbers", 2),
    "location": (["12\tMain\tSt", "7\nElm\rRoad", "12"], "street addresses", 2),
}


# Columns expected to hold all-different values (ids, amounts) are probed row by row instead of
# grouped; the counts must be the same rows either way.
@pytest.mark.parametrize("row_by_row", [False, True], ids=["grouped", "row_by_row"])
@pytest.mark.parametrize("column", sorted(PADDED))
def test_padded_tabbed_and_repeated_values_are_counted(column: str, row_by_row: bool) -> None:
    values, what, rows = PADDED[column]
    found = _scan({column: values, "episode_id": ["E1", "E2", "E3"]}, distinct=[column] if row_by_row else [])
    assert [(f.column, f.what, f.rows) for f in found] == [(column, what, rows)]


@pytest.mark.parametrize("row_by_row", [False, True], ids=["grouped", "row_by_row"])
def test_tab_separated_person_names_are_refused(row_by_row: bool) -> None:
    found = _scan({"client_ref": ["Jane\tDoe", "Jane\tDoe", "John Public", "x1"]}, name_checked=["client_ref"],
                  distinct=["client_ref"] if row_by_row else [])
    assert [(f.what, f.rows) for f in found] == [("person names", 3)]


@pytest.mark.parametrize("row_by_row", [False, True], ids=["grouped", "row_by_row"])
def test_person_names_below_half_of_the_rows_pass(row_by_row: bool) -> None:
    # 2 of 5 filled values look like names (under half): a pseudonym scheme, not a name column
    values = ["Jane Doe", "Jane Doe", "x1", "x2", "x3", None]
    found = _scan({"client_ref": values}, name_checked=["client_ref"], distinct=["client_ref"] if row_by_row else [])
    assert found == []
    found = _scan({"client_ref": values[:4]}, name_checked=["client_ref"],
                  distinct=["client_ref"] if row_by_row else [])
    assert [(f.what, f.rows) for f in found] == [("person names", 2)]


def test_person_names_in_id_columns_are_refused() -> None:
    found = _scan({"client_ref": ["Jane Doe", "John Q. Public", "Mary Ann-Smith"]}, name_checked=["client_ref"])
    assert [f.what for f in found] == ["person names"]


def test_ordinary_columns_pass() -> None:
    assert _scan(NEGATIVES, name_checked=["episode_id", "person_id", "program_id", "program_name"]) == []


@pytest.mark.parametrize("column", sorted(NEGATIVES))
def test_each_ordinary_column_passes_alone(column: str) -> None:
    assert _scan({column: NEGATIVES[column]}, name_checked=[column]) == [], column


def test_zip_and_birth_columns_without_full_values_pass() -> None:
    assert _scan({"zip": ["021", "100"], "dob_year": ["1980", "1975"], "birth_month": ["1980-04", "1975-11"]}) == []


# ------------------------------------------------------------------------------------ canary


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_canary_reaches_no_log_message_state_docs_or_output(small_run) -> None:
    run = small_run
    # the canary is in the input and (inside the trust boundary) in the warehouse
    assert CANARY.encode() in (run.input / "discharges.csv").read_bytes()
    con = duckdb.connect(str(run.warehouse), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM raw_discharges WHERE program_id LIKE ?", [f"%{CANARY}%"]
                           ).fetchone()[0] == 2
        assert con.execute("SELECT count(*) FROM ingest_quarantine WHERE field = 'sex'").fetchone()[0] >= 1
        assert con.execute("SELECT count(*) FROM ingest_quarantine WHERE reason LIKE ?", [f"%{CANARY}%"]
                           ).fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM ingest_ledger WHERE message LIKE ?", [f"%{CANARY}%"]
                           ).fetchone()[0] == 0
    finally:
        con.close()
    # every byte the commands printed (ingest -vv logs at DEBUG, the flow's progress, quarantine --rows)
    for name, res in run.results.items():
        assert CANARY not in res.stdout, f"{name} stdout"
        assert CANARY not in res.stderr, f"{name} stderr"
    assert "DEBUG" in run.results["ingest"].stderr  # -vv really logged at debug level
    # the Prefect home (its database holds flow and task states), Data Docs, the output folder
    scanned = 0
    for folder in (run.prefect_home, run.docs, run.out):
        files = _files(folder)
        assert files, f"nothing written under {folder}"
        for p in files:
            assert CANARY.encode() not in p.read_bytes(), f"canary in {p}"
            scanned += 1
    assert scanned > 10
    for name in ("results.json", "rates.csv", "report.html", "report.pdf", "report.xlsx", "accreditation.xlsx"):
        assert (run.out / name).is_file(), name


def test_prefect_home_holds_flow_runs(small_run) -> None:
    """The canary scan above read a Prefect database that really recorded this run."""
    db = small_run.prefect_home / "prefect.db"
    assert db.is_file() and db.stat().st_size > 0


# ------------------------------------------------------------------------------------ disclosure


def _is_count_name(name: str) -> bool:
    return disclosure.is_count_column(str(name))


def _csv_records(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _json_records(value) -> list[dict]:
    """Every dict inside a JSON document (rows of every table, at any depth)."""
    out = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            out.append(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return out


def _xlsx_records(path: Path) -> list[dict]:
    """Tables in a sheet: a bold header row followed by rows until a blank row."""
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True)
    out = []
    try:
        for ws in wb.worksheets:
            header = None
            for row in ws.iter_rows(values_only=True):
                if not any(v is not None for v in row):
                    header = None
                    continue
                if header is None:
                    if any(isinstance(v, str) and _is_count_name(v.replace(" ", "_")) for v in row):
                        header = [str(v).replace(" ", "_") if v is not None else "" for v in row]
                    continue
                out.append(dict(zip(header, row, strict=False)))
    finally:
        wb.close()
    return out


def _small_counts(records: list[dict]) -> list[tuple[str, object]]:
    bad = []
    for rec in records:
        for k, v in rec.items():
            if not _is_count_name(str(k)):
                continue
            n = v
            if isinstance(v, str):
                try:
                    n = float(v.replace(",", ""))
                except ValueError:
                    continue
            if isinstance(n, bool) or not isinstance(n, (int, float)):
                continue
            if 1 <= n <= 10:
                bad.append((k, v))
    return bad


def test_every_artifact_passes_disclosure(small_run) -> None:
    out = small_run.out
    checked = {"csv": 0, "json": 0, "xlsx": 0}
    counted = 0
    for p in sorted(_files(out)):
        if p.suffix == ".csv":
            records = _csv_records(p)
            checked["csv"] += 1
        elif p.suffix == ".json":
            records = _json_records(json.loads(p.read_text(encoding="utf-8")))
            checked["json"] += 1
        elif p.suffix == ".xlsx":
            records = _xlsx_records(p)
            checked["xlsx"] += 1
        else:
            continue
        counted += sum(1 for r in records for k in r if _is_count_name(str(k)))
        assert _small_counts(records) == [], f"{p.name}: counts 1-10 shown"
        if p.suffix == ".csv":
            disclosure.check_artifact(records, name=p.name)
    assert checked["csv"] >= 3 and checked["json"] >= 1 and checked["xlsx"] >= 2, checked
    assert counted > 100, "the scan found (almost) no count columns: it would prove nothing"


def test_disclosure_scan_catches_a_small_count(tmp_path: Path) -> None:
    """The scan itself works: a planted 7 in a count column is found."""
    p = tmp_path / "x.csv"
    p.write_text("definition_id,numerator,denominator\na,7,120\n", encoding="utf-8")
    assert _small_counts(_csv_records(p)) == [("numerator", "7")]
    with pytest.raises(disclosure.DisclosureError):
        disclosure.check_artifact(_csv_records(p), name="x.csv")


# ------------------------------------------------------------------------------------ permissions


def test_warehouse_and_outputs_are_owner_only(small_run) -> None:
    run = small_run
    paths = [run.warehouse, run.out, *run.out.rglob("*"), run.docs, *run.docs.rglob("*")]
    loose = [f"{p} {oct(os.stat(p).st_mode & 0o777)}" for p in paths if os.stat(p).st_mode & 0o077]
    assert loose == []
