"""`levelcare analyze --json` and `levelcare export accreditation --json` as a script runs them:
stdout is one JSON document and nothing else, and each field agrees with what is on disk (files
hashed here, rows counted in the CSVs written, hidden cells counted by their markers, the run
registry listed by `levelcare runs list`).

The warehouse is a copy of the one behind the report tests' analysis (3,000 synthetic episodes,
built once per test run); the copy has no validation reports beside it, so the analysis warns
that they are missing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from report_fixtures import analyzed
from xdist_shared import built_once

DEFINITIONS = ("completion", "retention_90d")  # retention_90d's comparison is hidden by the CMS rule


def levelcare(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipelines", *map(str, args)],
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    from pipelines.warehouse import write_lock

    # the `analysis` fixture's build (tests/support/plugin_analysis.py), under the same name, so
    # that a test run builds it once, whichever test asks first
    results, _ = built_once(tmp_path_factory, "report-analysis", lambda root: (analyzed(root), root / "data"))
    shared = results.parent / "levelcare.duckdb"
    copy = tmp_path_factory.mktemp("json-warehouse") / "levelcare.duckdb"
    with write_lock(shared, timeout_seconds=600):  # the report tests analyze it too: no writer mid-copy
        shutil.copyfile(shared, copy)
    return copy


@pytest.fixture(scope="module")
def analysis(warehouse: Path, tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("json-analyze") / "out"
    done = levelcare("--warehouse", warehouse, "analyze", "--out", out, "--definitions", ",".join(DEFINITIONS),
                     "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    return done, out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _check_files(entries: list[dict], folder: Path) -> None:
    """The files listed are exactly the folder's, with their sizes and hashes."""
    assert sorted(e["name"] for e in entries) == sorted(p.name for p in folder.iterdir())
    for e in entries:
        path = Path(e["path"])
        assert path.is_absolute() and path == folder.absolute() / e["name"]
        assert e["bytes"] == path.stat().st_size
        assert e["sha256"] == _sha256(path)


def test_analyze_json(analysis, warehouse: Path):
    done, out = analysis
    doc = json.loads(done.stdout)  # the whole of stdout: a summary line or a progress bar would fail here
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["status"] == "ok" and "Traceback" not in done.stderr
    assert doc["run_id"] == results["run_id"]
    assert doc["out"] == str(out.absolute()) and doc["results"] == str(out.absolute() / "results.json")
    _check_files(doc["files"], out)

    # counts: data rows of the CSVs written
    for key in ("rates", "trends", "comparisons", "balance"):
        assert doc[key] == len(_rows(out / f"{key}.csv")), key
    assert doc["definitions"] == len(DEFINITIONS) and doc["not_applicable"] == []
    assert doc["inputs"] == len(results["inputs"]) == 2
    for key in ("rates", "trends", "comparisons"):
        rows = _rows(out / f"{key}.csv")  # comparisons.csv writes True/False, rates.csv true/false
        assert doc["suppressed"][key] == {
            reason: sum(1 for r in rows if r["suppressed"].lower() == "true" and r["suppression"] == reason)
            for reason in ("small", "complementary")}, key
    assert doc["suppressed"]["rates"]["small"] > 0  # the check above compared something
    assert doc["period"] == {k: results["period"][k]
                             for k in ("label", "first_quarter", "last_quarter", "data_end_quarter")}
    assert doc["disclosure"] == results["disclosure"]["rule"] == "cms"

    # the headline verdicts: one per definition, on its margin basis; a hidden one has none
    verdicts = {v["definition_id"]: v for v in doc["noninferiority"]}
    assert set(verdicts) == set(DEFINITIONS)
    for x in results["noninferiority"]:
        v = verdicts[x["definition_id"]]
        assert v["conclusion"] == x["conclusion"] and v["margin_basis"] == x["margin_basis"]
        suffix = {"absolute": "", "relative": "_relative"}.get(x["margin_basis"])
        expected = (None, None) if suffix is None else (x[f"noninferior{suffix}"], x[f"equivalent{suffix}"])
        assert (v["noninferior"], v["equivalent"]) == expected
    assert verdicts["retention_90d"]["noninferior"] is None
    assert isinstance(verdicts["completion"]["noninferior"], bool)

    # the copy has no validation reports beside it: one warning per input file
    for f in results["inputs"]:
        assert f"validation report not found for {f['file_name']}" in doc["warnings"]

    # analyze alone does not record its run; the registry agrees with what the JSON says
    listing = levelcare("runs", "list", "--warehouse", warehouse)
    assert listing.returncode == 0, listing.stderr
    assert doc["registered"] is False and doc["run_id"] not in listing.stdout


def test_export_json(analysis, tmp_path: Path):
    _, results_dir = analysis
    results = json.loads((results_dir / "results.json").read_text(encoding="utf-8"))
    out = tmp_path / "export"
    done = levelcare("export", "accreditation", "--out", out, "--results", results_dir, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert doc["status"] == "ok" and doc["kind"] == "accreditation"
    assert doc["out"] == str(out.absolute())
    assert doc["results"] == str((results_dir / "results.json").absolute())
    _check_files(doc["files"], out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert doc["analysis_run_id"] == results["run_id"] == manifest["analysis_run_id"]
    assert doc["export_run_id"] == manifest["export_run_id"]
    assert doc["standard"] == "carf+joint-commission"
    assert doc["period"]["label"] == results["period"]["label"] == manifest["period"]
    assert doc["disclosure"] == results["disclosure"]["rule"] == "cms"

    # each table's CSV: its data rows, and its hidden cells counted by the rule's markers
    marker, other = results["disclosure"]["marker"], results["disclosure"]["complementary_marker"]
    assert doc["markers"] == {"small": marker, "complementary": other}
    assert {t["file"] for t in doc["tables"]} == {p.name for p in out.glob("*.csv")}
    for t in doc["tables"]:
        with (out / t["file"]).open(newline="", encoding="utf-8") as fh:
            _header, *rows = list(csv.reader(fh))
        cells = [c for r in rows for c in r]
        assert t["rows"] == len(rows), t["id"]
        assert t["suppressed"] == {"small": cells.count(marker), "complementary": cells.count(other)}, t["id"]
    assert doc["suppressed"] == {r: sum(t["suppressed"][r] for t in doc["tables"]) for r in ("small", "complementary")}
    assert doc["suppressed"]["small"] > 0  # the counts above compared something

    # only two definitions were analyzed: the other default CARF indicators are not available
    unavailable = [w.split(": ") for w in doc["warnings"] if w.startswith("effectiveness: ")]
    assert ["effectiveness", "abstinent_90d_itt", "not available"] in [w[:3] for w in unavailable]
    assert not {w[1] for w in unavailable} & set(DEFINITIONS)
    # as in the analysis, the results hold no validation report of their input files
    for f in results["inputs"]:
        assert f"validation report not found for {f['file_name']}" in doc["warnings"]


def test_json_fields_are_documented_in_help(analysis, capsys):
    from pipelines.cli import main

    doc = json.loads(analysis[0].stdout)
    for argv, keys in ((["analyze", "--help"], doc), (["export", "accreditation", "--help"], (
            "status", "kind", "out", "results", "analysis_run_id", "export_run_id", "standard", "period",
            "disclosure", "markers", "files", "tables", "suppressed", "warnings"))):
        with pytest.raises(SystemExit):
            main(argv, environ={})
        text = capsys.readouterr().out
        assert "--json" in text
        assert [k for k in keys if k not in text.split("--json prints", 1)[1]] == [], argv


def test_errors_print_no_json(tmp_path: Path, capfd):
    from pipelines.cli import main

    assert main(["--warehouse", str(tmp_path / "none.duckdb"), "analyze", "--out", str(tmp_path / "o"),
                 "--json"], environ={}) == 2
    out, err = capfd.readouterr()
    assert out == "" and err.startswith("levelcare: error: ") and err.count("\n") == 1
    assert main(["export", "accreditation", "--out", str(tmp_path / "e"), "--json"], environ={}) == 2
    out, err = capfd.readouterr()
    assert out == "" and "no results.json found" in err and err.count("\n") == 1
    print("stdout works again")  # the redirection ended with the error
    assert capfd.readouterr().out == "stdout works again\n"


def test_stdout_to_stderr_takes_every_writer():
    """Python's prints, writes to file descriptor 1 (DuckDB's progress bar) and C stdio buffers."""
    code = ("import ctypes, os\n"
            "from pipelines.jsonout import stdout_to_stderr\n"
            "with stdout_to_stderr():\n"
            "    print('python')\n"
            "    os.write(1, b'descriptor\\n')\n"
            "    ctypes.CDLL(None).printf(b'c-stdio\\n')\n"
            "print('after')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # C stdout buffered, as usual
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "after\n"
    assert done.stderr.split() == ["python", "descriptor", "c-stdio"]
