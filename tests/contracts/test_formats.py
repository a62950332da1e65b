"""Input dialects and normalisation: every common CSV dialect, Parquet, XLSX, booleans, ASAM, age."""

from __future__ import annotations

import datetime as dt

import pytest
from ingest_helpers import csv_text, discharge, followup, ingest, rows_as_dicts, write

ROWS = [discharge("e1"), discharge("e2", sex="male", co_occurring_mh="true", phq9_admit="")]


def _loaded(tmp_path, row):
    assert row.status == "loaded", row.message
    return rows_as_dicts(tmp_path, f"select * from raw_discharges where _file_sha256 = '{row.sha256}' "
                                   "order by _row_number")


@pytest.mark.parametrize("name,content,encoding", [
    ("plain", csv_text(ROWS), "utf-8"),
    ("bom_crlf", "\ufeff" + csv_text(ROWS, newline="\r\n"), "utf-8"),
    ("semicolon", csv_text(ROWS, delimiter=";"), "utf-8"),
    ("tab", csv_text(ROWS, delimiter="\t"), "utf-8"),
    ("latin1", csv_text(ROWS), "latin-1"),
    ("upper_case_header", csv_text(ROWS).replace("episode_id", "EPISODE_ID").replace("sex", "Sex"), "utf-8"),
])
def test_csv_dialects(tmp_path, name, content, encoding):
    (row,) = ingest(tmp_path, write(tmp_path / f"{name}.csv", content, encoding=encoding))
    loaded = _loaded(tmp_path, row)
    assert [r["episode_id"] for r in loaded] == ["e1", "e2"]
    assert loaded[0]["admit_date"] == dt.date(2026, 1, 5)
    assert [r["sex"] for r in loaded] == ["female", "male"]
    assert [r["phq9_admit"] for r in loaded] == [12, None]  # empty = missing


def test_quoted_fields_and_latin1_text(tmp_path):
    rows = [discharge("e1", program_id="Programa, café")]
    (row,) = ingest(tmp_path, write(tmp_path / "q.csv", csv_text(rows, delimiter=";"), encoding="latin-1"))
    assert _loaded(tmp_path, row)[0]["program_id"] == "Programa, café"


def test_windows_1252_smart_quotes_euro_and_accents_arrive_as_written(tmp_path):
    # Excel's "CSV" on Windows: “ ” – € are bytes 0x93 0x94 0x96 0x80 (C1 controls in Latin-1),
    # é is 0xE9 as in Latin-1. The expected text is the one written.
    text = "\u201cNew Start\u201d \u2013 caf\u00e9 \u20ac5"
    rows = [discharge("e1", program_id=text), discharge("e2")]
    path = write(tmp_path / "w.csv", csv_text(rows), encoding="cp1252")
    assert b"\x93New Start\x94 \x96 caf\xe9 \x805" in path.read_bytes()
    (row,) = ingest(tmp_path, path)
    assert row.status == "loaded"
    assert _loaded(tmp_path, row)[0]["program_id"] == text


@pytest.mark.parametrize("word,value", [("TRUE", True), ("Yes", True), ("y", True), ("1", True),
                                        ("False", False), ("NO", False), ("n", False), ("0", False), ("", None)])
def test_booleans(tmp_path, word, value):
    (row,) = ingest(tmp_path, write(tmp_path / "b.csv", csv_text([discharge("e1", mat=word)])))
    assert _loaded(tmp_path, row)[0]["mat"] is value


def test_asam_and_age_normalised(tmp_path):
    rows = [
        discharge("e1", level_of_care="", asam_level="2.1", age_band="", age="34"),
        discharge("e2", level_of_care="", asam_level="3.5", age_band="", age="65"),
        discharge("e3", level_of_care="", asam_level="3.5", planned_los_days="45", age_band="", age="12"),
        discharge("e4", level_of_care="", asam_level="3.7-WM", age_band="", age="17"),
        discharge("e5", level_of_care="", asam_level="4.0", age_band="", age="55"),
        discharge("e6", level_of_care="IOP", asam_level="", age_band="18-20", age=""),
    ]
    (row,) = ingest(tmp_path, write(tmp_path / "a.csv", csv_text(rows)))
    loaded = _loaded(tmp_path, row)
    assert [r["level_of_care"] for r in loaded] == ["iop", "residential_short", "residential_long", "detox",
                                                     "inpatient", "iop"]
    assert [r["age_band"] for r in loaded] == ["30-34", "65+", "12-14", "15-17", "55-64", "18-20"]
    assert "age" not in loaded[0] and "planned_los_days" not in loaded[0]


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "Episode_ID": ["e1"], "person_id": ["p1"], "site_id": ["s1"], "level_of_care": ["php"],
        "admit_date": [dt.date(2026, 1, 5)], "discharge_date": [dt.date(2026, 2, 1)],
        "discharge_reason": ["completed"], "age": [40], "sex": ["other"], "primary_substance": ["opioids"],
        "co_occurring_mh": [True], "hours_per_week": [20.5], "phq9_admit": [7.0],
    })
    pq.write_table(table, tmp_path / "d.parquet")
    (row,) = ingest(tmp_path, tmp_path / "d.parquet")
    (r,) = _loaded(tmp_path, row)
    assert (r["episode_id"], r["level_of_care"], r["age_band"], r["co_occurring_mh"]) == ("e1", "php", "40-44", True)
    assert (r["discharge_date"], r["hours_per_week"], r["phq9_admit"]) == (dt.date(2026, 2, 1), 20.5, 7)


def test_xlsx_first_sheet(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    header = list(discharge("e1"))
    ws.append([h.upper() for h in header])
    ws.append([dt.datetime(2026, 1, 5) if h == "admit_date" else True if h == "co_occurring_mh"
               else 12 if h == "phq9_admit" else v for h, v in discharge("e1").items()])
    wb.create_sheet("other").append(["ignored"])
    wb.save(tmp_path / "d.xlsx")
    (row,) = ingest(tmp_path, tmp_path / "d.xlsx")
    (r,) = _loaded(tmp_path, row)
    assert (r["admit_date"], r["co_occurring_mh"], r["phq9_admit"]) == (dt.date(2026, 1, 5), True, 12)


def test_followups_days_after_discharge_kept(tmp_path):
    d = write(tmp_path / "in" / "z_discharges.csv", csv_text([discharge("e1")]))
    f = write(tmp_path / "in" / "a_followups.csv", csv_text([followup("f1", contact_date="", days_after_discharge="31")]))
    rows = ingest(tmp_path, tmp_path / "in")  # a folder: discharges load first whatever the names
    assert [(r.kind, r.status) for r in rows] == [("discharges", "loaded"), ("followups", "loaded")], rows
    (fu,) = rows_as_dicts(tmp_path, "select * from raw_followups")
    assert (fu["contact_date"], fu["days_after_discharge"]) == (None, 31)
    assert d.exists() and f.exists()


def test_kind_can_be_forced(tmp_path):
    (row,) = ingest(tmp_path, write(tmp_path / "d.csv", csv_text([discharge("e1")])), kind="followups")
    assert row.status == "refused" and "missing required column followup_id" in row.message
