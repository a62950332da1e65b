"""Shared fixtures of the security tests.

``small_run``: one end-to-end job run as a user runs it, as subprocesses — synthetic extracts
salted with a canary string (a free-text field and an invalid enumeration value), a site whose id
is a spreadsheet formula and another whose id is SQL, a user definition whose label is a
formula; then ``levelcare ingest -vv``, ``levelcare run`` (the quarterly Prefect flow, with its
own PREFECT_HOME), ``levelcare export accreditation`` and ``levelcare quarantine --rows``.
The privacy and injection tests read what it leaves behind.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sec_helpers import CANARY, CliResult, run_cli
from xdist_shared import built_once

FORMULA_SITE = '=HYPERLINK("http://evil.example/x","site")'
SQL_SITE = "x'; DROP TABLE ingest_ledger; --"
FORMULA_LABEL = '=HYPERLINK("http://evil.example/y","click")'
DEFINITIONS = "completion,abstinent_90d_itt,no_readmission_30d,formula_label"

USER_DEFINITION = f"""id: formula_label
version: 1
label: '{FORMULA_LABEL}'
description: A label that a spreadsheet would run as a formula; exports must show it as text.
success: is_completed
missing: failure
references: ["tests/security"]
requires: [is_completed]
"""


@dataclass
class Run:
    root: Path
    input: Path
    out: Path
    warehouse: Path
    prefect_home: Path
    definitions: Path
    results: dict[str, CliResult] = field(default_factory=dict)

    @property
    def docs(self) -> Path:
        return self.warehouse.parent / "levelcare-docs"


def _rewrite(path: Path, edit) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    names = list(rows[0])
    for i, row in enumerate(rows):
        edit(i, row)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=names)
        w.writeheader()
        w.writerows(rows)


def _sites(row: dict) -> None:
    if row["site_id"] == "site-a":
        row["site_id"] = FORMULA_SITE
    elif row["site_id"] == "site-b":
        row["site_id"] = SQL_SITE


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> Run:
    # once per test run, also under pytest-xdist; pickled as plain fields (Run lives in a conftest)
    fields = built_once(tmp_path_factory, "security-small-run", lambda root: vars(_small_run(root)))
    return Run(**fields)


def _small_run(root: Path) -> Run:
    run = Run(root, root / "input", root / "out", root / "wh" / "levelcare.duckdb", root / "prefect",
              root / "definitions")
    run.prefect_home.mkdir()
    run.definitions.mkdir()
    (run.definitions / "formula_label.yaml").write_text(USER_DEFINITION, encoding="utf-8")
    env = {"PREFECT_HOME": str(run.prefect_home)}

    res = run_cli(["synth", "--out", run.input, "--records", "800", "--seed", "5"], timeout=300)
    assert res.returncode == 0, res.describe()
    (run.input / "truth.json").unlink(missing_ok=True)

    def discharges(i: int, row: dict) -> None:
        _sites(row)
        if i in (0, 1):
            row["program_id"] = f"free text {CANARY} here" if i else CANARY
        if i == 2:
            row["sex"] = CANARY  # an invalid enumeration value: the row is quarantined

    _rewrite(run.input / "discharges.csv", discharges)
    _rewrite(run.input / "followups.csv", lambda i, row: _sites(row))

    steps = {
        "ingest": ["ingest", run.input, "--warehouse", run.warehouse, "-vv"],
        "quarantine": ["quarantine", "--rows", "--warehouse", run.warehouse],
        "run": ["run", "--input", run.input, "--out", run.out, "--warehouse", run.warehouse,
                "--definitions", DEFINITIONS, "--definitions-dir", run.definitions, "-vv"],
        "export": ["export", "accreditation", "--out", run.out, "--warehouse", run.warehouse, "-vv"],
    }
    for name, args in steps.items():
        res = run_cli(args, env=env, timeout=1200)
        run.results[name] = res
        assert not res.timed_out and res.returncode == 0, res.describe()
    return run
