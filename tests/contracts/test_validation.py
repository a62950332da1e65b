"""great-expectations is real: a bad value fails its expectation, an expectation that cannot be
evaluated is an error (never a pass), and Data Docs carry counts, not values."""

from __future__ import annotations

import json

import pandas as pd
from ingest_helpers import csv_text, discharge, ingest, write

from pipelines import contracts
from pipelines.validation import sample_step, validate_frame

CANARY = "qqcanary7741"


def _frame(**over) -> pd.DataFrame:
    c = contracts.load("discharges")
    row = {f.name: None for f in c.stored_fields}
    row.update({"episode_id": "e1", "person_id": "p1", "site_id": "s1", "level_of_care": "iop",
                "admit_date": pd.Timestamp("2026-01-05"), "discharge_date": pd.Timestamp("2026-02-01"),
                "discharge_reason": "completed", "age_band": "30-34", "sex": "female",
                "primary_substance": "alcohol", "co_occurring_mh": False, "phq9_admit": 5})
    rows = [dict(row, episode_id=f"e{i}") for i in range(4)]
    rows[-1].update(over)
    return pd.DataFrame(rows, columns=[f.name for f in c.stored_fields])


def _by_id(report):
    return {o.check_id: o for o in report.outcomes}


def test_clean_batch_passes_every_expectation():
    report = validate_frame(contracts.load("discharges"), _frame())
    assert report.success, [o for o in report.outcomes if o.status != "passed"]
    assert len(report.outcomes) == len(contracts.suite_spec(contracts.load("discharges")))


def test_bad_value_fails_its_expectation():
    report = validate_frame(contracts.load("discharges"), _frame(phq9_admit=28, sex=CANARY))
    out = _by_id(report)
    assert out["range:phq9_admit"].status == "failed"
    assert out["range:phq9_admit"].unexpected_count == 1
    assert out["allowed_values:sex"].status == "failed"
    assert out["required:person_id"].status == "passed"
    assert not report.success


def test_missing_required_value_fails_not_null():
    out = _by_id(validate_frame(contracts.load("discharges"), _frame(person_id=None)))
    assert out["required:person_id"].status == "failed"


def test_expectation_that_cannot_evaluate_is_an_error_not_a_pass():
    # text in an integer column: GE's between raises; that must surface as status "error"
    frame = _frame()
    frame["phq9_admit"] = frame["phq9_admit"].astype(object)
    frame.loc[0, "phq9_admit"] = "twelve"
    report = validate_frame(contracts.load("discharges"), frame)
    out = _by_id(report)
    assert out["range:phq9_admit"].status == "error"
    assert report.errors and not report.success


def test_missing_column_is_an_error():
    frame = _frame().drop(columns=["sex"])
    out = _by_id(validate_frame(contracts.load("discharges"), frame))
    assert out["allowed_values:sex"].status == "error"
    assert out["columns"].status == "failed"


def test_sample_step():
    assert [sample_step(n, 100) for n in (0, 1, 100, 101, 250)] == [1, 1, 1, 2, 3]


def test_data_docs_per_file_without_row_values(tmp_path):
    rows = [discharge("e1"), discharge("e2", sex=CANARY, program_id=CANARY + "p")]
    path = write(tmp_path / "d.csv", csv_text(rows))
    (row,) = ingest(tmp_path, path, docs=True)
    assert row.status == "partial"
    docs = tmp_path / "levelcare-docs" / row.sha256[:16]
    html = list(docs.rglob("*.html"))
    assert (docs / "index.html").exists() and len(html) >= 2
    for f in docs.rglob("*"):
        if f.is_file():
            assert CANARY not in f.read_text(encoding="utf-8", errors="replace"), f
    report = json.loads((docs / "validation.json").read_text())
    ge = {e["check_id"]: e for e in report["great_expectations"]["expectations"]}
    assert ge["allowed_values:sex"]["status"] == "failed" and ge["allowed_values:sex"]["unexpected_count"] == 1
    checks = {c["check_id"]: c for c in report["checks"]}
    assert checks["allowed_values"]["status"] == "failed" and checks["allowed_values"]["failing_rows"] == 1
    assert checks["range"]["status"] == "passed"


def test_validation_error_refuses_the_file(tmp_path, monkeypatch):
    # force GE to see a column it cannot evaluate: the file must be refused, not loaded
    from pipelines import validation

    real = validation.validate_frame

    def broken(contract, frame, **kwargs):
        frame = frame.assign(phq9_admit="x")  # text where GE expects numbers
        return real(contract, frame, **kwargs)

    monkeypatch.setattr(validation, "validate_frame", broken)
    (row,) = ingest(tmp_path, write(tmp_path / "d.csv", csv_text([discharge("e1")])))
    assert row.status == "refused" and "validation could not evaluate range:phq9_admit" in row.message


def test_file_refused_by_its_checks_leaves_no_data_docs_and_the_next_file_validates(tmp_path):
    # validation starts beside the row checks; a file those checks refuse (12 of 12 rows out
    # of range, beyond the tolerance) must not keep the Data Docs its validation wrote
    bad = write(tmp_path / "bad.csv", csv_text([discharge(f"e{i}", phq9_admit="99") for i in range(12)]))
    good = write(tmp_path / "good.csv", csv_text([discharge("e20"), discharge("e21", sex=CANARY)]))
    refused, loaded = ingest(tmp_path, bad, good, docs=True)
    assert refused.status == "refused" and "phq9_admit fails range on 12 of 12 rows" in refused.message
    assert not (tmp_path / "levelcare-docs" / refused.sha256[:16]).exists()
    assert loaded.status == "partial"
    report = json.loads((tmp_path / "levelcare-docs" / loaded.sha256[:16] / "validation.json").read_text())
    ge = {e["check_id"]: e for e in report["great_expectations"]["expectations"]}
    assert ge["allowed_values:sex"]["unexpected_count"] == 1 and ge["allowed_values:sex"]["element_count"] == 2
