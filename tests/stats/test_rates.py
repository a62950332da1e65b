"""Rates by group: counts, intervals (checked against published and scipy values), the
interval rule, not-applicable definitions, and `levelcare analyze`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mart_rows import day, discharge, insert, new_warehouse
from scipy.stats import binomtest

from pipelines import marts
from pipelines.analysis import rates as rates_mod
from pipelines.analysis.command import analyze
from pipelines.cli import main
from pipelines.definitions import registry
from pipelines.definitions.evaluate import evaluate
from pipelines.settings import Settings
from pipelines.stats.proportions import clopper_pearson_interval, wilson_interval


def test_wilson_matches_newcombe_1998_and_scipy():
    # Newcombe (1998) Stat Med 17:857, example 81/263: Wilson score interval 0.2553 to 0.3662
    low, high = wilson_interval(np.array([81]), np.array([263]))
    assert (round(low[0], 4), round(high[0], 4)) == (0.2553, 0.3662)
    for x, n in [(81, 263), (15, 148), (0, 20), (20, 20), (1, 29), (50, 100)]:
        ref = binomtest(x, n).proportion_ci(confidence_level=0.95, method="wilson")
        lo, hi = wilson_interval(np.array([x]), np.array([n]))
        assert lo[0] == pytest.approx(ref.low, abs=1e-12) and hi[0] == pytest.approx(ref.high, abs=1e-12)


def test_clopper_pearson_matches_newcombe_1998_closed_forms_and_scipy():
    low, high = clopper_pearson_interval(np.array([81]), np.array([263]))
    assert (round(low[0], 4), round(high[0], 4)) == (0.2527, 0.3676)  # Newcombe 1998, method 5
    # 0 of 10: upper bound 1 - 0.025^(1/10); 10 of 10: lower bound 0.025^(1/10)
    low, high = clopper_pearson_interval(np.array([0, 10]), np.array([10, 10]))
    assert (low[0], high[0]) == (0.0, pytest.approx(1 - 0.025 ** (1 / 10)))
    assert (low[1], high[1]) == (pytest.approx(0.025 ** (1 / 10)), 1.0)
    for x, n in [(3, 7), (1, 29), (28, 29), (5, 40)]:
        ref = binomtest(x, n).proportion_ci(confidence_level=0.95, method="exact")
        lo, hi = clopper_pearson_interval(np.array([x]), np.array([n]))
        assert lo[0] == pytest.approx(ref.low, abs=1e-10) and hi[0] == pytest.approx(ref.high, abs=1e-10)


@pytest.mark.parametrize(
    ("x", "n", "method"),
    [(10, 29, "clopper-pearson"), (10, 30, "wilson"), (4, 100, "clopper-pearson"), (5, 100, "wilson"),
     (96, 100, "clopper-pearson"), (95, 100, "wilson"), (0, 1000, "clopper-pearson")],
)
def test_exact_interval_when_n_below_30_or_a_cell_below_5(x, n, method):
    rate, low, high, used = rates_mod.intervals([x], [n])
    assert used == [method]
    assert rate == [x / n]
    assert low[0] <= x / n <= high[0]


def test_zero_denominator_gives_no_rate_rather_than_zero():
    assert rates_mod.intervals([0], [0]) == ([None], [None], [None], [None])


@pytest.fixture()
def small_mart():
    con = new_warehouse()
    insert(con, "raw_discharges", [
        discharge("a", "p1", "iop", 0, 10),
        discharge("b", "p2", "iop", 0, 10, discharge_reason="dropped_out"),
        discharge("c", "p3", "iop", 0, 10, discharge_reason="dropped_out", site_id="s2"),
        discharge("d", "p4", "residential_short", 0, 100),
        discharge("e", "p5", "residential_long", 0, 100, discharge_reason="transferred"),
    ])
    marts.build(con, data_end_date=day(500))
    return con


def test_rates_overall_and_by_group(small_mart):
    defs = registry.select(registry.load_registry(None), ["completion", "phq9_response"])
    table = rates_mod.rates(small_mart, defs, ["level_group", "site"])
    got = {(r["definition_id"], r["group_by"], r["group"]): r for r in table.to_dicts()}
    assert (got[("completion", "all", None)]["numerator"], got[("completion", "all", None)]["denominator"]) == (2, 5)
    assert got[("completion", "all", None)]["rate"] == 2 / 5
    assert (got[("completion", "level_group", "iop")]["numerator"],
            got[("completion", "level_group", "iop")]["denominator"]) == (1, 3)
    assert got[("completion", "level_group", "residential")]["rate"] == 1 / 2
    assert (got[("completion", "site", "s1")]["rate"], got[("completion", "site", "s2")]["rate"]) == (2 / 4, 0 / 1)
    assert all(r["ci_method"] == "clopper-pearson" and r["suppressed"] is False
               for r in table.to_dicts() if r["denominator"])
    # no PHQ-9 anywhere: one "not applicable" row, never a rate of 0
    phq = [r for r in table.to_dicts() if r["definition_id"] == "phq9_response"]
    assert len(phq) == 1
    assert (phq[0]["group_by"], phq[0]["denominator"], phq[0]["rate"]) == ("all", 0, None)
    assert phq[0]["note"] == "not applicable: no data for phq9_admit, phq9_discharge"
    assert table.columns == list(rates_mod.RATE_COLUMNS)


def test_rates_from_a_frame_equal_rates_in_sql(small_mart):
    defs = list(registry.load_registry(None).values())
    in_sql = rates_mod.rates(small_mart, defs, ["level_of_care", "quarter"])
    from_frame = rates_mod.rates(small_mart, defs, ["level_of_care", "quarter"], frame=evaluate(small_mart, defs))
    assert in_sql.equals(from_frame)


def test_an_empty_group_has_no_rate(small_mart):
    defs = registry.select(registry.load_registry(None), ["stepdown_iop_14d"])
    got = {r["group"]: r for r in rates_mod.rates(small_mart, defs, ["level_group"]).to_dicts()
           if r["group_by"] == "level_group"}
    assert (got["iop"]["denominator"], got["iop"]["rate"]) == (0, None)
    assert got["iop"]["note"].startswith("denominator 0")


def test_unknown_grouping_is_a_user_error(small_mart):
    from pipelines.errors import UserError

    with pytest.raises(UserError, match="--by: unknown grouping 'county'"):
        rates_mod.rates(small_mart, [], ["county"])


def _warehouse_file(tmp_path):
    path = tmp_path / "w.duckdb"
    import duckdb

    con = duckdb.connect(str(path))
    marts.ensure_raw_tables(con)
    insert(con, "raw_discharges", [
        discharge("a", "p1", "iop", 0, 10),
        discharge("b", "p2", "residential_short", 0, 20, discharge_reason="dropped_out"),
    ])
    con.close()
    return path


def test_analyze_writes_rates_csv_and_results_json(tmp_path):
    settings = Settings.from_options(warehouse=_warehouse_file(tmp_path), environ={})
    out = tmp_path / "out"
    seen = []

    def disclose(rows):  # the disclosure hook receives every row before anything is written
        seen.extend(rows)
        return rows

    results = analyze(settings, out, ["completion", "phq9_response"], ["level_group"], disclose=disclose,
                      run_id="run-1")
    assert len(seen) == len(results["rates"])
    assert results["run_id"] == "run-1"
    written = json.loads((out / "results.json").read_text())
    assert [d["id"] for d in written["definitions"]] == ["completion", "phq9_response"]
    assert written["not_applicable"] == [
        {"id": "phq9_response", "note": "not applicable: no data for phq9_admit, phq9_discharge"}]
    assert written["diagnostics"]["data_end_quarter"] == "2026Q1"
    csv_lines = (out / "rates.csv").read_text().splitlines()
    # the rates' columns, with the reason a hidden row is hidden (small or complementary)
    assert csv_lines[0] == ",".join(rates_mod.RATE_COLUMNS).replace(",suppressed,", ",suppressed,suppression,")
    # completion: all, iop, residential; phq9_response: one not-applicable row
    assert len(csv_lines) == 1 + 3 + 1
    # the hook saw the computed counts (1 of 2 completed) ...
    assert [(r["numerator"], r["denominator"]) for r in seen if r["definition_id"] == "completion"][0] == (1, 2)
    # ... but counts of 1-10 never reach a file: the CMS rule suppresses the row
    header = csv_lines[0].split(",")
    first = dict(zip(header, csv_lines[1].split(",")))
    assert first["definition_id"] == "completion" and first["group_by"] == "all"
    assert first["numerator"] == first["denominator"] == first["rate"] == ""
    assert first["suppressed"] == "true" and first["suppression"] == "small"


def test_analyze_command_line(tmp_path, capsys):
    wh = _warehouse_file(tmp_path)
    code = main(["--warehouse", str(wh), "analyze", "--out", str(tmp_path / "o"),
                 "--definitions", "completion,retention_90d", "--by", "level_of_care,site,quarter"], environ={})
    assert code == 0
    assert "2 definitions (0 not applicable)" in capsys.readouterr().out
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert {r["group_by"] for r in results["rates"]} == {"all", "level_of_care", "site", "quarter"}
    assert main(["--warehouse", str(tmp_path / "none.duckdb"), "analyze", "--out", str(tmp_path / "o2")],
                environ={}) == 2
    assert "no warehouse here yet" in capsys.readouterr().err
