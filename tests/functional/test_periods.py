"""Periods: no number counts a discharge outside the period asked, and every title says which
period the numbers cover. Expectations are counted from the raw extracts."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest
from test_report import _discharges

from pipelines.cli import main
from pipelines.errors import UserError
from pipelines.results.periods import Period, last_quarters, parse_period, trend_window


def _quarter(day: str) -> str:
    d = dt.date.fromisoformat(day)
    return f"{d.year}Q{(d.month - 1) // 3 + 1}"


def test_parse_period():
    assert parse_period("2025Q3..2026Q2", None) == Period("2025Q3", "2026Q2")
    assert parse_period(None, "2026Q3") == Period("2026Q3", "2026Q3")
    assert parse_period(None, None) == Period()
    assert Period("2025Q3", "2026Q2").quarters() == ["2025Q3", "2025Q4", "2026Q1", "2026Q2"]
    for bad, message in (("2026Q2..2025Q3", "ends before it starts"), ("2026Q2", "not a range of quarters"),
                         ("2026Q5..2026Q6", "not a quarter like 2026Q3")):
        with pytest.raises(UserError, match=message):
            parse_period(bad, None)
    with pytest.raises(UserError, match="not both"):
        parse_period("2025Q1..2025Q2", "2025Q1")


def test_teds_years_count_only_when_the_period_holds_all_four_quarters():
    assert Period("2019Q1", "2019Q4").contains_year(2019)
    assert not Period("2019Q2", "2020Q4").contains_year(2019)
    assert Period("2019Q2", "2020Q4").contains_year(2020)
    assert not Period("2019Q1", "2019Q3").contains_year(2019)
    assert Period().contains_year(1999)


def test_trend_window_is_the_eight_quarters_ending_at_the_period():
    assert last_quarters("2026Q1") == ["2024Q2", "2024Q3", "2024Q4", "2025Q1", "2025Q2", "2025Q3", "2025Q4",
                                       "2026Q1"]
    assert trend_window(["2026Q1"], "2026Q3") == last_quarters("2026Q1")
    ten = [f"{y}Q{q}" for y in (2024, 2025) for q in (1, 2, 3, 4)] + ["2026Q1", "2026Q2"]
    assert trend_window(ten, "2026Q2") == ten  # a longer period: all of it


@pytest.fixture(scope="module")
def one_quarter(analysis, tmp_path_factory):
    """``analyze --quarter 2025Q3`` on the shared analysis's warehouse."""
    from pipelines.analysis.command import analyze
    from pipelines.settings import Settings

    out = tmp_path_factory.mktemp("q") / "res"
    settings = Settings(warehouse=analysis[0].parent / "levelcare.duckdb")
    analyze(settings, out, None, ["level_of_care", "level_group", "site", "quarter"],
            period=parse_period(None, "2025Q3"))
    return out


def test_one_quarter_counts_only_that_quarters_discharges(one_quarter, analysis):
    results = json.loads((one_quarter / "results.json").read_text())
    raw = [r for r in _discharges(analysis[1]) if _quarter(r["discharge_date"]) == "2025Q3"]
    period = results["period"]
    assert (period["asked"], period["label"], period["quarters"]) == ("2025Q3..2025Q3", "2025Q3", ["2025Q3"])
    assert period["trend_quarters"] == last_quarters("2025Q3")
    total = next(r for r in results["cohort"]["rows"] if r["level_group"] == "all levels")
    assert total["episodes"] == len(raw)
    completion = next(r for r in results["rates"] if r["definition_id"] == "completion" and r["group_by"] == "all")
    assert completion["denominator"] == len(raw)
    assert completion["numerator"] == sum(r["discharge_reason"] == "completed" for r in raw)
    assert {r["group"] for r in results["rates"] if r["group_by"] == "quarter"} == {"2025Q3"}
    # the trend reaches back 8 quarters, quarter by quarter, and its 2025Q3 row is the period's
    every = _discharges(analysis[1])
    for q in period["trend_quarters"]:
        row = next((r for r in results["trends"] if r["definition_id"] == "completion" and r["group"] == q), None)
        n = sum(_quarter(r["discharge_date"]) == q for r in every)
        assert (row["denominator"] if row else 0) in (n, None), q
    # comparisons are fitted on the period's discharges only
    crude = next(r for r in results["comparisons"] if r["definition_id"] == "completion" and r["method"] == "crude"
                 and r["estimand"] == "rd")
    iop = [r for r in raw if r["group"] == "iop"]
    res = [r for r in raw if r["group"] == "residential"]
    expected = (sum(r["discharge_reason"] == "completed" for r in iop) / len(iop)
                - sum(r["discharge_reason"] == "completed" for r in res) / len(res))
    assert crude["estimate"] == pytest.approx(expected)
    with open(one_quarter / "rates.csv", newline="", encoding="utf-8") as fh:
        assert {r["group"] for r in csv.DictReader(fh) if r["group_by"] == "quarter"} == {"2025Q3"}


def test_report_and_export_of_one_quarter_say_so(one_quarter, tmp_path):
    assert main(["report", "--out", str(tmp_path / "rep"), "--results", str(one_quarter), "--quarter", "2025Q3",
                 "--format", "html"]) == 0
    html = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert "— 2025Q3</title>" in html and "Period: 2025Q3 ·" in html
    assert main(["export", "accreditation", "--out", str(tmp_path / "x"), "--results", str(one_quarter),
                 "--period", "2025Q3..2025Q3"]) == 0
    with open(tmp_path / "x" / "carf-indicators.csv", newline="", encoding="utf-8") as fh:
        assert {r["period"] for r in csv.DictReader(fh)} == {"2025Q3"}


def test_a_period_longer_than_the_data_names_the_data_span(analysis, tmp_path):
    from pipelines.analysis.command import analyze
    from pipelines.settings import Settings

    settings = Settings(warehouse=analysis[0].parent / "levelcare.duckdb")
    quarters = sorted({_quarter(r["discharge_date"]) for r in _discharges(analysis[1])})
    results = analyze(settings, tmp_path / "res", ["completion"], ["level_group"], compare=False,
                      period=parse_period(f"2020Q1..{quarters[-1]}", None))
    assert results["period"]["label"] == (f"2020Q1 to {quarters[-1]} (discharges with dates: {quarters[0]} to "
                                          f"{quarters[-1]})")
    with pytest.raises(UserError, match="no discharge in the warehouse falls in it"):
        analyze(settings, tmp_path / "none", ["completion"], ["level_group"], compare=False,
                period=parse_period("2010Q1..2010Q4", None))
    assert not (tmp_path / "none").exists()


def test_teds_d_years_follow_the_period(tmp_path):
    """TEDS-D has discharge years, no dates: 2019 counts in 2019Q1..2019Q4, not in 2019Q2..2019Q4."""
    from report_fixtures import analyzed

    res = analyzed(tmp_path, records=400, fmt="teds-d", compare=False, docs=False, teds_year=2019)
    results = json.loads((Path(res) / "results.json").read_text())
    assert results["period"]["teds_years"] == [2019]
    assert results["period"]["label"] == "TEDS-D discharge years 2019"
    from pipelines.analysis.command import analyze
    from pipelines.settings import Settings

    settings = Settings(warehouse=tmp_path / "levelcare.duckdb")
    whole = analyze(settings, tmp_path / "y", ["completion"], ["level_group"], compare=False,
                    period=parse_period("2019Q1..2019Q4", None))
    assert next(r for r in whole["rates"] if r["group_by"] == "all")["denominator"] == 400
    with pytest.raises(UserError, match="no discharge in the warehouse falls in it"):
        analyze(settings, tmp_path / "n", ["completion"], ["level_group"], compare=False,
                period=parse_period("2019Q2..2019Q4", None))
