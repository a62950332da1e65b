"""levelcare export accreditation, from a real analysis (tests/support/plugin_analysis.py);
expectations are counted again from the raw extracts."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest
from report_fixtures import copy_results
from test_report import _discharges

from pipelines.cli import main
from pipelines.errors import UserError


@pytest.fixture(scope="module")
def exported(tmp_path_factory, analysis):
    from pipelines.export.command import write_accreditation_export

    out = copy_results(analysis[0], tmp_path_factory.mktemp("export") / "out")
    paths = write_accreditation_export(out)
    return {p.name: p for p in paths}


def _csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_workbook_sheets_and_csvs(exported):
    import openpyxl

    wb = openpyxl.load_workbook(exported["accreditation.xlsx"])
    assert wb.sheetnames == ["CARF 1.M indicators", "Joint Commission CTS.03.01.09", "Data quality",
                             "Definitions", "Manifest"]
    for name in ("carf-indicators.csv", "jc-instruments.csv", "jc-rates.csv", "definitions.csv", "manifest.json",
                 "followup-response.csv", "table-ledger.csv"):
        assert name in exported


def test_carf_indicators_counted_from_the_extracts(exported, analysis):
    rows = _csv(exported["carf-indicators.csv"])
    domains = [r["domain"] for r in rows]
    order = ["effectiveness", "efficiency", "service access", "satisfaction/experience"]
    assert [d for d in order if d in domains] == list(dict.fromkeys(domains))  # grouped, in CARF order
    raw = [r for r in _discharges(analysis[1]) if r["group"] == "iop"]
    k, n = sum(r["discharge_reason"] == "completed" for r in raw), len(raw)
    iop = next(r for r in rows if r["indicator"] == "completion" and r["level_of_care"] == "iop")
    assert (int(iop["numerator"]), int(iop["denominator"])) == (k, n)
    assert float(iop["rate"]) == pytest.approx(k / n)
    assert iop["target_met"] == ("yes" if k / n >= 0.5 else "no")
    label = json.loads((analysis[0] / "results.json").read_text())["period"]["label"]
    assert {r["period"] for r in rows} == {label}
    for r in rows:
        for c in ("numerator", "denominator"):
            assert r[c] in ("*", "†", "") or not 1 <= int(r[c]) <= 10


def test_joint_commission_means_from_the_extracts(exported, analysis):
    rows = _csv(exported["jc-instruments.csv"])
    raw = [r for r in _discharges(analysis[1]) if r["group"] == "iop" and r["phq9_admit"] and r["phq9_discharge"]]
    iop = next(r for r in rows if r["instrument"] == "PHQ-9" and r["level_of_care"] == "iop")
    assert int(iop["n_with_both_scores"]) == len(raw)
    assert float(iop["mean_admission"]) == pytest.approx(sum(int(r["phq9_admit"]) for r in raw) / len(raw))
    assert float(iop["mean_discharge"]) == pytest.approx(sum(int(r["phq9_discharge"]) for r in raw) / len(raw))


def test_followup_response_rows_are_the_rates_csv_rows(exported, analysis):
    rates = {(r["definition_id"], r["group"]): r for r in _csv(analysis[0] / "rates.csv")
             if r["group_by"] == "level_group"}
    rows = _csv(exported["followup-response.csv"])
    assert rows
    for r in rows:
        assert r["denominator"] in (rates[(r["definition_id"], r["group"])]["denominator"], "*", "†")


def test_manifest_hashes_versions_and_period(exported, analysis):
    man = json.loads(exported["manifest.json"].read_text())
    results_file = exported["manifest.json"].parent / "results.json"
    results = json.loads(results_file.read_text())
    assert man["results_file"]["sha256"] == hashlib.sha256(results_file.read_bytes()).hexdigest()
    assert man["analysis_run_id"] == results["run_id"]
    assert man["period"] == results["period"]["label"] and man["period_quarters"] == results["period"]["quarters"]
    assert {d["id"]: d["version"] for d in man["definitions"]}["retention_90d"] == 2
    shas = {hashlib.sha256((analysis[1] / f).read_bytes()).hexdigest() for f in ("discharges.csv", "followups.csv")}
    assert {x["file_sha256"] for x in man["inputs"]} == shas


def test_targets_file_and_standard(analysis, tmp_path):
    from pipelines.export.command import write_accreditation_export

    out = copy_results(analysis[0], tmp_path / "out")
    targets = tmp_path / "targets.yaml"
    targets.write_text("indicators:\n  completion: {target: 0.99}\n  retention_90d: null\n", encoding="utf-8")
    paths = write_accreditation_export(out, standard="carf", targets=targets)
    assert "jc-instruments.csv" not in {p.name for p in paths}
    rows = _csv(out / "carf-indicators.csv")
    iop = next(r for r in rows if r["indicator"] == "completion" and r["level_of_care"] == "iop")
    assert float(iop["target"]) == 0.99 and iop["target_met"] == "no"
    assert not any(r["indicator"] == "retention_90d" for r in rows)
    targets.write_text("indicators:\n  completion: {domain: outcomes}\n", encoding="utf-8")
    with pytest.raises(UserError, match="domain must be one of"):
        write_accreditation_export(out, targets=targets)


def test_cli_export_and_a_period_the_results_do_not_hold(analysis, tmp_path, capsys):
    code = main(["export", "accreditation", "--out", str(tmp_path / "x"), "--results", str(analysis[0]),
                 "--standard", "joint-commission"])
    assert code == 0 and (tmp_path / "x" / "accreditation.xlsx").exists()
    assert main(["export", "accreditation", "--out", str(tmp_path / "y")]) == 2
    assert main(["export", "accreditation", "--out", str(tmp_path / "z"), "--results", str(analysis[0]),
                 "--period", "2025Q1..2025Q2"]) == 2
    err = capsys.readouterr().err
    assert "no results.json found" in err
    assert "not 2025Q1..2025Q2; run `levelcare analyze" in err and "--period 2025Q1..2025Q2` first" in err
    assert not (tmp_path / "z").exists()
