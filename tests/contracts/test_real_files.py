"""Real EHR exports (readers): title rows above the header, the record sheet of a workbook that
opens with a cover sheet, and every row numbered by the line (CSV) or Excel row (XLSX) a person
finds it on. Expected values are written out by hand from the bytes of each file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest.readers import (
    SRC_RAW,
    SRC_VIEW,
    ReadRefused,
    Source,
    file_facts,
    load_source,
    peek_columns,
)


def load(path: Path, **kw) -> tuple[Source, list[tuple], duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    source = load_source(con, path, file_facts(path), **kw)
    rows = con.execute(f"SELECT * FROM {SRC_VIEW} ORDER BY _row_number").fetchall()
    return source, rows, con


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# ------------------------------------------------------------------------------ header below titles

def test_csv_title_lines_and_blank_line_above_the_header(tmp_path):
    path = write(tmp_path / "d.csv",
                 "Acme Recovery \u2013 Discharges Q3 2026,,,\r\n"   # line 1: a title with trailing empty cells
                 "Generated 10/01/2026\r\n"                          # line 2
                 "\r\n"                                              # line 3
                 "Episode_ID,person_id,site_id,admit_date\r\n"       # line 4: the header
                 "e1,p1,s1,2026-01-05\r\n"                           # line 5
                 "e2,p2,s1,\r\n"                                     # line 6
                 "e3,p3,s2,2026-03-01\r\n")                          # line 7
    source, rows, _ = load(path)
    assert source == Source(["episode_id", "person_id", "site_id", "admit_date"], None, 4)
    assert rows == [
        (1, 5, "e1", "p1", "s1", "2026-01-05"),
        (2, 6, "e2", "p2", "s1", None),
        (3, 7, "e3", "p3", "s2", "2026-03-01"),
    ]
    assert peek_columns(path) == ["episode_id", "person_id", "site_id", "admit_date"]


def test_title_lines_ending_in_lf_above_crlf_rows_lose_no_row(tmp_path):
    # a title written by one tool (LF) above an export written by another (CRLF): DuckDB 2.0's
    # skip= read no row of such a file at all
    path = write(tmp_path / "mixed.csv", "North Valley extract,,\n\na,b,c\r\n1,2,3\r\n4,5,6\r\n")
    source, rows, _ = load(path)
    assert source.header_line == 3
    assert rows == [(1, 4, "1", "2", "3"), (2, 5, "4", "5", "6")]


def test_semicolon_csv_under_a_title_with_one_semicolon(tmp_path):
    # the title sniffs as ';' too, but has 2 cells; the header has 4; a comma inside a value
    # must stay in the value (the delimiter is the header's, not ',')
    path = write(tmp_path / "s.csv",
                 "Report; Q3\n"
                 "episode_id;site_id;program_id;hours_per_week\n"
                 "e1;s1;Programa, norte;2,5\n"
                 "e2;s2;p2;10\n")
    source, rows, _ = load(path)
    assert source.names == ["episode_id", "site_id", "program_id", "hours_per_week"]
    assert source.header_line == 2
    assert rows == [(1, 3, "e1", "s1", "Programa, norte", "2,5"), (2, 4, "e2", "s2", "p2", "10")]


def test_comma_title_does_not_decide_a_tab_delimiter(tmp_path):
    path = write(tmp_path / "t.tsv", "Acme, Inc. export\n\n\na\tb\tc\n1\t2\t3\n")
    source, rows, _ = load(path)
    assert (source.names, source.header_line) == (["a", "b", "c"], 4)
    assert rows == [(1, 5, "1", "2", "3")]


def test_header_refusal_names_its_line(tmp_path):
    path = write(tmp_path / "dup.csv", "Title\n\nid,site,ID\n1,2,3\n")
    with pytest.raises(ReadRefused) as exc:
        load(path)
    assert str(exc.value) == ("dup.csv: column 'id' appears twice in the header (names are "
                              "case-insensitive) (header on line 3)")


def test_a_long_quoted_value_full_of_commas_is_not_taken_for_the_header(tmp_path):
    big = "x," * 100_000  # 200 kB: over the csv module's field limit, under the header's bound
    source, rows, _ = load(write(tmp_path / "big.csv", f'a,b\n1,"{big}"\n2,3\n'))
    assert (source.names, source.header_line) == (["a", "b"], 1)
    assert rows == [(1, 2, "1", big), (2, 3, "2", "3")]


def test_only_titles_and_blank_lines_is_a_file_without_rows(tmp_path):
    # every non-blank line has one cell: the first is the header
    source, rows, _ = load(write(tmp_path / "o.csv", "\n\nepisode_id\n"))
    assert (source.names, source.header_line, rows) == (["episode_id"], 3, [])
    with pytest.raises(ReadRefused, match=r"^e\.csv: empty file \(no header\)$"):
        load(write(tmp_path / "e.csv", "\n  \r\n\n"))


# ------------------------------------------------------------------------------ physical line numbers

def test_line_numbers_with_blank_lines_and_a_line_break_inside_a_quoted_field(tmp_path):
    path = write(tmp_path / "l.csv",
                 "Discharges export\n"               # 1
                 "\n"                                # 2
                 "episode_id,notes,site_id\n"        # 3 header
                 "e1,plain,s1\n"                     # 4  row 1
                 "\n"                                # 5
                 "e2,\"two\n"                        # 6  row 2 starts
                 "lines, \"\"quoted\"\"\",s1\n"      # 7
                 "\n"                                # 8
                 "\n"                                # 9
                 "e3,,s2\n"                          # 10 row 3
                 ",,\n"                              # 11 row 4: every cell empty is a row
                 "e5,\"a\n"                          # 12 row 5 starts
                 "\n"                                # 13 (inside the quoted field)
                 "b\",s3\n"                          # 14
                 "\n")                               # 15 trailing blank line
    source, rows, con = load(path)
    assert source.header_line == 3
    assert rows == [
        (1, 4, "e1", "plain", "s1"),
        (2, 6, "e2", 'two\nlines, "quoted"', "s1"),
        (3, 10, "e3", None, "s2"),
        (4, 11, None, None, None),
        (5, 12, "e5", "a\n\nb", "s3"),
    ]
    assert con.execute(f"SELECT typeof(_line) FROM {SRC_RAW} LIMIT 1").fetchall() == [("BIGINT",)]


def test_line_numbers_in_a_one_column_file_count_blank_lines_as_rows(tmp_path):
    # DuckDB reads a blank line of a one-column file as a row of NULL (as it always did)
    source, rows, _ = load(write(tmp_path / "one.csv", "Title\n\nepisode_id\ne1\n\ne2\n"))
    assert source.header_line == 1  # every line has one cell: the first one is the header
    assert rows == [(1, 2, None), (2, 3, "episode_id"), (3, 4, "e1"), (4, 5, None), (5, 6, "e2")]


def test_a_normal_file_is_numbered_from_the_line_after_the_header(tmp_path):
    path = write(tmp_path / "n.csv", "a,b\n1,2\n3,4\n5,6")  # no line break at the end
    _, rows, con = load(path)
    assert rows == [(1, 2, "1", "2"), (2, 3, "3", "4"), (3, 4, "5", "6")]
    assert con.execute(f"SELECT count(*) FROM {SRC_RAW} WHERE _line <> _row_number + 1").fetchall() == [(0,)]
    # blank lines only at the end change nothing
    _, rows, _ = load(write(tmp_path / "n2.csv", "a,b\r\n1,2\r\n3,4\r\n\r\n\r\n"))
    assert rows == [(1, 2, "1", "2"), (2, 3, "3", "4")]


def test_windows_1252_file_with_titles_and_blank_lines(tmp_path):
    path = write(tmp_path / "w.csv", "\u201cExport\u201d\n\na,b\n\u20ac1,x\n\n2,\u201cy\u201d\n".encode("cp1252"))
    source, rows, _ = load(path)
    assert source.header_line == 3
    assert rows == [(1, 4, "\u20ac1", "x"), (2, 6, "2", "\u201cy\u201d")]


def test_parser_error_names_the_physical_line(tmp_path):
    # DuckDB counts the quoted field's line break as none and would say line 6
    path = write(tmp_path / "bad.csv", "Title\n\na,b,c\n1,\"x\ny\",3\n\n4,5\n")
    with pytest.raises(ReadRefused) as exc:
        load(path)
    assert str(exc.value) == "bad.csv: unreadable or truncated CSV (parser stopped at line 7)"


# ------------------------------------------------------------------------------ XLSX: every sheet

def _workbook(path: Path) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    cover = wb.active
    cover.title = "Cover"
    cover["A1"] = "Acme Recovery \u2013 Discharges Q3 2026"
    cover["A3"] = "This workbook holds the discharges of the quarter; see the Data sheet."
    cover["A4"] = "Questions: data team"
    data = wb.create_sheet("Data")
    data["A1"] = "Discharges Q3 2026"                      # row 1: title
    data.append([])                                          # row 2: blank
    data.append(["Episode_ID", "site_id", "admit_date"])     # row 3: header (appended below row 1)
    data.append(["e1", "s1", dt.datetime(2026, 1, 5)])       # row 4
    data.append([None, None, None])                          # row 5: empty, kept as a row
    data.append(["e3", "s2", None])                          # row 6
    wb.create_sheet("Notes").append(["free text"])
    wb.save(path)
    return path


def _is_discharges(names: list[str]) -> bool:
    return "episode_id" in names


def test_xlsx_record_sheet_found_behind_a_cover_sheet(tmp_path):
    path = _workbook(tmp_path / "w.xlsx")
    source, rows, _ = load(path, accept=_is_discharges)
    assert source == Source(["episode_id", "site_id", "admit_date"], "Data", 3)
    assert rows == [
        (1, 4, "e1", "s1", "2026-01-05"),
        (2, 5, None, None, None),
        (3, 6, "e3", "s2", None),
    ]
    assert peek_columns(path, accept=_is_discharges) == ["episode_id", "site_id", "admit_date"]


def test_xlsx_sheet_by_name(tmp_path):
    path = _workbook(tmp_path / "w.xlsx")
    source, rows, _ = load(path, sheet="Data")
    assert (source.sheet, source.header_line, [r[:2] for r in rows]) == ("Data", 3, [(1, 4), (2, 5), (3, 6)])
    source, rows, _ = load(path, sheet="Notes", accept=_is_discharges)  # the name wins over accept
    assert (source, rows) == (Source(["free_text"], "Notes", 1), [])


def test_xlsx_unknown_sheet_is_refused_naming_the_sheets(tmp_path):
    path = _workbook(tmp_path / "w.xlsx")
    with pytest.raises(ReadRefused) as exc:
        load(path, sheet="Nope")
    assert str(exc.value) == "w.xlsx: no sheet named 'Nope' (the workbook has 'Cover', 'Data', 'Notes')"
    with pytest.raises(ReadRefused, match="no sheet named 'Nope'"):
        peek_columns(path, sheet="Nope")


def test_xlsx_without_accept_or_when_none_accepts_reads_the_first_sheet_with_a_header(tmp_path):
    path = _workbook(tmp_path / "w.xlsx")
    for kw in ({}, {"accept": lambda names: False}):
        source, rows, _ = load(path, **kw)
        assert (source.sheet, source.header_line, source.names) == ("Cover", 1, ["acme_recovery_\u2013_discharges_q3_2026"])
        assert [r[:2] for r in rows] == [(1, 2), (2, 3), (3, 4)]  # row 2 is empty and kept, as always


def test_xlsx_empty_first_sheet_is_passed_over(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = "empty"
    ws = wb.create_sheet("records")
    ws.append(["a", "b"])
    ws.append(["1", "2"])
    wb.save(tmp_path / "e.xlsx")
    source, rows, _ = load(tmp_path / "e.xlsx")
    assert (source, rows) == (Source(["a", "b"], "records", 1), [(1, 2, "1", "2")])
