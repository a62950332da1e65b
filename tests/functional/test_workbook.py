"""The report's workbook (report.xlsx) read back with openpyxl: a contents sheet linking every
sheet, one filtered table with a frozen header per sheet, whole-word sheet names, number formats
that show percentages, signed differences and p-values (never an exponent), and the definitions
on their own sheet. The workbook is the one the session's real analysis wrote
(tests/support/plugin_analysis.py); its numbers are compared with results.json itself."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from openpyxl.utils import get_column_letter
from report_fixtures import shown_group

BAD_SHEET_CHARS = r"[\[\]*?/\\:]"
RATE_HEADERS = {"rate", "95% CI low", "95% CI high", "ci low", "ci high", "lcl", "ucl"}
DIFFERENCE = "+0.0%;-0.0%;0.0%"


@pytest.fixture(scope="module")
def wb(written):
    import openpyxl

    return openpyxl.load_workbook(written[".xlsx"])


@pytest.fixture(scope="module")
def results(analysis) -> dict:
    return json.loads((analysis[0] / "results.json").read_text(encoding="utf-8"))


def _table(ws) -> tuple[list, list[tuple]]:
    """Header (row 2) and rows of a sheet's table: up to its first empty row."""
    rows = ws.iter_rows(min_row=2, values_only=True)
    header = list(next(rows))
    while header and header[-1] is None:
        header.pop()
    return header, [r[:len(header)] for r in itertools.takewhile(any, rows)]


def _contents(wb) -> list[tuple]:
    return _table(wb["Contents"])[1]


def _sheet_with(wb, *headers: str):
    """The sheets whose table's header holds every one of ``headers``."""
    return [ws for ws in wb.worksheets if set(headers) <= set(_table(ws)[0])]


def test_every_sheet_is_one_table_with_a_frozen_header_and_a_filter(wb):
    for ws in wb.worksheets:
        header, rows = _table(ws)
        assert ws["A1"].value and header, ws.title  # the full title above the header
        assert ws.freeze_panes == "A3", ws.title  # frozen below the header row
        assert ws.auto_filter.ref == f"A2:{get_column_letter(len(header))}{2 + len(rows)}", ws.title
        for j in range(1, len(header) + 1):
            assert 8 <= ws.column_dimensions[get_column_letter(j)].width <= 60, (ws.title, j)


def test_sheet_names_are_whole_words_of_their_titles(wb):
    listed = {r[0]: r[2] for r in _contents(wb)}
    assert wb.sheetnames[0] == "Contents" and len(wb.sheetnames) == 1 + len(listed)
    assert len({n.lower() for n in wb.sheetnames}) == len(wb.sheetnames)  # unique, as Excel compares them
    for ws in wb.worksheets:
        name, title = ws.title, ws["A1"].value
        assert len(name) <= 31
        assert listed.get(name, title) == title  # the contents give the same full title
        words = name.split()
        base = re.fullmatch(r"(.*) (\d+)", name)
        if base and base.group(1) in wb.sheetnames:  # a second sheet of the same first words
            words = base.group(1).split()
        title_words = re.sub(BAD_SHEET_CHARS, " ", title).split()
        assert words[:-1] == title_words[:len(words) - 1], (name, title)
        last = title_words[len(words) - 1]
        assert words[-1] in (last, last.rstrip(",;")), (name, title)  # never a word cut short
    assert "Step-down by quarter" in wb.sheetnames and not any(n.endswith(" to I") for n in wb.sheetnames)


def test_contents_links_to_every_sheet(wb):
    contents = wb["Contents"]
    targets = []
    for i, row in enumerate(_contents(wb)):
        cell = contents.cell(row=3 + i, column=1)
        assert cell.hyperlink is not None and cell.value == row[0]
        m = re.fullmatch(r"'(.+)'!A1", cell.hyperlink.location or "")
        assert m, cell.hyperlink.location
        targets.append(m.group(1).replace("''", "'"))
        assert row[3], f"no description for {row[0]}"
    assert targets == wb.sheetnames[1:]  # every other sheet, in order, and each exists


def test_rates_are_percentages_equal_to_results_json(wb, results):
    d = results["disclosure"]
    markers = {d["marker"], d["complementary_marker"]}
    key = next(k for k in ("level_group", "level_of_care") if any(x["group_by"] == k for x in results["rates"]))
    expected = {(x["definition_id"], x["group"]): x for x in results["rates"] if x["group_by"] == key}
    [ws] = [ws for ws in _sheet_with(wb, "id", "level of care", "rate") if ws["A1"].value.startswith("Success rates")]
    header, rows = _table(ws)
    assert len(rows) == len(expected)
    col = {h: header.index(h) for h in header}
    checked = suppressed = 0
    labels = {shown_group(g): g for _, g in expected}  # the sheet names each level by its contract label
    for i, row in enumerate(rows):
        x = expected[(row[col["id"]], labels[row[col["level of care"]]])]
        for h, k in (("rate", "rate"), ("95% CI low", "ci_low"), ("95% CI high", "ci_high"),
                     ("numerator", "numerator"), ("denominator", "denominator")):
            v, cell = row[col[h]], ws.cell(row=3 + i, column=col[h] + 1)
            if x[k] is None:
                assert v in markers | {None}, (h, x)  # a hidden cell keeps its marker
                suppressed += v is not None
                continue
            # the number of results.json (openpyxl writes 16 significant digits, Excel shows 15)
            assert v == pytest.approx(x[k], rel=1e-15, abs=0), (h, x)
            assert cell.number_format == ("#,##0" if k in ("numerator", "denominator") else "0.0%")
            checked += 1
    assert checked > 100 and suppressed > 0


def test_numbers_show_percentages_p_values_and_no_exponent(wb):
    seen = {"rate": 0, "difference": 0, "p": 0}
    for ws in wb.worksheets:
        header, rows = _table(ws)
        in_points = "margin basis" in header  # non-inferiority: percentage points or a risk ratio by row
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    continue
                fmt = ws.cell(row=3 + i, column=j + 1).number_format
                assert not re.search(r"E[+-]", fmt, re.IGNORECASE), (ws.title, header[j], fmt)
                assert isinstance(v, int) or fmt != "General", (ws.title, header[j], v)
                if header[j] in RATE_HEADERS and not in_points:
                    assert "%" in fmt, (ws.title, header[j], fmt)
                    seen["rate"] += 1
                if fmt == DIFFERENCE:
                    seen["difference"] += 1
                if "p value" in str(header[j]):
                    assert fmt == '[<0.001]"< 0.001";0.000', (ws.title, header[j], fmt)
                    seen["p"] += 1
    assert all(seen.values()), seen
    [comparisons] = _sheet_with(wb, "estimand", "method", "estimate")
    header, rows = _table(comparisons)
    k = header.index("estimate")
    formats = {comparisons.cell(row=3 + i, column=k + 1).number_format for i, r in enumerate(rows)
               if isinstance(r[k], float)}
    assert formats == {DIFFERENCE}  # risk differences on the 0-1 scale, shown signed (+5.0% = 5 points)


def test_definitions_sheet_has_one_row_per_definition(wb, results):
    [ws] = _sheet_with(wb, "id", "version", "label", "description", "population", "success",
                       "missing-data policy", "window (days)")
    assert ws.title == "Definitions"
    header, rows = _table(ws)
    defs = results["definitions"]
    assert [r[header.index("id")] for r in rows] == [x["id"] for x in defs]
    for r, x in zip(rows, defs, strict=True):
        assert r[header.index("window (days)")] == x.get("window_days")
        assert r[header.index("missing-data policy")] == x["missing"]
        assert r[header.index("label")] == x["label"]


@pytest.mark.parametrize(("title", "used", "name"), [
    ("Step-down from residential to IOP", set(), "Step-down from residential"),
    ("Success rates by level group (95% intervals)", set(), "Success rates by level group"),
    ("IOP vs residential: crude and adjusted", set(), "IOP vs residential"),
    ("Trends: 2024Q2 to 2026Q3", set(), "Trends 2024Q2 to 2026Q3"),
    ("Covariate balance after IPTW weighting (ATT)", {"covariate balance after iptw"},
     "Covariate balance after IPTW 2"),
    ("History", set(), "History 2"),
    ("Antidisestablishmentarianismusesmorethan31", set(), "Antidisestablishmentarianismuse"),
])
def test_sheet_name(title, used, name):
    from pipelines.report.xlsx import sheet_name

    taken = set(used)
    assert sheet_name(title, taken) == name
    assert name.lower() in taken and len(name) <= 31
