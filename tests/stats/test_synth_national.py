"""``synth --format benchmark``: the national TEDS-D file and the program's discharges follow the
documented completion model, and truth.json's expected counts are what the files (and the
warehouse after a real ingest) give.

The recomputations here map the written codes and words to mart values by hand (the TEDS-D
codebook tables, not the module's lookups) and take the coefficients from truth.json.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from pipelines.synth.national import write_benchmark_files

REPO = Path(__file__).resolve().parents[2]
NATIONAL, PROGRAM, SEED = 3000, 1500, 17
LEVELS = ["outpatient", "iop", "residential_short", "residential_long", "residential_hospital", "detox"]

# TEDS-D 2017-2020 codes -> mart values, written out by hand (teds-d.md); None = null
SERVICES = {1: "detox", 2: "detox", 3: "residential_hospital", 4: "residential_short", 5: "residential_long",
            6: "iop", 7: "outpatient", 8: "detox"}
AGE = dict(enumerate(["12-14", "15-17", "18-20", "21-24", "25-29", "30-34", "35-39", "40-44", "45-49",
                      "50-54", "55-64", "65+"], start=1))
GENDER = {1: "male", 2: "female", -9: "unknown"}
RACE = {1: "alaska_native", 2: "american_indian", 3: "other", 4: "black", 5: "white", 6: "asian", 7: "other",
        8: "multiple", 9: "pacific_islander", -9: "unknown"}
ETHNIC = {1: "hispanic", 2: "hispanic", 3: "hispanic", 4: "not_hispanic", 5: "hispanic", -9: "unknown"}
SUB = {1: "none", 2: "alcohol", 3: "stimulants", 4: "cannabis", 5: "opioids", 6: "opioids", 7: "opioids",
       8: "other", 9: "other", 10: "stimulants", 11: "stimulants", 12: "stimulants", 13: "sedatives",
       14: "sedatives", 15: "sedatives", 16: "sedatives", 17: "other", 18: "other", 19: "other"}
YES_NO = {1: True, 2: False, -9: None}
EMPLOY = {1: True, 2: True, 3: False, 4: False, -9: None}
LIVARAG = {1: True, 2: False, 3: False, -9: None}
NOPRIOR = {0: False, 1: True, -9: None}
PSOURCE = {1: "self", 2: "provider", 3: "provider", 4: "school", 5: "employer", 6: "community", 7: "court",
           -9: None}
PRIMPAY = {1: "self", 2: "private", 3: "medicare", 4: "medicaid", 5: "other", 6: "none", 7: "other",
           -9: "unknown"}
ASAM = {"1": "outpatient", "2.1": "iop", "3.1": "residential_short", "3.3": "residential_short",
        "3.5": "residential_short", "3.7": "residential_hospital"}
MART_COLUMNS = ["level_of_care", "age_band", "sex", "race", "ethnicity", "primary_substance", "co_occurring_mh",
                "homeless_admit", "employed_admit", "has_prior_episodes", "referral_source", "payer"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark")
    truth = write_benchmark_files(out, NATIONAL, PROGRAM, SEED)
    return out, truth


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _national_mart(r: dict[str, str]) -> dict:
    c = {k: int(v) for k, v in r.items()}
    return {"level_of_care": SERVICES[c["SERVICES_D"]], "age_band": AGE[c["AGE"]], "sex": GENDER[c["GENDER"]],
            "race": RACE[c["RACE"]], "ethnicity": ETHNIC[c["ETHNIC"]], "primary_substance": SUB[c["SUB1"]],
            "co_occurring_mh": YES_NO[c["PSYPROB"]], "homeless_admit": LIVARAG[c["LIVARAG"]],
            "employed_admit": EMPLOY[c["EMPLOY"]], "has_prior_episodes": NOPRIOR[c["NOPRIOR"]],
            "referral_source": PSOURCE[c["PSOURCE"]], "payer": PRIMPAY[c["PRIMPAY"]],
            "completed": c["REASON"] == 1, "site_id": "national"}


def _bool(v: str) -> bool | None:
    return None if v == "" else {"true": True, "false": False}[v]


def _program_mart(r: dict[str, str]) -> dict:
    return {"level_of_care": r["level_of_care"] or ASAM[r["asam_level"]], "age_band": r["age_band"],
            "sex": r["sex"], "race": r["race"], "ethnicity": r["ethnicity"],
            "primary_substance": r["primary_substance"], "co_occurring_mh": _bool(r["co_occurring_mh"]),
            "homeless_admit": _bool(r["homeless_admit"]), "employed_admit": _bool(r["employed_admit"]),
            "has_prior_episodes": None if r["prior_episodes"] == "" else int(r["prior_episodes"]) > 0,
            "referral_source": r["referral_source"], "payer": r["payer"],
            "completed": r["discharge_reason"] == "completed", "site_id": r["site_id"]}


def _eta(row: dict, model: dict) -> float:
    """The national log-odds from truth.json's coefficients (missing: null; bands -> groups)."""
    coef = model["coefficients"]
    group = {band: g for g, bands in model["age_groups"].items() for band in bands}
    eta = coef["age_group"][group[row["age_band"]]]
    for col in MART_COLUMNS:
        if col == "age_band":
            continue
        v = row[col]
        key = "missing" if v is None else ("true" if v is True else "false" if v is False else v)
        eta += coef[col][key]
    return eta


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _tally(rows: list[dict], truth: dict) -> dict:
    """(site, level) -> [n, observed, expected, expected_with_offset], with 'all' margins."""
    model, offsets = truth["model"], truth["site_offsets"]
    acc: dict = defaultdict(lambda: [0, 0, 0.0, 0.0])
    for row in rows:
        eta = _eta(row, model)
        site = row["site_id"]
        p, q = _expit(eta), _expit(eta + offsets.get(site, 0.0))
        sites = [site] if site == "national" else [site, "all"]
        for s in sites:
            for lv in (row["level_of_care"], "all"):
                a = acc[(s, lv)]
                a[0] += 1
                a[1] += row["completed"]
                a[2] += p
                a[3] += q
    return acc


def _compare(acc: dict, truth: dict) -> int:
    checked = 0
    for (site, lv), (n, o, e, w) in acc.items():
        if site == "national":
            cell = truth["national"]["levels"][lv]
            assert cell["mean_probability"] == pytest.approx(e / n, abs=2e-6)
        else:
            cell = truth["program"]["cells"][site][lv]
            assert cell["expected_with_offset"] == pytest.approx(w, rel=1e-7, abs=1e-5)
            assert cell["population_oe"] == pytest.approx(w / e, rel=1e-5)
            assert cell["true_oe"] == pytest.approx(o / e, rel=1e-5)
        assert (cell["n"], cell["observed"]) == (n, o), (site, lv)
        assert cell["expected"] == pytest.approx(e, rel=1e-7, abs=1e-5), (site, lv)
        checked += 1
    return checked


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_benchmark_files(a, 1200, 600, 5)
    write_benchmark_files(b, 1200, 600, 5)
    write_benchmark_files(c, 1200, 600, 6)
    da, db, dc = _digests(a), _digests(b), _digests(c)
    assert da == db
    assert sorted(da) == ["discharges.csv", "tedsd_puf.csv", "truth.json"]
    for name in da:
        assert da[name] != dc[name], name


def test_truth_shape(bench):
    out, truth = bench
    t = json.loads((out / "truth.json").read_text())
    assert t == truth
    b = t["benchmark"]
    assert set(b) == {"model", "site_offsets", "national", "program"}
    assert b["site_offsets"] == {"site-a": 0.6, "site-b": -0.3, "site-c": 0.0, "site-d": 0.3, "site-e": -0.6,
                                 "site-f": 0.0}
    cells = b["program"]["cells"]
    assert set(cells) == {*b["site_offsets"], "all"}
    for site_cells in cells.values():
        assert set(site_cells) == {*LEVELS, "all"}
    assert set(cells["all"]["all"]) == {"n", "observed", "expected", "expected_with_offset", "true_oe",
                                        "population_oe"}
    assert cells["all"]["all"]["n"] == PROGRAM and b["national"]["levels"]["all"]["n"] == NATIONAL
    # effects moderate, missing levels present with their own coefficient
    coef = b["model"]["coefficients"]
    assert all(abs(v) <= 0.8 for term, levels in coef.items() if term != "level_of_care" for v in levels.values())
    for term in ("co_occurring_mh", "homeless_admit", "employed_admit", "has_prior_episodes"):
        assert set(coef[term]) == {"true", "false", "missing"}
    assert coef["referral_source"]["court"] > 0
    # the population O/E follows the offset's sign
    for site, off in b["site_offsets"].items():
        oe = cells[site]["all"]["population_oe"]
        if cells[site]["all"]["n"]:
            assert (oe > 1) == (off > 0) and (oe < 1) == (off < 0), site


def test_expected_counts_recomputed_from_the_files(bench):
    out, truth = bench
    b = truth["benchmark"]
    national = [_national_mart(r) for r in _rows(out / "tedsd_puf.csv")]
    program = [_program_mart(r) for r in _rows(out / "discharges.csv")]
    assert len(national) == NATIONAL and len(program) == PROGRAM
    assert {r["level_of_care"] for r in program} <= set(LEVELS)  # no php / inpatient
    # some of every missing kind the model codes
    assert any(r["payer"] == "unknown" for r in national) and any(r["employed_admit"] is None for r in national)
    assert any(r["has_prior_episodes"] is None for r in program)
    acc = _tally(national + program, b)
    assert _compare(acc, b) >= 6 + 7 * 4
    # cells with no episodes: zero counts, null ratios
    for site, site_cells in b["program"]["cells"].items():
        for lv, cell in site_cells.items():
            if (site, lv) not in acc:
                assert cell["n"] == 0 and cell["true_oe"] is None and cell["population_oe"] is None
    # the crude program rate differs from the national one (different case mix), as does expected
    nat, prog = b["national"]["levels"]["all"], b["program"]["cells"]["all"]["all"]
    assert abs(prog["expected"] / prog["n"] - nat["expected"] / nat["n"]) > 0.03


def test_reasons_keep_the_codebook(bench):
    out, _ = bench
    reasons = {r["REASON"] for r in _rows(out / "tedsd_puf.csv")}
    assert reasons <= {"1", "2", "3", "4", "5", "6", "7"} and {"1", "2", "4"} <= reasons
    words = {r["discharge_reason"] for r in _rows(out / "discharges.csv")}
    assert words <= {"completed", "transferred", "dropped_out", "terminated", "incarcerated", "death", "other"}


def test_national_rate_per_level_near_the_model(tmp_path):
    truth = write_benchmark_files(tmp_path, 40_000, 200, 3)
    levels = truth["benchmark"]["national"]["levels"]
    for lv, cell in levels.items():
        n = cell["n"]
        if n < 200:
            continue
        p = cell["mean_probability"]
        rate = cell["observed"] / n
        assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / n), lv
    # near the TEDS-D 2019 setting shares
    targets = {"outpatient": 0.35, "iop": 0.32, "residential_short": 0.54, "residential_long": 0.39, "detox": 0.62}
    for lv, target in targets.items():
        assert abs(levels[lv]["mean_probability"] - target) < 0.03, lv


def test_ingested_mart_gives_the_same_expected(bench, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    from pipelines import marts
    from pipelines.ingest.core import ingest_paths
    from pipelines.settings import Settings

    out, truth = bench
    data = tmp_path / "data"
    data.mkdir()
    for name in ("tedsd_puf.csv", "discharges.csv"):
        (data / name).write_bytes((out / name).read_bytes())
    settings = Settings(warehouse=tmp_path / "w.duckdb")
    loaded = ingest_paths(settings, [data], docs=False)
    assert [r.status for r in loaded] == ["loaded", "loaded"], [r.line() for r in loaded]
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        marts.build(con)
        cols = ["source", "site_id", "is_completed", *MART_COLUMNS]
        rows = con.execute(f"select {', '.join(cols)} from mart_episodes").fetchall()
    finally:
        con.close()
    assert len(rows) == NATIONAL + PROGRAM
    mart = []
    for r in rows:
        d = dict(zip(cols, r, strict=True))
        d["completed"] = bool(d.pop("is_completed"))
        if d.pop("source") == "teds-d":
            d["site_id"] = "national"
        mart.append(d)
    b = truth["benchmark"]
    assert _compare(_tally(mart, b), b) >= 6 + 7 * 4


def test_cli_benchmark(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipelines", "synth", "--format", "benchmark", "--records", "1000",
                           "--seed", "4", "--out", "o", "--sites", "3", "--site-offsets", "0.5,0,-0.5"],
                          cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "o"
    assert sorted(p.name for p in out.iterdir()) == ["discharges.csv", "tedsd_puf.csv", "truth.json"]
    truth = json.loads((out / "truth.json").read_text())["benchmark"]
    assert truth["site_offsets"] == {"site-a": 0.5, "site-b": 0.0, "site-c": -0.5}
    assert truth["program"]["records"] == 200 and truth["national"]["records"] == 1000
    assert len((out / "discharges.csv").read_text().splitlines()) == 201
    bad = subprocess.run([sys.executable, "-m", "pipelines", "synth", "--format", "benchmark", "--records", "100",
                          "--seed", "4", "--out", "p", "--sites", "3", "--site-offsets", "0.5,0"],
                         cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert bad.returncode != 0 and "one per site" in bad.stderr
