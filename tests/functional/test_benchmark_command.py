"""``levelcare benchmark`` as a user runs it: real synthetic extracts, real ingest, real warehouse.

Counts and national rates are recomputed here from the extracts themselves (the TEDS-D codes
by hand from the codebook: SERVICES_D 1, 2, 8 detox, 3 residential hospital, 4 short, 5 long,
6 IOP, 7 outpatient; REASON 1 completed), not through the code under test. The statistics
are checked against independent implementations in tests/stats/test_benchmark.py, and against
a known truth in tests/stats/test_benchmark_truth.py.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from extract_files import ingest, read_rows
from teds_fixtures import VARS_2017, teds_csv

from pipelines.cli import main

SETTING_OF_SERVICES = {"1": "detox", "2": "detox", "8": "detox", "3": "residential_hospital",
                       "4": "residential_short", "5": "residential_long", "6": "iop", "7": "outpatient"}
ISSUE_COLUMNS = ["definition_id", "group_by", "group", "n", "observed", "expected", "oe_ratio", "oe_ci_low",
                 "oe_ci_high", "risk_standardized_rate", "rsr_ci_low", "rsr_ci_high", "national_rate", "verdict"]




@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A warehouse with 12,000 TEDS-D rows and 3,000 of a program's own episodes."""
    from pipelines.synth import write_synthetic

    root = tmp_path_factory.mktemp("bench")
    nat, prog = root / "nat", root / "prog"
    write_synthetic(nat, records=12_000, seed=5, fmt="teds-d")
    write_synthetic(prog, records=3_000, seed=6, sites=5)
    for d in (nat, prog):
        (d / "truth.json").unlink()
    (prog / "followups.csv").unlink()
    # a blank level of care is read from the ASAM level by ingest: keep the rows that name theirs,
    # so this test can count by level from the file alone
    rows = read_rows(prog / "discharges.csv")
    with (prog / "discharges.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if r["level_of_care"])
    ingest(root / "w.duckdb", nat, prog)
    return root


def _run(capsys, warehouse: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--warehouse", str(warehouse), "benchmark", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_benchmark_counts_and_national_rates_agree_with_the_extracts(loaded, capsys, tmp_path):
    code, out, err = _run(capsys, loaded / "w.duckdb", "--out", str(tmp_path), "--by", "site,quarter")
    assert code == 0, err
    rows = read_rows(tmp_path / "benchmark.csv")
    assert list(rows[0])[:len(ISSUE_COLUMNS)] == ISSUE_COLUMNS
    discharges = [r for r in read_rows(loaded / "prog" / "discharges.csv")
                  if r["level_of_care"] in set(SETTING_OF_SERVICES.values())]
    teds = read_rows(loaded / "nat" / "tedsd_puf.csv")
    n_by = Counter(SETTING_OF_SERVICES[r["SERVICES_D"]] for r in teds)
    done_by = Counter(SETTING_OF_SERVICES[r["SERVICES_D"]] for r in teds if r["REASON"] == "1")
    rate = {k: done_by[k] / n_by[k] for k in n_by}
    total = next(r for r in rows if r["definition_id"] == "completion" and r["group_by"] == "all")
    assert int(total["n"]) == len(discharges)
    assert int(total["observed"]) == sum(r["discharge_reason"] == "completed" for r in discharges)
    mix = Counter(r["level_of_care"] for r in discharges)
    assert float(total["national_rate"]) == pytest.approx(sum(mix[k] * rate[k] for k in mix) / len(discharges))
    for r in rows:
        if r["suppression"]:
            assert r["observed"] == r["oe_ratio"] == r["expected"] == r["verdict"] == ""
            continue
        o, e, n = int(r["observed"]), float(r["expected"]), int(r["n"])
        assert 11 <= o and 11 <= n - o  # CMS: no count of 1-10, nor one derivable from n
        assert float(r["oe_ratio"]) == pytest.approx(o / e)
        assert float(r["oe_ci_low"]) < float(r["oe_ratio"]) < float(r["oe_ci_high"])
        assert float(r["risk_standardized_rate"]) == pytest.approx(o / e * float(r["national_rate"]))
        low, high = float(r["oe_ci_low"]), float(r["oe_ci_high"])
        assert r["verdict"] == ("better than expected" if low > 1 else "worse than expected" if high < 1
                                else "as expected")
        if r["group_by"] == "level_of_care" and r["definition_id"] == "completion":
            assert n == mix[r["group"]]
            assert float(r["national_rate"]) == pytest.approx(rate[r["group"]])
    # a hidden site cannot be worked out from the total and the other sites
    for def_id in {r["definition_id"] for r in rows}:
        for g in ("site", "quarter", "level_of_care"):
            hidden = [r for r in rows if r["definition_id"] == def_id and r["group_by"] == g and r["suppression"]]
            assert len(hidden) != 1, (def_id, g)
    models = read_rows(tmp_path / "benchmark_models.csv")
    assert {m["level_of_care"] for m in models} == set(n_by)
    for m in models:
        if m["definition_id"] == "completion" and m["n_holdout"]:  # (a small count is hidden)
            assert int(m["n_fit"]) + int(m["n_holdout"]) == n_by[m["level_of_care"]]
        if m["c_statistic"]:
            assert 0.4 <= float(m["c_statistic"]) <= 1
    data = json.loads((tmp_path / "benchmark.json").read_text(encoding="utf-8"))
    assert data["n_reference"] == len(teds)
    # a setting where no national stay reaches 91 days has nothing to expect: not scored, said so
    for m in data["models"]:
        if m["note"] and m["note"].startswith("every national row of this setting fails"):
            assert m["national_rate"] == 0 and not m["converged"]
            assert any(x.startswith(f"{m['definition_id']}: {m['level_of_care']}: every national row") for x in data["notes"])
            assert not [r for r in data["rows"] if r["definition_id"] == m["definition_id"]
                        and r["group"] == m["level_of_care"]]
    assert any(m["note"] and m["note"].startswith("every national row") for m in data["models"])
    assert data["unmatched_levels"] == dict(sorted(Counter(
        r["level_of_care"] for r in read_rows(loaded / "prog" / "discharges.csv")
        if r["level_of_care"] not in set(SETTING_OF_SERVICES.values())).items()))
    assert "O/E" in out and "php" in out


def test_definitions_teds_cannot_support_are_listed_or_refused(loaded, capsys, tmp_path):
    code, _, _ = _run(capsys, loaded / "w.duckdb", "--out", str(tmp_path),
                        "--definitions", "completion,abstinent_90d_itt")
    assert code == 0
    data = json.loads((tmp_path / "benchmark.json").read_text(encoding="utf-8"))
    assert [x["id"] for x in data["not_applicable"]] == ["abstinent_90d_itt"]
    assert "follow-up" in data["not_applicable"][0]["note"]
    assert {r["definition_id"] for r in data["rows"]} == {"completion"}
    code, _, err = _run(capsys, loaded / "w.duckdb", "--out", str(tmp_path / "b"), "--definitions", "abstinent_90d_itt")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "TEDS-D" in err


@pytest.mark.parametrize(("years", "words"), [("2030..2031", "no TEDS-D rows of 2030-2031"),
                                              ("2022..2017", "FROM <= TO"), ("soon", "four-digit years")])
def test_bad_years_are_one_line_errors(loaded, capsys, tmp_path, years, words):
    code, _, err = _run(capsys, loaded / "w.duckdb", "--out", str(tmp_path), "--years", years)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1


def test_no_teds_rows_says_what_to_load(tmp_path, capsys):
    from pipelines.synth import write_synthetic

    write_synthetic(tmp_path / "prog", records=300, seed=7)
    ingest(tmp_path / "w.duckdb", tmp_path / "prog" / "discharges.csv")
    code, _, err = _run(capsys, tmp_path / "w.duckdb", "--out", str(tmp_path / "o"))
    assert code == 2 and "no TEDS-D rows" in err and "levelcare ingest" in err
    assert len(err.strip().splitlines()) == 1


def test_a_covariate_the_program_lacks_is_reported_not_dropped_silently(loaded, tmp_path, capsys):
    """The program's export has no payer: the model leaves payer out and says so."""
    import shutil

    shutil.copy(loaded / "w.duckdb", tmp_path / "w.duckdb")
    from pipelines import marts
    from pipelines.warehouse import connect

    with connect(tmp_path / "w.duckdb") as con:
        con.execute("update raw_discharges set payer = null")
        marts.build(con)
    code, out, err = _run(capsys, tmp_path / "w.duckdb", "--out", str(tmp_path / "o"))
    assert code == 0, err
    data = json.loads((tmp_path / "o" / "benchmark.json").read_text(encoding="utf-8"))
    uses = {c["covariate"]: c for c in data["covariates"]}
    assert not uses["payer"]["used"] and "your records carry no value" in uses["payer"]["reason"]
    assert uses["payer"]["missing_share_program"] == 1.0
    assert all(c["used"] for k, c in uses.items() if k != "payer")
    assert "covariate payer not used" in out


def test_older_era_and_several_years(loaded, tmp_path, capsys):
    """The same national rows written in the 2006-2014 layout (SERVSETD, the old AGE, NOPRIOR
    and ETHNIC codes) as discharge year 2012 load beside the 2019 file; --years picks either or
    both, and the older era's model (coarser codes) gives nearly the same O/E."""
    import shutil

    shutil.copy(loaded / "w.duckdb", tmp_path / "w.duckdb")
    rows = [{**r, "DISYR": "2012", "CASEID": "2012" + r["CASEID"][4:]} for r in read_rows(loaded / "nat" / "tedsd_puf.csv")]
    rows = [{k: v for k, v in r.items() if k in VARS_2017} for r in rows]
    (tmp_path / "tedsd_puf_2012.csv").write_text(teds_csv(rows, "2006-2014"), encoding="utf-8")
    ingest(tmp_path / "w.duckdb", tmp_path / "tedsd_puf_2012.csv")
    results = {}
    for years in ("2012..2012", "2019..2019", "2012..2019"):
        code, _, err = _run(capsys, tmp_path / "w.duckdb", "--out", str(tmp_path / years), "--years", years,
                              "--definitions", "completion")
        assert code == 0, err
        results[years] = json.loads((tmp_path / years / "benchmark.json").read_text(encoding="utf-8"))
    n = len(rows)
    assert [results[y]["n_reference"] for y in results] == [n, n, 2 * n]
    assert results["2012..2019"]["years"] == [2012, 2019]
    assert results["2012..2019"]["reference"].startswith("TEDS-D 2012-2019 (")
    assert results["2012..2012"]["reference"].startswith("TEDS-D 2012 (")
    total = {y: next(r for r in results[y]["rows"] if r["group_by"] == "all") for y in results}
    assert total["2012..2012"]["observed"] == total["2019..2019"]["observed"]
    assert total["2012..2012"]["oe_ratio"] == pytest.approx(total["2019..2019"]["oe_ratio"], abs=0.02)


def test_a_reference_warehouse_of_its_own_gives_the_same_benchmark(loaded, tmp_path, capsys):
    """TEDS-D kept in a warehouse of its own: the benchmark equals the one from a warehouse
    holding both, and analyze's own rates count only the program's episodes."""
    from pipelines.analysis.command import analyze
    from pipelines.settings import Settings

    ingest(tmp_path / "national.duckdb", loaded / "nat")
    ingest(tmp_path / "program.duckdb", loaded / "prog")
    code, _, err = _run(capsys, tmp_path / "program.duckdb", "--out", str(tmp_path / "apart"),
                        "--reference-warehouse", str(tmp_path / "national.duckdb"))
    assert code == 0, err
    code, _, err = _run(capsys, loaded / "w.duckdb", "--out", str(tmp_path / "together"))
    assert code == 0, err
    apart, together = (json.loads((tmp_path / d / "benchmark.json").read_text(encoding="utf-8"))
                       for d in ("apart", "together"))
    # the same rows in other warehouses, loaded in another order: the same numbers to the last digit
    assert apart["rows"] == together["rows"] and apart["models"] == together["models"]
    results = analyze(Settings(warehouse=tmp_path / "program.duckdb"), tmp_path / "analysis", ["completion"],
                      compare=False, reference_warehouse=tmp_path / "national.duckdb")
    n_program = len(read_rows(loaded / "prog" / "discharges.csv"))
    assert next(r for r in results["rates"] if r["group_by"] == "all")["denominator"] == n_program
    assert results["benchmark"]["rows"] == [r for r in together["rows"] if r["definition_id"] == "completion"]
    assert (tmp_path / "analysis" / "benchmark.csv").is_file()
    code, _, err = _run(capsys, tmp_path / "program.duckdb", "--out", str(tmp_path / "x"),
                        "--reference-warehouse", str(tmp_path / "nowhere.duckdb"))
    assert code == 2 and "no such warehouse" in err and len(err.strip().splitlines()) == 1


def test_no_covariate_in_common_is_a_one_line_error(loaded, tmp_path, capsys):
    import shutil

    from pipelines import marts
    from pipelines.analysis.benchmark import COVARIATES
    from pipelines.warehouse import connect

    shutil.copy(loaded / "w.duckdb", tmp_path / "w.duckdb")
    with connect(tmp_path / "w.duckdb") as con:
        raw = {c for (c,) in con.execute("select column_name from information_schema.columns "
                                         "where table_name = 'raw_discharges'").fetchall()}
        # the raw columns behind the mart's covariates (has_prior_episodes comes from prior_episodes)
        blank = [c for c in (*COVARIATES, "prior_episodes") if c in raw]
        con.execute("update raw_discharges set " + ", ".join(f'"{c}" = null' for c in blank))
        marts.build(con)
    code, _, err = _run(capsys, tmp_path / "w.duckdb", "--out", str(tmp_path / "o"))
    assert code == 2 and "no covariate has values in both" in err and len(err.strip().splitlines()) == 1


def test_a_rule_that_rounds_counts_refuses_the_benchmark_and_analyze_goes_on_without_it(loaded, capsys, tmp_path):
    # an O/E ratio times its expected count gives the observed count back, unrounded
    code, _, err = _run(capsys, loaded / "w.duckdb", "--out", str(tmp_path / "b"), "--disclosure", "opensafely")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "opensafely" in err and "rounds counts" in err and not (tmp_path / "b" / "benchmark.csv").exists()
    from pipelines.analysis.command import analyze
    from pipelines.settings import Settings

    results = analyze(Settings(warehouse=loaded / "w.duckdb"), tmp_path / "a", ["completion"], ["level_group"],
                      rule="opensafely", compare=False)
    assert results["benchmark"] is None and not (tmp_path / "a" / "benchmark.csv").exists()
    code, _, _ = _run(capsys, loaded / "w.duckdb", "--out", str(tmp_path / "c"), "--definitions", "completion")
    assert code == 0 and (tmp_path / "c" / "benchmark.csv").exists()  # under the default rule it runs
