"""levelcare export accreditation, from the hand-built results.json and warehouse (conftest)."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest
from report_fixtures import LABELS, make_results, make_warehouse

from pipelines.cli import main
from pipelines.errors import UserError
from pipelines.settings import Settings


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from pipelines.export.command import write_accreditation_export

    root = tmp_path_factory.mktemp("export")
    wh = make_warehouse(root / "w.duckdb")
    out = root / "out"
    out.mkdir()
    (out / "results.json").write_text(json.dumps(make_results()), encoding="utf-8")
    paths = write_accreditation_export(Settings(warehouse=wh), out)
    return {p.name: p for p in paths}, wh


def _csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_workbook_sheets_and_csvs(exported):
    import openpyxl

    files, _ = exported
    wb = openpyxl.load_workbook(files["accreditation.xlsx"])
    assert wb.sheetnames == ["CARF 1.M indicators", "Joint Commission CTS.03.01.09", "Data quality",
                             "Definitions", "Manifest"]
    for name in ("carf-indicators.csv", "jc-instruments.csv", "jc-rates.csv", "definitions.csv", "manifest.json"):
        assert name in files


def test_carf_indicators_grouped_by_domain_with_targets(exported):
    files, _ = exported
    rows = _csv(files["carf-indicators.csv"])
    domains = [r["domain"] for r in rows]
    order = ["effectiveness", "efficiency", "service access", "satisfaction/experience"]
    assert [d for d in order if d in domains] == list(dict.fromkeys(domains))  # grouped, in CARF order
    iop = next(r for r in rows if r["indicator"] == "completion" and r["level_of_care"] == "iop")
    assert int(iop["numerator"]) == 120 and int(iop["denominator"]) == 200
    assert float(iop["rate"]) == pytest.approx(120 / 200)
    assert float(iop["target"]) == 0.5 and iop["target_met"] == "yes" and iop["period"] == "2024Q4 to 2026Q3"
    detox = next(r for r in rows if r["indicator"] == "completion" and r["level_of_care"] == "detox")
    assert detox["numerator"] == "*" and detox["rate"] == "*" and detox["target_met"] == ""
    for r in rows:
        for c in ("numerator", "denominator"):
            assert r[c] == "*" or r[c] == "" or not 1 <= int(r[c]) <= 10


def test_joint_commission_means_and_disclosure(exported):
    import duckdb

    files, wh = exported
    rows = _csv(files["jc-instruments.csv"])
    con = duckdb.connect(str(wh), read_only=True)
    pairs = con.execute("select phq9_admit, phq9_discharge from mart_episodes where level_group = 'iop'").fetchall()
    con.close()
    pairs = [p for p in pairs if None not in p]
    iop = next(r for r in rows if r["instrument"] == "PHQ-9" and r["level_of_care"] == "iop")
    assert int(iop["n_with_both_scores"]) == len(pairs)
    assert float(iop["mean_admission"]) == pytest.approx(sum(a for a, _ in pairs) / len(pairs))
    assert float(iop["mean_discharge"]) == pytest.approx(sum(d for _, d in pairs) / len(pairs))
    detox = next(r for r in rows if r["instrument"] == "PHQ-9" and r["level_of_care"] == "detox")
    assert detox["n_with_both_scores"] == "*" and detox["mean_admission"] == "*"  # 6 people


def test_manifest_hashes_and_versions(exported):
    files, _ = exported
    man = json.loads(files["manifest.json"].read_text())
    results = files["manifest.json"].parent / "results.json"
    assert man["results_file"]["sha256"] == hashlib.sha256(results.read_bytes()).hexdigest()
    assert man["analysis_run_id"] == "20261001T000000Z-test0001"
    assert {d["id"]: d["version"] for d in man["definitions"]}["completion"] == 1
    assert man["inputs"][0]["file_sha256"] == "ab" * 32


def test_formula_like_text_is_neutralized(exported):
    files, _ = exported
    labels = [r["label"] for r in _csv(files["definitions.csv"])]
    assert "'" + LABELS["no_readmission_30d"] in labels


def test_targets_file_and_standard(tmp_path):
    from pipelines.export.command import write_accreditation_export

    wh = make_warehouse(tmp_path / "w.duckdb", n=100)
    (tmp_path / "results.json").write_text(json.dumps(make_results()), encoding="utf-8")
    targets = tmp_path / "targets.yaml"
    targets.write_text("indicators:\n  completion: {target: 0.7}\n  retention_90d: null\n", encoding="utf-8")
    paths = write_accreditation_export(Settings(warehouse=wh), tmp_path, standard="carf", targets=targets)
    names = {p.name for p in paths}
    assert "jc-instruments.csv" not in names
    rows = _csv(tmp_path / "carf-indicators.csv")
    iop = next(r for r in rows if r["indicator"] == "completion" and r["level_of_care"] == "iop")
    assert float(iop["target"]) == 0.7 and iop["target_met"] == "no"  # 60% < 70%
    assert not any(r["indicator"] == "retention_90d" for r in rows)
    targets.write_text("indicators:\n  completion: {domain: outcomes}\n", encoding="utf-8")
    with pytest.raises(UserError, match="domain must be one of"):
        write_accreditation_export(Settings(warehouse=wh), tmp_path, targets=targets)


def test_cli_export(tmp_path, capsys):
    wh = make_warehouse(tmp_path / "w.duckdb", n=100)
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "results.json").write_text(json.dumps(make_results()), encoding="utf-8")
    code = main(["export", "--warehouse", str(wh), "accreditation", "--out", str(tmp_path / "x"),
                 "--results", str(tmp_path / "res"), "--standard", "joint-commission"])
    assert code == 0 and (tmp_path / "x" / "accreditation.xlsx").exists()
    assert main(["export", "--warehouse", str(wh), "accreditation", "--out", str(tmp_path / "y")]) == 2
    assert "no results.json found" in capsys.readouterr().err
