"""Injection and paths.

Definition expressions, site ids and file names cannot run SQL; report and export write only
inside ``--out`` under fixed names (nothing derived from data becomes a path); spreadsheets
and CSVs written for people neutralize formula-like text (OWASP CSV injection).
"""

from __future__ import annotations

import csv
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from conftest import FORMULA_LABEL, FORMULA_SITE, SQL_SITE
from sec_helpers import DISCHARGE_COLUMNS, assert_clean_exit, csv_text, discharge, run_cli

from pipelines.definitions import expression as ex
from pipelines.errors import UserError

# ------------------------------------------------------------------------------------ expressions

HOSTILE_EXPRESSIONS = [
    "1; drop table x",
    "is_completed; drop table ingest_ledger",
    "x' or '1'='1",
    "is_completed = true or '1'='1' --",
    "is_completed -- comment",
    "is_completed /* comment */",
    "is_completed = 'a' || (select 1)",
    "(select count(*) from ingest_ledger) > 0",
    "level_of_care in (select level_of_care from raw_discharges)",
    "read_csv('/etc/passwd') is not null",
    "is_c\u043empleted",  # Cyrillic o
    "is_completed \uff1d true",  # fullwidth equals
    "\u0456s_completed",  # Cyrillic i
    '"is_completed"',
    "`is_completed`",
    "is_completed = $1",
    "is_completed = ?",
    "is_completed::int = 1",
    "ingest_ledger.status = 'loaded'",
    "level_of_care = 'iop'' or ''1''=''1'",  # a quote inside a string stays inside the string
    "is_completed union select 1",
    "is_completed\x00 or true",
    "pragma_database_list is not null",
]


@pytest.fixture(scope="module")
def schema():
    from pipelines.definitions.registry import mart_schema

    return mart_schema()


@pytest.mark.parametrize("text", HOSTILE_EXPRESSIONS)
def test_hostile_expression_is_refused_or_inert(text: str, schema) -> None:
    try:
        node = ex.parse(text)
        ex.check_condition(node, schema)
    except ex.ExpressionError as exc:
        assert isinstance(exc, UserError)
        assert "\n" not in str(exc)
        return
    # it parsed: then it is a condition over known columns, and every literal is a bound parameter
    params: list[object] = []
    sql = ex.compile_sql(node, params)
    assert ex.columns(node) <= set(schema)
    assert "'" not in sql and ";" not in sql and "--" not in sql, sql
    assert text == "level_of_care = 'iop'' or ''1''=''1'"
    assert params == ["iop' or '1'='1"]


def test_definition_file_with_sql_is_a_one_line_error(tmp_path: Path) -> None:
    f = tmp_path / "sneaky.yaml"
    f.write_text("id: sneaky\nversion: 1\nlabel: x\ndescription: x\nmissing: failure\nreferences: [x]\n"
                 "requires: []\nsuccess: \"is_completed; DROP TABLE ingest_ledger; --\"\n", encoding="utf-8")
    res = run_cli(["definitions", "check", f], timeout=300)
    assert_clean_exit(res, allowed=(2,))
    assert "success" in res.stderr and "sneaky.yaml" in res.stderr


# ------------------------------------------------------------------------------------ site ids and file names


def test_site_id_and_file_names_are_data(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    cols = [c for c in DISCHARGE_COLUMNS if c != "site_id"]
    quoted = folder / "it's; DROP TABLE ingest_ledger; --.csv"
    quoted.write_text(csv_text([discharge(1), discharge(2)], columns=cols), encoding="utf-8")
    newline = folder / "evil\nname'); --.csv"
    newline.write_text("a,b\n1,2\n", encoding="utf-8")  # unknown kind: refused, with its name in the error
    warehouse = tmp_path / "w.duckdb"
    site = "x'; drop table ingest_ledger; --"
    res = run_cli(["ingest", quoted, newline, "--site", site, "--warehouse", warehouse, "--json"], timeout=600)
    assert_clean_exit(res, allowed=(4,))
    status = {r["file"]: r["status"] for r in res.ledger}
    assert status == {quoted.name: "loaded", newline.name: "refused"}, res.describe()
    assert len([ln for ln in res.stderr.splitlines() if "error" in ln]) == 1
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM ingest_ledger").fetchone()[0] == 2
        assert con.execute("SELECT DISTINCT site_id FROM raw_discharges").fetchall() == [(site,)]
        assert con.execute("SELECT site_id FROM ingest_ledger WHERE status = 'loaded'").fetchall() == [(site,)]
        names = {r[0] for r in con.execute("SELECT file_name FROM ingest_ledger").fetchall()}
        assert names == {quoted.name, newline.name}
    finally:
        con.close()
    # the human-readable output stays one line per file
    res = run_cli(["quarantine", "--warehouse", warehouse], timeout=300)
    assert_clean_exit(res, allowed=(0,))


def test_site_ids_from_data_in_a_full_run(small_run) -> None:
    con = duckdb.connect(str(small_run.warehouse), read_only=True)
    try:
        sites = {r[0] for r in con.execute("SELECT DISTINCT site_id FROM raw_discharges").fetchall()}
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    finally:
        con.close()
    assert {FORMULA_SITE, SQL_SITE} <= sites
    assert {"ingest_ledger", "ingest_quarantine", "raw_discharges", "run_registry"} <= tables


# ------------------------------------------------------------------------------------ output paths

EXPECTED_OUT = {"results.json", "rates.csv", "comparisons.csv", "balance.csv", "dose.csv", "length_of_stay.csv",
                "costs.csv", "cost_effectiveness.csv", "report.html", "report.pdf", "brief.pdf", "success-sheet.pdf",
                "report.xlsx", "accreditation.xlsx", "manifest.json"}


def test_outputs_stay_inside_out_with_fixed_names(small_run) -> None:
    run = small_run
    allowed_roots = [run.input, run.out, run.warehouse.parent, run.prefect_home, run.definitions]
    for p in run.root.rglob("*"):
        assert any(p == r or r in p.parents for r in allowed_roots), f"written outside the known folders: {p}"
    names = {p.name for p in run.out.iterdir()}
    assert EXPECTED_OUT <= names, names
    for p in run.out.rglob("*"):
        assert p.parent == run.out, f"nested output {p}"
        assert p.suffix in (".json", ".csv", ".html", ".pdf", ".xlsx", ".svg", ".png"), p
        for bad in ("HYPERLINK", "DROP", "..", "'", "evil"):
            assert bad not in p.name, p
    wh = {p.name for p in run.warehouse.parent.iterdir()}
    assert wh <= {run.warehouse.name, f"{run.warehouse.name}.lock", f"{run.warehouse.name}.wal", "levelcare-docs"}


def test_report_out_cannot_be_a_file_path_trick(small_run, tmp_path: Path) -> None:
    """--out names a folder; the report writes only its fixed file names into it."""
    out = tmp_path / "r"
    res = run_cli(["report", "--out", out, "--results", small_run.out, "--format", "html",
                   "--warehouse", small_run.warehouse], timeout=600)
    assert_clean_exit(res, allowed=(0,))
    assert {p.name for p in tmp_path.rglob("*") if p.is_file()} == {"report.html"}


# ------------------------------------------------------------------------------------ formulas


def _xlsx_cells(path: Path):
    from openpyxl import load_workbook

    wb = load_workbook(path)  # not read-only: data_type 'f' is reported for formulas
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                yield ws.title, cell


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("name", ["report.xlsx", "accreditation.xlsx"])
def test_spreadsheets_hold_no_formulas(small_run, name: str) -> None:
    seen = {"site": False, "label": False}
    for sheet, cell in _xlsx_cells(small_run.out / name):
        assert cell.data_type != "f", f"{name}/{sheet}!{cell.coordinate} is a formula: {cell.value!r}"
        v = cell.value
        if isinstance(v, str):
            assert not v.startswith(FORMULA_START) or _numeric(v), f"{name}/{sheet}!{cell.coordinate}: {v!r}"
            seen["site"] |= "evil.example/x" in v
            seen["label"] |= "evil.example/y" in v
    # the hostile texts are there, as text (not a vacuous pass)
    assert seen["label"], f"the formula-like definition label is not in {name}"
    if name == "report.xlsx":
        assert seen["site"], "the formula-like site id is not in report.xlsx"


def test_csv_outputs_neutralize_formulas(small_run) -> None:
    bad = []
    for p in sorted(small_run.out.glob("*.csv")):
        with p.open(newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.reader(fh)):
                for v in row:
                    if v.startswith(FORMULA_START) and not _numeric(v):
                        bad.append(f"{p.name} line {i + 1}: {v[:40]!r}")
    assert bad == []


def test_html_report_escapes_hostile_text(small_run) -> None:
    html = (small_run.out / "report.html").read_text(encoding="utf-8")
    assert 'href="http://evil.example' not in html

    # Hostile text may appear as text (inert: inline SVG from the charts keeps quotes in
    # text nodes, which is valid and harmless), but never inside markup: no attribute value
    # and no tag is built from it.
    class Markup(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.attr_hits: list[str] = []
            self.text = []

        def handle_starttag(self, tag, attrs) -> None:
            for name, value in attrs:
                if value and "evil.example" in value:
                    self.attr_hits.append(f"<{tag} {name}=...>")

        def handle_data(self, data) -> None:
            self.text.append(data)

    parser = Markup()
    parser.feed(html)
    assert parser.attr_hits == []
    text = "".join(parser.text)
    assert FORMULA_LABEL in text  # the label reached the report, as text
